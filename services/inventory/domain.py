"""The SKU aggregate, pure: allocation, backorders, FIFO fulfilment and ETAs. No I/O.

Each decision emits events and applies them to the state as it goes (through `evolve`), so the next
decision in a batch sees the last. Folding the emitted events from an empty state gives the same state.
"""

from datetime import date, timedelta

from pydantic import BaseModel

from contracts.commands import (
    AdjustStock,
    CancelReplenishment,
    DiscontinueProduct,
    ExpectReplenishment,
    ReceiveStock,
    RegisterProduct,
    RescheduleReplenishment,
    UpdateProduct,
)
from contracts.events import (
    AvailabilityChanged,
    BackorderCancelled,
    BackorderCreated,
    BackorderEtaChanged,
    BackorderFulfilled,
    Event,
    OrderPlaced,
    OutOfStock,
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
)


class Product(BaseModel):
    name: str
    backorderable: bool
    discontinued: bool
    lead_time_days: int
    safety_stock: int = 0
    alternatives: list[str] = []


class Backorder(BaseModel):
    order_id: str
    quantity: int  # still waiting
    placed_on: date
    eta: date


class Replenishment(BaseModel):
    po_id: str
    quantity: int  # not yet received
    expected_on: date


class Reservation(BaseModel):
    since: int = 0  # order of creation (the snapshot is jsonb, which does not keep key order)
    from_stock: int = 0  # reserved when the order was placed: released if it is cancelled
    filled: int = 0  # backordered units since filled: they ship, a cancellation keeps them


class Sku(BaseModel):
    sku: str
    product: Product | None = None
    on_hand: int = 0  # physically in the warehouse
    reserved: int = 0  # of on_hand, promised to orders
    reservations: dict[str, Reservation] = {}  # by order_id
    reservations_made: int = 0
    backorders: list[Backorder] = []  # oldest first
    backordered: int = 0  # units waiting over all backorders, kept so that allocation need not sum them
    replenishments: list[Replenishment] = []  # earliest first

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved


# --- decisions ---------------------------------------------------------------------------------


def register_product(state: Sku, cmd: RegisterProduct) -> list[Event]:
    product = Product(**cmd.model_dump(exclude={"sku"}))
    if state.product == product:
        return []
    return _apply(state, [ProductRegistered(sku=cmd.sku, **product.model_dump())])


def update_product(state: Sku, cmd: UpdateProduct, today: date) -> list[Event]:
    """New product facts; a new lead time moves the ETAs that rest on it."""
    if state.product is None:
        raise UnknownProduct(f"UpdateProduct for {cmd.sku}: no such product")
    product = state.product.model_copy(update=cmd.model_dump(exclude={"sku"}, exclude_none=True))
    if product == state.product:
        return []
    events = _apply(state, [ProductUpdated(sku=cmd.sku, **product.model_dump())])
    return events + _apply(state, _eta_changes(state, today))


def discontinue_product(state: Sku, cmd: DiscontinueProduct, today: date) -> list[Event]:
    """No new backorders. Waiting ones that replenishments already expected will fill keep waiting; the
    units they cannot fill are cancelled, and the customers told why."""
    if state.product is None:
        raise UnknownProduct(f"DiscontinueProduct for {cmd.sku}: no such product")
    if state.product.discontinued:
        return []
    events = _apply(state, [ProductDiscontinued(sku=cmd.sku, reason=cmd.reason)])
    return events + _cancel_what_supply_cannot_fill(state, today, cmd.reason)


def _cancel_what_supply_cannot_fill(state: Sku, today: date, reason: str | None = None) -> list[Event]:
    """For a discontinued product: waiting units that no expected replenishment will fill are cancelled;
    what still waits may now count on a nearer replenishment."""
    if not (state.product and state.product.discontinued):
        return []
    why = f"{state.product.name} is discontinued" + (f": {reason}" if reason else "")
    supply = sum(r.quantity for r in state.replenishments)
    cancellations: list[Event] = []
    for backorder in state.backorders:
        covered = min(backorder.quantity, supply)
        supply -= covered
        if uncovered := backorder.quantity - covered:
            cancellations += [
                BackorderCancelled(order_id=backorder.order_id, sku=state.sku, quantity=uncovered),
                StockReleased(order_id=backorder.order_id, sku=state.sku, quantity=0,
                              backorder_cancelled=uncovered, kept=0, reason=why),
            ]
    return _apply(state, cancellations) + _apply(state, _eta_changes(state, today))


class UnknownProduct(Exception):
    """A product command for a SKU that was never registered."""


def expect_replenishment(state: Sku, cmd: ExpectReplenishment, today: date) -> list[Event]:
    if any(r.po_id == cmd.po_id for r in state.replenishments):
        return []  # the same purchase order again
    events = _apply(state, [ReplenishmentExpected(**cmd.model_dump())])
    return events + _apply(state, _eta_changes(state, today))


def reschedule_replenishment(state: Sku, cmd: RescheduleReplenishment, today: date) -> list[Event]:
    replenishment = next((r for r in state.replenishments if r.po_id == cmd.po_id), None)
    if replenishment is None or replenishment.expected_on == cmd.expected_on:
        return []  # unknown, already delivered, or no change
    events = _apply(state, [ReplenishmentRescheduled(**cmd.model_dump())])
    return events + _apply(state, _eta_changes(state, today))


def cancel_replenishment(state: Sku, cmd: CancelReplenishment, today: date) -> list[Event]:
    if not any(r.po_id == cmd.po_id for r in state.replenishments):
        return []
    events = _apply(state, [ReplenishmentCancelled(**cmd.model_dump())])
    events += _apply(state, _eta_changes(state, today))
    return events + _cancel_what_supply_cannot_fill(state, today)


def receive_stock(state: Sku, cmd: ReceiveStock, today: date) -> list[Event]:
    """Stock arrives: fill waiting backorders oldest first, partially if short; the rest is available."""
    events = _apply(state, [StockReceived(**cmd.model_dump())])
    events += _fill_backorders(state, today)
    return events + _cancel_what_supply_cannot_fill(state, today)


def adjust_stock(state: Sku, cmd: AdjustStock, today: date) -> list[Event]:
    """Record what a count found. Below what is reserved, the newest reservations go back to backorder
    (ahead of the queue: they were promised first); above it, the surplus fills waiting backorders."""
    events = _apply(state, [StockAdjusted(sku=cmd.sku, counted_quantity=cmd.counted_quantity,
                                          previous_on_hand=state.on_hand, reason=cmd.reason)])
    shortfall = state.reserved - state.on_hand
    revoked: list[tuple[str, int]] = []
    for order_id in sorted(state.reservations, key=lambda o: state.reservations[o].since, reverse=True):
        if shortfall <= 0:
            break
        held = state.reservations[order_id]
        revoked.append((order_id, min(shortfall, held.from_stock + held.filled)))
        shortfall -= revoked[-1][1]
    if revoked:
        # Each goes to the head of the queue, the oldest reservation first: work out the queue they make
        # before telling anyone an ETA, so that no one is told one date and then another.
        trial = state.model_copy(deep=True)
        for order_id, quantity in revoked:
            evolve(trial, ReservationRevoked(order_id=order_id, sku=state.sku, quantity=quantity,
                                             estimated_ship_date=today, revoked_on=today, waiting=0))
        etas = {b.order_id: (eta, b.quantity) for b, eta in zip(trial.backorders, _etas(trial, today), strict=True)}
        events += _apply(state, [
            ReservationRevoked(order_id=order_id, sku=state.sku, quantity=quantity, estimated_ship_date=etas[order_id][0],
                               revoked_on=today, waiting=etas[order_id][1])
            for order_id, quantity in revoked
        ])
    return events + _fill_backorders(state, today)


def cancel(state: Sku, order_id: str, today: date) -> list[Event]:
    """Release what the order holds of this SKU: its reserved stock and its waiting backorder. Units
    already filled from a backorder ship and are kept. Freed stock fills older backorders at once."""
    backorder = next((b for b in state.backorders if b.order_id == order_id), None)
    reservation = state.reservations.get(order_id, Reservation(since=0))
    events: list[Event] = []
    if backorder:
        events.append(BackorderCancelled(order_id=order_id, sku=state.sku, quantity=backorder.quantity))
    events.append(
        StockReleased(order_id=order_id, sku=state.sku, quantity=reservation.from_stock,
                      backorder_cancelled=backorder.quantity if backorder else 0, kept=reservation.filled)
    )
    return _apply(state, events) + _fill_backorders(state, today)


def _fill_backorders(state: Sku, today: date) -> list[Event]:
    """Available stock fills waiting backorders oldest first, partially when short; the ETAs of those
    still waiting are recomputed."""
    fills: list[Event] = []
    available = state.available
    for backorder in state.backorders:
        if available == 0:
            break
        filled = min(backorder.quantity, available)
        available -= filled
        fills.append(
            BackorderFulfilled(
                order_id=backorder.order_id, sku=state.sku, quantity=filled, remaining=backorder.quantity - filled
            )
        )
    return _apply(state, fills) + _apply(state, _eta_changes(state, today))


def allocate(state: Sku, order: OrderPlaced, quantity: int, today: date) -> list[Event]:
    """Reserve what is available now; the rest becomes a backorder when it may, else the line is refused."""
    refusal = _refusal(state, order, quantity)
    if refusal:
        reason, message = refusal
        return [OutOfStock(order_id=order.order_id, sku=state.sku, quantity=quantity, reason=reason, message=message)]
    events: list[Event] = []
    reserved = min(quantity, state.available)
    if reserved:
        events.append(StockReserved(order_id=order.order_id, sku=state.sku, quantity=reserved))
    if short := quantity - reserved:
        eta = _eta_of_new_backorder(state, short, today)
        events.append(
            BackorderCreated(
                order_id=order.order_id, sku=state.sku, quantity=short, estimated_ship_date=eta, backordered_on=today
            )
        )
    return _apply(state, events)


def _refusal(state: Sku, order: OrderPlaced, quantity: int) -> tuple[str, str] | None:
    product = state.product
    if product is None:
        return "unknown_sku", f"{state.sku} is not a product we sell"
    if quantity <= state.available:
        return None
    if product.discontinued:
        return "discontinued", f"{product.name} is discontinued and only {state.available} are left"
    if not product.backorderable:
        return "not_backorderable", f"{product.name} cannot be backordered and only {state.available} are in stock"
    if not order.allow_backorder:
        return "backorders_not_allowed", f"only {state.available} of {product.name} are in stock and backorders were declined"
    return None


def _lead_time(state: Sku) -> timedelta:
    return timedelta(days=state.product.lead_time_days if state.product else 0)


def _etas(state: Sku, today: date) -> list[date]:
    """Estimated ship date of each waiting backorder: the expected replenishment that covers its last
    unit, oldest backorder served first, else the day it was placed plus the supplier lead time. Never a
    day already past."""
    lead_time = _lead_time(state)
    supply = [[r.expected_on, r.quantity] for r in state.replenishments]
    demand = [(b.quantity, b.placed_on) for b in state.backorders]
    etas = []
    for need, placed_on in demand:
        covered_on = None
        while need and supply:
            take = min(need, supply[0][1])
            need -= take
            supply[0][1] -= take
            covered_on = supply[0][0]
            if supply[0][1] == 0:
                supply.pop(0)
        etas.append(max(today, covered_on if need == 0 and covered_on else placed_on + lead_time))
    return etas


def _eta_of_new_backorder(state: Sku, quantity: int, today: date) -> date:
    """The ETA `_etas` would give a backorder of `quantity` placed today behind the waiting ones, without
    walking the queue: those take the first `state.backordered` units of expected supply."""
    promised, need = state.backordered, quantity
    for replenishment in state.replenishments:
        free = replenishment.quantity - min(promised, replenishment.quantity)
        promised -= replenishment.quantity - free
        need -= min(need, free)
        if free and need == 0:
            return max(today, replenishment.expected_on)
    return today + _lead_time(state)


def _eta_changes(state: Sku, today: date) -> list[Event]:
    return [
        BackorderEtaChanged(
            order_id=b.order_id,
            sku=state.sku,
            quantity=b.quantity,
            previous_estimated_ship_date=b.eta,
            estimated_ship_date=eta,
        )
        for b, eta in zip(state.backorders, _etas(state, today), strict=True)
        if eta != b.eta
    ]


def _apply(state: Sku, events: list[Event]) -> list[Event]:
    for event in events:
        evolve(state, event)
    return events


def availability_changes(shown_before: tuple[str, int, date | None], state: Sku, today: date) -> list[Event]:
    """AvailabilityChanged when what a storefront should show differs from `shown_before`."""
    status, available, eta = availability(state, today)
    if (status, available, eta) == shown_before:
        return []
    return [AvailabilityChanged(sku=state.sku, status=status, available=available, estimated_ship_date=eta)]


def availability(state: Sku, today: date) -> tuple[str, int, date | None]:
    """What a storefront should show: ("in_stock", quantity, None), ("backorderable", 0, eta) or
    ("unavailable", 0, None)."""
    if state.product is None:
        return "unavailable", 0, None
    if state.available > 0:
        return "in_stock", state.available, None
    if state.product.discontinued or not state.product.backorderable:
        return "unavailable", 0, None
    return "backorderable", 0, _eta_of_new_backorder(state, 1, today)


# --- evolution ---------------------------------------------------------------------------------


def evolve(state: Sku, event: Event) -> Sku:
    """Fold one event into the state (in place), and return it."""
    match event:
        case ProductRegistered() | ProductUpdated():
            state.product = Product(**event.model_dump(exclude={"sku"}))
        case ProductDiscontinued():
            state.product.discontinued = True
        case ReplenishmentExpected():
            state.replenishments.append(Replenishment(po_id=event.po_id, quantity=event.quantity, expected_on=event.expected_on))
            state.replenishments.sort(key=lambda r: (r.expected_on, r.po_id))
        case ReplenishmentRescheduled():
            next(r for r in state.replenishments if r.po_id == event.po_id).expected_on = event.expected_on
            state.replenishments.sort(key=lambda r: (r.expected_on, r.po_id))
        case ReplenishmentCancelled():
            state.replenishments = [r for r in state.replenishments if r.po_id != event.po_id]
        case StockReceived():
            state.on_hand += event.quantity
            _count_against_replenishments(state, event.quantity, event.po_id)
        case StockAdjusted():
            state.on_hand = event.counted_quantity
        case ReservationRevoked():
            state.reserved -= event.quantity
            held = state.reservations[event.order_id]
            from_stock = min(held.from_stock, event.quantity)
            held.from_stock -= from_stock
            held.filled -= event.quantity - from_stock
            if not held.from_stock and not held.filled:
                del state.reservations[event.order_id]
            state.backordered += event.quantity
            waiting = next((b for b in state.backorders if b.order_id == event.order_id), None)
            if waiting:  # joins what the order already waits for, keeping when that started to wait
                state.backorders.remove(waiting)
            state.backorders.insert(0, Backorder(
                order_id=event.order_id, quantity=event.quantity + (waiting.quantity if waiting else 0),
                placed_on=min(waiting.placed_on, event.revoked_on) if waiting else event.revoked_on,
                eta=event.estimated_ship_date))
        case StockReserved():
            state.reserved += event.quantity
            _reservation(state, event.order_id).from_stock += event.quantity
        case BackorderCreated():
            state.backordered += event.quantity
            state.backorders.append(
                Backorder(
                    order_id=event.order_id,
                    quantity=event.quantity,
                    placed_on=event.backordered_on,
                    eta=event.estimated_ship_date,
                )
            )
        case BackorderFulfilled():
            state.reserved += event.quantity
            _reservation(state, event.order_id).filled += event.quantity
            _drop_backordered(state, event.order_id, event.quantity)
        case BackorderCancelled():
            _drop_backordered(state, event.order_id, event.quantity)
        case StockReleased():
            state.reserved -= event.quantity
            if reservation := state.reservations.get(event.order_id):
                reservation.from_stock -= event.quantity
                if not reservation.from_stock and not reservation.filled:
                    del state.reservations[event.order_id]
        case BackorderEtaChanged():
            next(b for b in state.backorders if b.order_id == event.order_id).eta = event.estimated_ship_date
    return state


def _reservation(state: Sku, order_id: str) -> Reservation:
    if order_id not in state.reservations:
        state.reservations[order_id] = Reservation(since=state.reservations_made)
        state.reservations_made += 1
    return state.reservations[order_id]


def _drop_backordered(state: Sku, order_id: str, quantity: int) -> None:
    state.backordered -= quantity
    backorder = next(b for b in state.backorders if b.order_id == order_id)
    backorder.quantity -= quantity
    if backorder.quantity == 0:
        state.backorders.remove(backorder)


def _count_against_replenishments(state: Sku, quantity: int, po_id: str | None) -> None:
    """A receipt that names its purchase order closes it: what it did not bring is no longer expected (a
    short delivery moves the ETAs that counted on it). One that names none counts against the earliest."""
    if po_id:
        state.replenishments = [r for r in state.replenishments if r.po_id != po_id]
        return
    for replenishment in state.replenishments:
        if quantity == 0:
            break
        take = min(quantity, replenishment.quantity)
        replenishment.quantity -= take
        quantity -= take
    state.replenishments = [r for r in state.replenishments if r.quantity]
