"""The SKU aggregates of a batch in PostgreSQL: the roots locked in a fixed order, the part of each queue
and the reservations the batch needs, and, on save, the new events and the rows they changed."""

import json
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import date

import asyncpg
import structlog

from contracts.envelope import Envelope
from contracts.events import Event
from services.inventory.domain.state import Backorder, Changes, NotLoaded, Product, Replenishment, Reservation, Sku
from services.runtime.eventstore import NewEvent, append

log = structlog.get_logger()

FIRST_HEAD_ROWS = 256  # of the queue, for a batch that walks it; doubled while a decision needs more

LOCK_ROOTS = "SELECT * FROM skus WHERE sku = ANY($1::text[]) ORDER BY sku FOR UPDATE"
REPLENISHMENTS = "SELECT * FROM replenishments WHERE sku = ANY($1::text[])"
# The first `rows` of each queue (all of it when rows is NULL), and the rows of the orders the batch names.
BACKORDERS = """
SELECT b.* FROM unnest($1::text[], $2::int[]) AS w(sku, rows)
CROSS JOIN LATERAL (SELECT * FROM backorders q WHERE q.sku = w.sku ORDER BY q.seq LIMIT w.rows) b
UNION
SELECT b.* FROM backorders b JOIN unnest($3::text[], $4::text[]) AS k(sku, order_id) USING (sku, order_id)
"""
RESERVATIONS = """
SELECT r.* FROM reservations r JOIN unnest($1::text[], $2::text[]) AS k(sku, order_id) USING (sku, order_id)
UNION
SELECT * FROM reservations WHERE sku = ANY($3::text[])
"""
# The SKUs planning looks at: products still sold.
PLANNED_SKUS = "SELECT sku FROM skus WHERE product IS NOT NULL AND NOT (product->>'discontinued')::boolean ORDER BY sku"
STREAM_VERSIONS = "SELECT stream_id, max(version) AS version FROM events GROUP BY stream_id"
# What the daily review looks at: backorders whose ETA passed, and SKUs with a purchase order that did not
# come by its date (order_id NULL), in SKU order.
OVERDUE = """
SELECT sku, order_id FROM (
    SELECT sku, order_id FROM backorders WHERE eta < $1
    UNION ALL
    SELECT DISTINCT sku, NULL FROM replenishments WHERE expected_on < $1
) overdue ORDER BY sku, order_id NULLS FIRST LIMIT $2
"""
SAVE_ROOTS = """
INSERT INTO skus (sku, version, product, on_hand, reserved, backordered, next_seq, front_seq, reservations_made,
                  enqueued_units, removed_units, learned_lead_time_days, learned_delay_days)
SELECT * FROM unnest($1::text[], $2::int[], $3::jsonb[], $4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[], $8::bigint[],
                     $9::bigint[], $10::bigint[], $11::bigint[], $12::int[], $13::int[])
ON CONFLICT (sku) DO UPDATE SET version = EXCLUDED.version, product = EXCLUDED.product, on_hand = EXCLUDED.on_hand,
    reserved = EXCLUDED.reserved, backordered = EXCLUDED.backordered, next_seq = EXCLUDED.next_seq,
    front_seq = EXCLUDED.front_seq, reservations_made = EXCLUDED.reservations_made,
    enqueued_units = EXCLUDED.enqueued_units, removed_units = EXCLUDED.removed_units,
    learned_lead_time_days = EXCLUDED.learned_lead_time_days, learned_delay_days = EXCLUDED.learned_delay_days
"""
DROP_REPLENISHMENTS = "DELETE FROM replenishments WHERE sku = ANY($1::text[])"
SAVE_REPLENISHMENTS = """
INSERT INTO replenishments SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::date[])
"""
DROP_BACKORDERS = """
DELETE FROM backorders b USING unnest($1::text[], $2::text[]) AS k(sku, order_id)
WHERE (b.sku, b.order_id) = (k.sku, k.order_id)
"""
SAVE_BACKORDERS = """
INSERT INTO backorders SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::int[], $6::date[],
                                            $7::date[], $8::date[], $9::date[])
ON CONFLICT (sku, order_id) DO UPDATE SET seq = EXCLUDED.seq, ticket = EXCLUDED.ticket, quantity = EXCLUDED.quantity,
    placed_on = EXCLUDED.placed_on, eta = EXCLUDED.eta, reviewed_on = EXCLUDED.reviewed_on,
    fallback_eta = EXCLUDED.fallback_eta
"""
DROP_RESERVATIONS = DROP_BACKORDERS.replace("backorders", "reservations")
SAVE_RESERVATIONS = """
INSERT INTO reservations SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::int[], $5::int[])
ON CONFLICT (sku, order_id) DO UPDATE SET since = EXCLUDED.since, from_stock = EXCLUDED.from_stock,
    filled = EXCLUDED.filled
"""


@dataclass
class Want:
    """What a batch needs of one SKU besides its root."""

    orders: set[str] = field(default_factory=set)  # whose backorder and reservation rows
    head_rows: int | None = 0  # of the queue; None: all of it
    all_reservations: bool = False

    def widen(self, missing: NotLoaded) -> None:
        if missing.what == "reservations":
            self.all_reservations = True
        elif missing.whole or self.head_rows is None:
            self.head_rows = None
        else:
            self.head_rows = max(2 * self.head_rows, FIRST_HEAD_ROWS)


class Batch:
    """The SKUs one transaction works on: loaded locked, decided on in memory, saved in one go."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn
        self.skus: dict[str, Sku] = {}
        self._versions: dict[str, int] = {}
        self._recorded: list[tuple[str, Event, Envelope]] = []

    async def load(self, wants: dict[str, Want]) -> None:
        names = sorted(wants)  # a fixed lock order: no deadlocks between batches
        roots = {r["sku"]: r for r in await self._conn.fetch(LOCK_ROOTS, names)}
        self.skus = {sku: _root(sku, roots.get(sku)) for sku in names}
        self._versions = {sku: roots[sku]["version"] if sku in roots else 0 for sku in names}
        self._recorded = []
        for r in await self._conn.fetch(REPLENISHMENTS, names):
            self.skus[r["sku"]].replenishments.append(Replenishment(r["po_id"], r["quantity"], r["expected_on"]))
        named = [(sku, order_id) for sku in names for order_id in wants[sku].orders]
        for sku, want in wants.items():  # a walk of the queue reaches as far as supply covers: a row per unit at most
            if want.head_rows:
                want.head_rows = max(want.head_rows, self.skus[sku].supply + 1)
        heads = [(sku, want.head_rows) for sku, want in wants.items()
                 if want.head_rows != 0 and self.skus[sku].backordered]
        rows = await self._conn.fetch(BACKORDERS, [s for s, _ in heads], [n for _, n in heads],
                                      [s for s, _ in named], [o for _, o in named])
        by_sku: dict[str, list[asyncpg.Record]] = defaultdict(list)
        for r in rows:
            by_sku[r["sku"]].append(r)
        for sku in names:
            _place_queue(self.skus[sku], by_sku[sku], wants[sku].head_rows)
        holders = {(sku, order_id) for sku, state in self.skus.items()
                   for order_id in (*state.queue, *state.queue_tail, *wants[sku].orders)}
        everything = [sku for sku in names if wants[sku].all_reservations]
        for r in await self._conn.fetch(RESERVATIONS, [s for s, _ in holders], [o for _, o in holders], everything):
            self.skus[r["sku"]].reservations[r["order_id"]] = Reservation(r["order_id"], r["since"], r["from_stock"],
                                                                          r["filled"])
        for sku in names:
            self.skus[sku].reservations_complete = wants[sku].all_reservations

    def record(self, sku: str, events: list[Event], cause: Envelope) -> None:
        self._recorded += [(sku, event, cause) for event in events]
        if events:
            log.debug("events recorded", stream_id=sku, order_id=getattr(events[0], "order_id", None), cause=cause.type,
                     events=[type(e).__name__ for e in events], correlation_id=cause.correlationid or cause.id)

    @property
    def events(self) -> list[tuple[str, Event]]:
        """The events recorded so far, with their SKU."""
        return [(sku, event) for sku, event, _ in self._recorded]

    async def save(self) -> list[Sku]:
        """Append the recorded events and write the rows they changed; returns the changed SKUs."""
        if not self._recorded:
            return []
        events = []
        for sku, event, cause in self._recorded:
            self._versions[sku] += 1
            events.append(NewEvent(sku, self._versions[sku], event, cause.correlationid or cause.id, cause.id,
                                   cause.traceparent))
        await append(self._conn, events)
        changed = [self.skus[sku] for sku in dict.fromkeys(sku for sku, _, _ in self._recorded)]
        await write(self._conn, changed, self._versions)
        return changed


async def write(conn: asyncpg.Connection, skus: list[Sku], versions: dict[str, int]) -> None:
    """Write the roots of `skus` and the rows of theirs that changed."""
    await conn.execute(SAVE_ROOTS, *zip(*(
        (s.sku, versions[s.sku], json.dumps(asdict(s.product)) if s.product else None, s.on_hand, s.reserved,
         s.backordered, s.next_seq, s.front_seq, s.reservations_made, s.enqueued_units, s.removed_units,
         s.learned_lead_time_days, s.learned_delay_days)
        for s in skus)))
    resupplied = [s for s in skus if s.changes.replenishments]
    if resupplied:
        await conn.execute(DROP_REPLENISHMENTS, [s.sku for s in resupplied])
        rows = [(s.sku, r.po_id, r.quantity, r.expected_on) for s in resupplied for r in s.replenishments]
        if rows:
            await conn.execute(SAVE_REPLENISHMENTS, *zip(*rows))
    for changed, drop, save, row in (
        (lambda s: s.changes.backorders, DROP_BACKORDERS, SAVE_BACKORDERS, _backorder_row),
        (lambda s: s.changes.reservations, DROP_RESERVATIONS, SAVE_RESERVATIONS, _reservation_row),
    ):
        kept, gone = [], []
        for s in skus:
            for order_id in changed(s):
                value = row(s, order_id)
                kept.append(value) if value else gone.append((s.sku, order_id))
        if gone:
            await conn.execute(drop, *zip(*gone))
        if kept:
            await conn.execute(save, *zip(*kept))
    for s in skus:
        s.changes.backorders.clear()
        s.changes.reservations.clear()
        s.changes.replenishments = False


async def rewrite(conn: asyncpg.Connection, skus: list[Sku]) -> None:
    """Replace every SKU's rows with `skus` (whole states, folded from the event store)."""
    versions = {r["stream_id"]: r["version"] for r in await conn.fetch(STREAM_VERSIONS)}
    await conn.execute("TRUNCATE skus, backorders, reservations, replenishments")
    for s in skus:
        s.changes = Changes(backorders=set(s.queue), reservations=set(s.reservations), replenishments=True)
    if skus:
        await write(conn, skus, versions)


def _backorder_row(state: Sku, order_id: str) -> tuple | None:
    b = state.backorder(order_id)
    return b and (state.sku, b.order_id, b.seq, b.ticket, b.quantity, b.placed_on, b.eta, b.reviewed_on,
                  b.fallback_eta)


def _reservation_row(state: Sku, order_id: str) -> tuple | None:
    r = state.reservations.get(order_id)
    return r and (state.sku, r.order_id, r.since, r.from_stock, r.filled)


async def planned_skus(conn: asyncpg.Connection) -> list[str]:
    return [r["sku"] for r in await conn.fetch(PLANNED_SKUS)]


async def overdue(conn: asyncpg.Connection, today: date, limit: int) -> dict[str, Want]:
    """The SKUs the daily review looks at, with the orders whose ETA passed: what it loads."""
    wants: dict[str, Want] = defaultdict(Want)
    for r in await conn.fetch(OVERDUE, today, limit):
        wants[r["sku"]].orders |= {r["order_id"]} if r["order_id"] else set()
    return dict(wants)


def _root(sku: str, row: asyncpg.Record | None) -> Sku:
    if row is None:
        return Sku(sku=sku)
    product = json.loads(row["product"]) if row["product"] else None
    return Sku(sku=sku, product=Product(**product | {"alternatives": tuple(product["alternatives"])}) if product else None,
               on_hand=row["on_hand"], reserved=row["reserved"], backordered=row["backordered"],
               next_seq=row["next_seq"], front_seq=row["front_seq"], reservations_made=row["reservations_made"],
               enqueued_units=row["enqueued_units"], removed_units=row["removed_units"],
               learned_lead_time_days=row["learned_lead_time_days"], learned_delay_days=row["learned_delay_days"])


def _place_queue(state: Sku, rows: list[asyncpg.Record], head_rows: int | None) -> None:
    """The loaded rows in queue order: the first `head_rows` are the head window (a named row further back
    comes after all of them), the rest are named rows beyond it."""
    backorders = sorted((Backorder(r["order_id"], r["quantity"], r["seq"], r["ticket"], r["placed_on"], r["eta"],
                                   r["reviewed_on"], r["fallback_eta"]) for r in rows), key=lambda b: b.seq)
    window = backorders if head_rows is None else backorders[:head_rows]
    state.queue = {b.order_id: b for b in window}
    state.queue_tail = {b.order_id: b for b in backorders[len(window):]}
    state.queue_complete = sum(b.quantity for b in window) == state.backordered
