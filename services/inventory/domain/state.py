"""The SKU aggregate's state, and `evolve`, the one place where events change it.

The state of a SKU with a long backorder queue is loaded in part: the root (stock, product, purchase
orders), the head of the queue up to what the batch needs, and the rows of the orders it names. A decision
that reaches past what was loaded raises NotLoaded; the handler loads more and decides again."""

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import date, timedelta

from contracts.events import (
    BackorderCancelled,
    BackorderCreated,
    BackorderEtaChanged,
    BackorderFulfilled,
    Event,
    LeadTimeLearned,
    ProductDiscontinued,
    ProductRegistered,
    ProductUpdated,
    ReplenishmentCancelled,
    ReplenishmentExpected,
    ReplenishmentRescheduled,
    ReservationRevoked,
    StockAdjusted,
    StockReceived,
    StockReleased,
    StockReserved,
    StockShipped,
)


@dataclass(frozen=True, slots=True)
class Product:
    name: str
    backorderable: bool
    discontinued: bool
    lead_time_days: int
    safety_stock: int = 0  # set by hand; 0: planning computes it
    alternatives: tuple[str, ...] = ()
    service_level: float = 0.95


@dataclass(frozen=True, slots=True)
class Backorder:
    order_id: str
    quantity: int  # still waiting
    seq: int  # place in the queue: lower is served first
    # Units enqueued ahead of it when it joined, less those removed since (see `Sku.units_ahead_at_least`).
    ticket: int
    placed_on: date
    eta: date
    # The day it was placed (or the review that last moved it) and the ETA promised then: a computed date
    # earlier than `reviewed_on` (an overdue purchase order) is stale, and `fallback_eta` stands.
    reviewed_on: date
    fallback_eta: date


@dataclass(frozen=True, slots=True)
class Reservation:
    order_id: str
    since: int  # order of creation: a count takes back the newest first
    from_stock: int = 0  # reserved when the order was placed: released if it is cancelled
    filled: int = 0  # backordered units since filled: they ship, a cancellation keeps them

    @property
    def held(self) -> int:
        return self.from_stock + self.filled


@dataclass(frozen=True, slots=True)
class Replenishment:
    po_id: str
    quantity: int  # not yet received
    expected_on: date


class Refused(Exception):
    """A command that cannot apply to the SKU as it is; the reason says why."""


class NotLoaded(Exception):
    """A decision needs more of the SKU than was loaded: more of the queue's head (`whole`: all of it), or
    every reservation."""

    def __init__(self, sku: str, what: str, whole: bool = False) -> None:
        super().__init__(f"{sku}: {what} not loaded")
        self.sku, self.what, self.whole = sku, what, whole


@dataclass
class Changes:
    """Which rows of the SKU evolve touched since it was loaded: what saving it writes."""

    backorders: set[str] = field(default_factory=set)
    reservations: set[str] = field(default_factory=set)
    replenishments: bool = False


@dataclass
class Sku:
    sku: str
    product: Product | None = None
    on_hand: int = 0  # physically in the warehouse
    reserved: int = 0  # of on_hand, promised to orders
    backordered: int = 0  # units waiting over all backorders
    replenishments: list[Replenishment] = field(default_factory=list)  # earliest first, all of them
    # The queue's head in order, or the whole queue when `queue_complete`; rows outside it that the batch
    # named (or appended while the queue is not all loaded) are in `queue_tail`.
    queue: dict[str, Backorder] = field(default_factory=dict)
    queue_complete: bool = True
    queue_tail: dict[str, Backorder] = field(default_factory=dict)
    reservations: dict[str, Reservation] = field(default_factory=dict)  # loaded ones, by order id
    reservations_complete: bool = True
    next_seq: int = 0  # for the tail of the queue
    front_seq: int = 0  # for the head: a count's revoked reservations go first
    reservations_made: int = 0
    enqueued_units: int = 0  # ever put at the tail of the queue
    removed_units: int = 0  # ever taken out of it (filled, cancelled, shipped)
    learned_lead_time_days: int | None = None  # a high quantile of the deliveries so far; else the product's
    learned_delay_days: int = 0  # a high quantile of how late deliveries came after their expected date
    changes: Changes = field(default_factory=Changes, compare=False, repr=False)

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved

    @property
    def supply(self) -> int:
        """Units expected from purchase orders."""
        return sum(r.quantity for r in self.replenishments)

    @property
    def lead_time(self) -> timedelta:
        """What an ETA resting on the lead time adds: the learned lead time, the product's until there is one."""
        if self.learned_lead_time_days is not None:
            return timedelta(days=self.learned_lead_time_days)
        return timedelta(days=self.product.lead_time_days if self.product else 0)

    @property
    def supplier_delay(self) -> timedelta:
        """What an ETA resting on a purchase order adds to its expected date: the supplier's usual lateness."""
        return timedelta(days=self.learned_delay_days)

    def head(self) -> Iterator[Backorder]:
        """The waiting backorders, oldest first; NotLoaded past the loaded head."""
        yield from list(self.queue.values())
        if not self.queue_complete:
            raise NotLoaded(self.sku, "queue")

    def units_ahead_at_least(self, backorder: Backorder) -> int:
        """A lower bound of the units waiting ahead of `backorder`, without walking the queue: its ticket
        counts every unit enqueued before it, and every unit removed since may have been ahead of it."""
        return backorder.ticket - self.removed_units

    def backorder(self, order_id: str) -> Backorder | None:
        return self.queue.get(order_id) or self.queue_tail.get(order_id)

    def all_reservations(self) -> list[Reservation]:
        if not self.reservations_complete:
            raise NotLoaded(self.sku, "reservations", whole=True)
        return list(self.reservations.values())

    def draft(self) -> "Sku":
        """A copy a decision may evolve to reason step by step; rows are immutable, so it is shallow."""
        return replace(self, replenishments=list(self.replenishments), queue=dict(self.queue),
                       queue_tail=dict(self.queue_tail), reservations=dict(self.reservations), changes=Changes())


def evolve(state: Sku, event: Event) -> Sku:
    """Fold one event into the state (in place), and return it."""
    match event:
        case ProductRegistered() | ProductUpdated():
            state.product = Product(event.name, event.backorderable, event.discontinued, event.lead_time_days,
                                    event.safety_stock, tuple(event.alternatives), event.service_level)
        case LeadTimeLearned():
            state.learned_lead_time_days = event.lead_time_days
            state.learned_delay_days = event.delay_days
        case ProductDiscontinued():
            state.product = replace(state.product, discontinued=True)
        case ReplenishmentExpected():
            _set_replenishments(state, state.replenishments + [
                Replenishment(event.po_id, event.quantity, event.expected_on)])
        case ReplenishmentRescheduled():
            _set_replenishments(state, [replace(r, expected_on=event.expected_on) if r.po_id == event.po_id else r
                                        for r in state.replenishments])
        case ReplenishmentCancelled():
            _set_replenishments(state, [r for r in state.replenishments if r.po_id != event.po_id])
        case StockReceived():
            state.on_hand += event.quantity
            _count_against_replenishments(state, event.quantity, event.po_id)
        case StockAdjusted():
            state.on_hand = event.counted_quantity
        case StockReserved():
            state.reserved += event.quantity
            _hold(state, event.order_id, from_stock=event.quantity)
        case BackorderCreated():
            state.backordered += event.quantity
            _put_backorder(state, Backorder(event.order_id, event.quantity, state.next_seq, state.enqueued_units,
                                            event.backordered_on, event.estimated_ship_date, event.backordered_on,
                                            event.estimated_ship_date))
            state.next_seq += 1
            state.enqueued_units += event.quantity
        case BackorderFulfilled():
            state.reserved += event.quantity
            _hold(state, event.order_id, filled=event.quantity)
            _take_from_backorder(state, event.order_id, event.quantity)
        case BackorderCancelled():
            _take_from_backorder(state, event.order_id, event.quantity)
        case BackorderEtaChanged():
            waiting = state.backorder(event.order_id)
            moved = replace(waiting, eta=event.estimated_ship_date)
            if event.overdue_on:
                moved = replace(moved, reviewed_on=event.overdue_on, fallback_eta=event.estimated_ship_date)
            _put_backorder(state, moved)
        case StockReleased():
            state.reserved -= event.quantity
            _hold(state, event.order_id, from_stock=-event.quantity)
        case StockShipped():
            held = state.reservations[event.order_id].held if event.order_id in state.reservations else 0
            from_reservation = min(held, event.quantity)
            # Units a count had just sent back to the queue left after all: the count was short by them, but
            # what others hold stays on hand until the next count says otherwise.
            taken = event.quantity - from_reservation
            state.on_hand -= from_reservation + min(taken, max(0, state.available))
            state.reserved -= from_reservation
            _unhold(state, event.order_id, from_reservation)
            if taken:
                _take_from_backorder(state, event.order_id, taken)
        case ReservationRevoked():
            state.reserved -= event.quantity
            _unhold(state, event.order_id, event.quantity)
            state.backordered += event.quantity
            waiting = state.backorder(event.order_id)
            if waiting:  # joins what the order already waits for, keeping when that started to wait
                _drop_backorder(state, event.order_id)
            state.front_seq -= 1
            placed_on = min(waiting.placed_on, event.revoked_on) if waiting else event.revoked_on
            # Told its ETA the day of the revocation: no later walk of the queue may promise it a day before that
            # (the order waited since an earlier day, when a shorter lead time would have given one).
            _put_backorder(state, Backorder(event.order_id, event.quantity + (waiting.quantity if waiting else 0),
                                            state.front_seq, state.removed_units, placed_on, event.estimated_ship_date,
                                            event.revoked_on, event.estimated_ship_date),
                           at_head=True)
    return state


def _set_replenishments(state: Sku, replenishments: list[Replenishment]) -> None:
    state.replenishments = sorted(replenishments, key=lambda r: (r.expected_on, r.po_id))
    state.changes.replenishments = True


def _count_against_replenishments(state: Sku, quantity: int, po_id: str | None) -> None:
    """A receipt that names its purchase order closes it: what it did not bring is no longer expected (a
    short delivery moves the ETAs that counted on it). One that names none counts against the earliest."""
    if po_id:
        _set_replenishments(state, [r for r in state.replenishments if r.po_id != po_id])
        return
    left = []
    for replenishment in state.replenishments:
        take = min(quantity, replenishment.quantity)
        quantity -= take
        if replenishment.quantity > take:
            left.append(replace(replenishment, quantity=replenishment.quantity - take))
    _set_replenishments(state, left)


def _hold(state: Sku, order_id: str, from_stock: int = 0, filled: int = 0) -> None:
    held = state.reservations.get(order_id)
    if held is None:
        held = Reservation(order_id, since=state.reservations_made)
        state.reservations_made += 1
    _put_reservation(state, replace(held, from_stock=held.from_stock + from_stock, filled=held.filled + filled))


def _unhold(state: Sku, order_id: str, quantity: int) -> None:
    """Units leave the reservation (shipped, or revoked by a count), those reserved from stock first."""
    if not quantity:
        return
    held = state.reservations[order_id]
    from_stock = min(held.from_stock, quantity)
    _put_reservation(state, replace(held, from_stock=held.from_stock - from_stock,
                                    filled=held.filled - (quantity - from_stock)))


def _put_reservation(state: Sku, reservation: Reservation) -> None:
    if reservation.held:
        state.reservations[reservation.order_id] = reservation
    else:
        state.reservations.pop(reservation.order_id, None)
    state.changes.reservations.add(reservation.order_id)


def _take_from_backorder(state: Sku, order_id: str, quantity: int) -> None:
    state.backordered -= quantity
    state.removed_units += quantity
    waiting = state.backorder(order_id)
    if waiting.quantity == quantity:
        _drop_backorder(state, order_id)
    else:
        _put_backorder(state, replace(waiting, quantity=waiting.quantity - quantity))


def _put_backorder(state: Sku, backorder: Backorder, at_head: bool = False) -> None:
    order_id = backorder.order_id
    if at_head:
        state.queue = {order_id: backorder, **state.queue}
    elif order_id in state.queue or (state.queue_complete and order_id not in state.queue_tail):
        state.queue[order_id] = backorder  # in place, or appended to a queue loaded whole
    else:
        state.queue_tail[order_id] = backorder
    state.changes.backorders.add(order_id)


def _drop_backorder(state: Sku, order_id: str) -> None:
    state.queue.pop(order_id, None) or state.queue_tail.pop(order_id, None)
    state.changes.backorders.add(order_id)


def apply(state: Sku, events: list[Event]) -> list[Event]:
    """Fold `events` into `state` and return them: how a decision reasons step by step on its draft."""
    for event in events:
        evolve(state, event)
    return events
