"""The invariants a run of orderflow must keep, checked after the fact: pure checks over what the topics,
the event stores, the projections and the mail sink hold (observe.py collects it).

Each check returns the violations it finds, each naming its order or SKU; none means the invariant held."""

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from contracts import topics

# Whose event store each events topic publishes.
PUBLISHED_ON = {"order": topics.ORDERS_EVENTS, "inventory": topics.INVENTORY_EVENTS,
                "notification": topics.NOTIFICATIONS_EVENTS}


@dataclass(frozen=True)
class Violation:
    invariant: str
    subject: str  # the order, SKU, notification or table it concerns
    detail: str

    def __str__(self) -> str:
        return f"[{self.invariant}] {self.subject}: {self.detail}"


@dataclass(frozen=True)
class Record:
    """A message as a topic or an event store holds it."""

    id: str
    type: str
    data: dict
    stream_id: str = ""
    causation_id: str | None = None


@dataclass(frozen=True)
class Mail:
    message_id: str  # the notification id, as the dispatcher sets it
    order_id: str
    kind: str


@dataclass
class Observed:
    """Everything the checks read, collected once the system is quiet."""

    topics: dict[str, list[Record]]  # topic -> records in offset order (per partition), repeats included
    stores: dict[str, list[Record]]  # service -> its event store in position order
    order_lines: list[dict]  # the order projection's rows
    skus: list[dict]  # the inventory's SKU roots
    reservations: list[dict]
    backorders: list[dict]
    mails: list[Mail]
    in_doubt: set[tuple[str, str]] = field(default_factory=set)  # (notification, channel) settled as in doubt
    rebuilt: dict[str, dict[str, tuple[list, list]]] = field(default_factory=dict)  # service -> table -> (live, rebuilt)


def check(observed: Observed) -> list[Violation]:
    order_events = observed.stores.get("order", [])
    inventory_events = observed.stores.get("inventory", [])
    return [
        *order_lines_add_up(order_events, observed.order_lines),
        *stock_never_over_allocated(inventory_events, observed.skus, observed.reservations, observed.backorders),
        *backorders_filled_at_most_once(inventory_events, order_events),
        *notifications_at_most_once(observed.topics.get(topics.NOTIFICATIONS_EVENTS, []), observed.mails,
                                    observed.in_doubt),
        *every_stored_event_published(observed.stores, observed.topics),
        *rebuilt_equals_live(observed.rebuilt),
    ]


# --- order lines ---------------------------------------------------------------------------------------

LINE_FIELDS = ("reserved", "backordered", "fulfilled", "shipped", "rejected", "cancelled")


@dataclass
class LineBooks:
    """One order line's units by where they are, folded from the order events on their own, apart from the
    service's `evolve`. Every unit is in exactly one place once the line is decided:
    reserved + backordered + fulfilled + shipped + rejected + cancelled = ordered. `fulfilled` counts
    backordered units since filled and not yet shipped, as Line.fulfilled does; a refused line is refused
    whole (OutOfStock names the line's quantity), so `rejected` is 0 or the line's quantity."""

    quantity: int
    reserved: int = 0
    backordered: int = 0
    fulfilled: int = 0
    shipped: int = 0
    rejected: int = 0
    cancelled: int = 0

    def accounted(self) -> int:
        return sum(getattr(self, f) for f in LINE_FIELDS)

    def describe(self) -> str:
        return " + ".join(f"{f} {getattr(self, f)}" for f in LINE_FIELDS) + f" = {self.accounted()}"


def fold_order_lines(events: Iterable[Record]) -> dict[tuple[str, str], LineBooks]:
    lines: dict[tuple[str, str], LineBooks] = {}
    for e in events:
        d = e.data
        if e.type == "OrderPlaced":
            for line in d["lines"]:
                lines.setdefault((d["order_id"], line["sku"]), LineBooks(line["quantity"]))
            continue
        if e.type == "OrderShipped":
            for shipped in d["lines"]:
                _ship(lines[(d["order_id"], shipped["sku"])], shipped["quantity"])
            continue
        if "sku" not in d or (d["order_id"], d["sku"]) not in lines:
            continue  # about the whole order (a status, a refund), or a line-less refusal
        line = lines[(d["order_id"], d["sku"])]
        q = d.get("quantity", 0)
        match e.type:
            case "OrderLineReserved":
                line.reserved += q
            case "OrderLineBackordered":
                line.backordered += q
            case "OrderLineFulfilled":
                line.backordered -= q
                line.fulfilled += q
            case "OrderLineReservationRevoked":  # back to waiting, those reserved from stock first
                from_stock = min(line.reserved, q)
                line.reserved -= from_stock
                line.fulfilled -= q - from_stock
                line.backordered += q
            case "OrderLineReconciled":
                line.reserved, line.fulfilled, line.backordered = d["reserved"], d["fulfilled"], d["backordered"]
            case "OrderLineRejected":
                line.rejected += q
            case "OrderLineCancelled":
                line.reserved -= d["released"]
                line.backordered -= d["backorder_cancelled"]
                line.cancelled += d["released"] + d["backorder_cancelled"]
    return lines


def _ship(line: LineBooks, quantity: int) -> None:
    from_stock = min(line.reserved, quantity)
    line.reserved -= from_stock
    line.fulfilled -= quantity - from_stock
    line.shipped += quantity


def order_lines_add_up(order_events: Sequence[Record], projection: Sequence[dict]) -> list[Violation]:
    """Every line of every placed order accounts for each unit ordered, none negative: in the order events
    and in the projection (`order_lines`), which must also agree with each other. After quiet, a line that
    falls short is one whose outcome never arrived (an order stuck in `placed`, or a cancellation never
    answered)."""
    name = "order line adds up"
    found = []
    books = fold_order_lines(order_events)
    for (order_id, sku), line in books.items():
        if any(getattr(line, f) < 0 for f in LINE_FIELDS) or line.accounted() != line.quantity:
            found.append(Violation(name, f"{order_id} {sku}",
                                   f"events: {line.describe()}, ordered {line.quantity}"))
    rows = {(r["order_id"], r["sku"]): r for r in projection}
    for key, line in books.items():
        row = rows.get(key)
        if row is None:
            found.append(Violation(name, " ".join(key), "placed, but not in the order_lines projection"))
            continue
        shown = LineBooks(row["quantity"], row["reserved"], row["backordered"], row["fulfilled"], row["shipped"],
                          row["quantity"] if row["rejection_reason"] else 0, row["cancelled"])
        if shown.accounted() != shown.quantity or any(getattr(shown, f) < 0 for f in LINE_FIELDS):
            found.append(Violation(name, " ".join(key), f"projection: {shown.describe()}, ordered {shown.quantity}"))
        elif shown != line:
            found.append(Violation(name, " ".join(key),
                                   f"projection ({shown.describe()}) differs from the events ({line.describe()})"))
    for key in rows.keys() - books.keys():
        found.append(Violation(name, " ".join(key), "in the order_lines projection, but never placed"))
    return found


# --- stock ---------------------------------------------------------------------------------------------

@dataclass
class SkuBooks:
    on_hand: int = 0
    reserved: int = 0
    backordered: int = 0
    held: Counter = field(default_factory=Counter)  # order -> units reserved for it (from stock or filled)
    waiting: Counter = field(default_factory=Counter)  # order -> units it waits for


def _fold_stock(books: SkuBooks, e: Record) -> None:
    d = e.data
    q = d.get("quantity", 0)
    order = d.get("order_id")
    match e.type:
        case "StockReceived":
            books.on_hand += q
        case "StockAdjusted":
            books.on_hand = d["counted_quantity"]
        case "StockReserved":
            books.reserved += q
            books.held[order] += q
        case "BackorderCreated":
            books.backordered += q
            books.waiting[order] += q
        case "BackorderFulfilled":
            books.reserved += q
            books.held[order] += q
            books.backordered -= q
            books.waiting[order] -= q
        case "BackorderCancelled":
            books.backordered -= q
            books.waiting[order] -= q
        case "StockReleased":
            books.reserved -= q
            books.held[order] -= q
        case "ReservationRevoked":
            books.reserved -= q
            books.held[order] -= q
            books.backordered += q
            books.waiting[order] += q
        case "StockShipped":
            # Shipped units leave the reservation first; any beyond it a count had just sent back to waiting
            # were there after all: they leave the queue, and on_hand as far as stock is not promised.
            from_reservation = min(books.held[order], q)
            taken = q - from_reservation
            books.on_hand -= from_reservation + min(taken, max(0, books.on_hand - books.reserved))
            books.reserved -= from_reservation
            books.held[order] -= from_reservation
            books.backordered -= taken
            books.waiting[order] -= taken


def stock_never_over_allocated(inventory_events: Sequence[Record], skus: Sequence[dict],
                               reservations: Sequence[dict], backorders: Sequence[dict]) -> list[Violation]:
    """Folding each SKU's events in order, after every message's events (a count's StockAdjusted comes with
    the revocations it causes): on hand never negative, reserved never above on hand, nothing negative.
    The SKU rows agree with the fold, and with their reservation and backorder rows."""
    name = "stock never over-allocated"
    found = []
    books: dict[str, SkuBooks] = defaultdict(SkuBooks)
    by_sku: dict[str, list[Record]] = defaultdict(list)
    for e in inventory_events:
        if "sku" in e.data:
            by_sku[e.stream_id or e.data["sku"]].append(e)
    for sku, events in by_sku.items():
        b = books[sku]
        for i, e in enumerate(events):
            _fold_stock(b, e)
            if i + 1 < len(events) and events[i + 1].causation_id == e.causation_id and e.causation_id:
                continue  # the same message's events: judge the state it committed
            problems = []
            if b.on_hand < 0:
                problems.append(f"on hand {b.on_hand}")
            if b.reserved > b.on_hand:
                problems.append(f"reserved {b.reserved} > on hand {b.on_hand}")
            if b.reserved < 0 or b.backordered < 0:
                problems.append(f"reserved {b.reserved}, backordered {b.backordered}")
            if negative := [o for o, n in (*b.held.items(), *b.waiting.items()) if n < 0]:
                problems.append(f"negative holdings of {', '.join(sorted(negative))}")
            if problems:
                found.append(Violation(name, sku, f"after {e.type} (event {e.id}): " + "; ".join(problems)))
                break  # one per SKU: what follows inherits it
    held_rows: Counter = Counter()
    for r in reservations:
        held_rows[r["sku"]] += r["from_stock"] + r["filled"]
    waiting_rows: Counter = Counter()
    for r in backorders:
        waiting_rows[r["sku"]] += r["quantity"]
    for row in skus:
        sku = row["sku"]
        b = books.get(sku, SkuBooks())
        if row["on_hand"] < 0 or row["reserved"] > row["on_hand"]:
            found.append(Violation(name, sku, f"row: on hand {row['on_hand']}, reserved {row['reserved']}"))
        folded = (b.on_hand, b.reserved, b.backordered)
        if (row["on_hand"], row["reserved"], row["backordered"]) != folded:
            found.append(Violation(name, sku, f"row (on hand, reserved, backordered) = "
                                              f"{(row['on_hand'], row['reserved'], row['backordered'])}, "
                                              f"the events say {folded}"))
        if held_rows[sku] != row["reserved"] or waiting_rows[sku] != row["backordered"]:
            found.append(Violation(name, sku, f"reservation rows hold {held_rows[sku]} (root: {row['reserved']}), "
                                              f"backorder rows wait for {waiting_rows[sku]} (root: {row['backordered']})"))
    return found


# --- backorders ----------------------------------------------------------------------------------------

def backorders_filled_at_most_once(inventory_events: Sequence[Record], order_events: Sequence[Record]) -> list[Violation]:
    """No unit of a backorder is filled twice: per order and SKU, inventory never fills more than was ever
    put in the queue for it (backordered, or sent back by a count), one message fills a backorder once, and
    the order records no more filled units than it had waiting."""
    name = "backorder filled at most once"
    found = []
    queued, filled = _waited_and_filled(inventory_events, ("BackorderCreated", "ReservationRevoked"),
                                        "BackorderFulfilled")
    fills_per_cause = Counter((e.data.get("order_id"), e.data.get("sku"), e.causation_id)
                              for e in inventory_events if e.type == "BackorderFulfilled")
    for key, units in filled.items():
        if units > queued[key]:
            found.append(Violation(name, " ".join(key), f"inventory filled {units} units of {queued[key]} ever waiting"))
    for (order_id, sku, cause), n in fills_per_cause.items():
        if n > 1:
            found.append(Violation(name, f"{order_id} {sku}", f"filled {n} times by one message ({cause})"))
    waited, recorded = _waited_and_filled(order_events, ("OrderLineBackordered", "OrderLineReservationRevoked"),
                                          "OrderLineFulfilled")
    for key, units in recorded.items():
        if units > waited[key]:
            found.append(Violation(name, " ".join(key), f"the order recorded {units} units filled of {waited[key]} waiting"))
    return found


def _waited_and_filled(events: Sequence[Record], waiting: tuple[str, ...], filling: str) -> tuple[Counter, Counter]:
    """Units per (order, SKU) ever put in the queue, and units filled from it."""
    waited: Counter = Counter()
    filled: Counter = Counter()
    for e in events:
        key = (e.data.get("order_id"), e.data.get("sku"))
        if e.type in waiting:
            waited[key] += e.data["quantity"]
        elif e.type == filling:
            filled[key] += e.data["quantity"]
    return waited, filled


# --- notifications -------------------------------------------------------------------------------------

def notifications_at_most_once(notification_records: Sequence[Record], mails: Sequence[Mail],
                               in_doubt: set[tuple[str, str]] = frozenset()) -> list[Violation]:
    """One notification per cause and channel: its id (derived from the cause) is recorded sent once (the
    relay may publish one event twice after a crash: same event id, counted once), and mailed once. A mail
    recorded as sent arrived; one that arrived and was not recorded is a violation unless the outbox settled
    it as in doubt (its dispatcher died in between), which is never sent again: otherwise it would be."""
    name = "notification at most once"
    found = []
    sent: dict[tuple[str, str], set[str]] = defaultdict(set)
    orders = {}
    for r in notification_records:
        if r.type == "NotificationSent":
            key = (r.data["notification_id"], r.data["channel"])
            sent[key].add(r.id)
            orders[key[0]] = r.data["order_id"], r.data["kind"]
    for (notification_id, channel), ids in sent.items():
        if len(ids) > 1:
            order_id, kind = orders[notification_id]
            found.append(Violation(name, order_id, f"{kind} {notification_id} recorded sent {len(ids)} times by {channel}"))
    mailed = Counter(m.message_id for m in mails)
    for mail in {m.message_id: m for m in mails}.values():
        if mailed[mail.message_id] > 1:
            found.append(Violation(name, mail.order_id, f"{mail.kind} {mail.message_id} mailed {mailed[mail.message_id]} times"))
        if (mail.message_id, "email") not in sent and (mail.message_id, "email") not in in_doubt:
            found.append(Violation(name, mail.order_id, f"{mail.kind} {mail.message_id} mailed, not recorded as sent "
                                                        "nor settled as in doubt: it would be sent again"))
    for (notification_id, channel) in sent:
        if channel == "email" and notification_id not in mailed:
            order_id, kind = orders[notification_id]
            found.append(Violation(name, order_id, f"{kind} {notification_id} recorded sent, no mail arrived"))
    return found


# --- publishing ----------------------------------------------------------------------------------------

def every_stored_event_published(stores: dict[str, Sequence[Record]], on_topics: dict[str, Sequence[Record]]
                                 ) -> list[Violation]:
    """Each service's stored events are on its topic (by event id), and nothing else is."""
    name = "every stored event published"
    found = []
    for service, topic in PUBLISHED_ON.items():
        stored = {e.id: e for e in stores.get(service, [])}
        published = {r.id: r for r in on_topics.get(topic, [])}
        for event_id in stored.keys() - published.keys():
            e = stored[event_id]
            found.append(Violation(name, e.data.get("order_id") or e.stream_id,
                                   f"{service} stored {e.type} {event_id}, never published on {topic}"))
        for event_id in published.keys() - stored.keys():
            r = published[event_id]
            found.append(Violation(name, r.data.get("order_id") or r.data.get("sku", "?"),
                                   f"{r.type} {event_id} on {topic} is not in the {service} event store"))
    return found


# --- projections ---------------------------------------------------------------------------------------

def rebuilt_equals_live(rebuilt: dict[str, dict[str, tuple[list, list]]], shown: int = 3) -> list[Violation]:
    """The read models and SKU rows rebuilt from the events equal the live ones, row for row."""
    found = []
    for service, tables in rebuilt.items():
        for table, (live, again) in tables.items():
            live_rows, rebuilt_rows = Counter(map(_row_key, live)), Counter(map(_row_key, again))
            only_live, only_rebuilt = live_rows - rebuilt_rows, rebuilt_rows - live_rows
            if only_live or only_rebuilt:
                detail = (f"{sum(only_live.values())} live rows not rebuilt, {sum(only_rebuilt.values())} rebuilt "
                          f"rows not live; live: {sorted(only_live)[:shown]}; rebuilt: {sorted(only_rebuilt)[:shown]}")
                found.append(Violation("projection rebuilt equals live", f"{service} {table}", detail))
    return found


def _row_key(row: dict) -> tuple:
    return tuple(sorted((k, str(v)) for k, v in row.items()))
