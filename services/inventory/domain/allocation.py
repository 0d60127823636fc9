"""Stock and the orders that want it: allocation, FIFO fills, cancellation, shipping and stock counts."""

from datetime import date

from contracts.commands import AdjustStock, ReceiveStock
from contracts.events import (
    BackorderCancelled,
    BackorderCreated,
    BackorderFulfilled,
    Event,
    OrderPlaced,
    OutOfStock,
    ReservationRevoked,
    StockAdjusted,
    StockReceived,
    StockReleased,
    StockReserved,
    StockShipped,
)
from services.inventory.domain.state import Sku, apply, evolve
from services.inventory.domain.supply import (
    after_supply_changed,
    cancel_uncovered,
    eta_of_new_backorder,
    etas,
    overdue_rescheduled,
    reschedule_overdue,
)


def allocate(state: Sku, order: OrderPlaced, quantity: int, today: date) -> list[Event]:
    """Reserve what is available now; the rest becomes a backorder when it may, else the line is refused.
    A backorder is never promised a date before those ahead of it: purchase orders that did not come by
    their date are rescheduled first, as the daily review would."""
    if refusal := _refusal(state, order, quantity):
        reason, message = refusal
        return [OutOfStock(order_id=order.order_id, sku=state.sku, quantity=quantity, reason=reason, message=message)]
    draft = state.draft()
    events = apply(draft, reschedule_overdue(draft, today)) if quantity > draft.available else []
    reserved = min(quantity, draft.available)
    if reserved:
        events.append(StockReserved(order_id=order.order_id, sku=state.sku, quantity=reserved))
    if short := quantity - reserved:
        events.append(BackorderCreated(order_id=order.order_id, sku=state.sku, quantity=short,
                                       estimated_ship_date=eta_of_new_backorder(draft, short, today),
                                       backordered_on=today))
    return events


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


def receive_stock(state: Sku, cmd: ReceiveStock, today: date) -> list[Event]:
    """Stock arrives: fill waiting backorders oldest first, partially if short; the rest is available.
    A receipt that names no purchase order takes the units it fills from the head of the queue and as many
    from the earliest expected supply: what still waits keeps the supply it counted on, and its ETA."""
    draft = state.draft()
    reach = draft.supply
    return apply(draft, [StockReceived(**cmd.model_dump())]) + settle(draft, reach, today, etas_move=bool(cmd.po_id))


def cancel(state: Sku, order_id: str, today: date) -> list[Event]:
    """The customer's cancellation: release what the order holds of this SKU, its reserved stock and its
    waiting backorder. Units already filled from a backorder ship and are kept. Freed stock fills older
    backorders at once."""
    draft = state.draft()
    waiting = draft.backorder(order_id)
    held = draft.reservations.get(order_id)
    events: list[Event] = []
    if waiting:
        events.append(BackorderCancelled(order_id=order_id, sku=state.sku, quantity=waiting.quantity))
    events.append(StockReleased(order_id=order_id, sku=state.sku, quantity=held.from_stock if held else 0,
                                backorder_cancelled=waiting.quantity if waiting else 0,
                                kept=held.filled if held else 0))
    # Only a backorder leaving the supply-covered head moves the units behind onto purchase orders; beyond it they
    # move up among ETAs that rest on the lead time, and an order that waits for nothing here moves nothing.
    within_supply = waiting and draft.units_ahead_at_least(waiting) < draft.supply
    releases_stock = held and held.from_stock  # which fills the head
    reach = draft.supply
    return apply(draft, events) + settle(draft, reach, today, etas_move=bool(within_supply or releases_stock))


def ship(state: Sku, order_id: str, quantity: int, today: date) -> list[Event]:
    """Shipped units leave the warehouse and close the order's reservation of them. If a count had just sent
    some of them back to the queue, they were there after all: they leave the order's backorder. The event
    tells what the order still holds and waits for, which its books adopt if a count crossed the shipment."""
    held = state.reservations[order_id].held if order_id in state.reservations else 0
    waiting = state.backorder(order_id)
    shipped = min(quantity, held + (waiting.quantity if waiting else 0))
    if not shipped:
        return []
    draft = state.draft()
    evolve(draft, StockShipped(sku=state.sku, order_id=order_id, quantity=shipped))  # what is left follows
    left, still_waiting = draft.reservations.get(order_id), draft.backorder(order_id)
    told = StockShipped(sku=state.sku, order_id=order_id, quantity=shipped,
                        reserved=left.from_stock if left else 0, filled=left.filled if left else 0,
                        waiting=still_waiting.quantity if still_waiting else 0,
                        estimated_ship_date=still_waiting.eta if still_waiting else None,
                        backordered_on=still_waiting.placed_on if still_waiting else None)
    return [told] + (settle(draft, draft.supply, today) if shipped > held else [])


def adjust_stock(state: Sku, cmd: AdjustStock, today: date) -> list[Event]:
    """Record what a count found. Below what is reserved, the newest reservations go back to backorder
    (ahead of the queue, the oldest first: they were promised first), each told its ETA once; above it,
    the surplus fills waiting backorders."""
    draft = state.draft()
    events = apply(draft, [StockAdjusted(sku=cmd.sku, counted_quantity=cmd.counted_quantity,
                                         previous_on_hand=draft.on_hand, reason=cmd.reason)])
    reach = draft.supply
    if (shortfall := draft.reserved - draft.on_hand) > 0:
        revoked: list[tuple[str, int]] = []
        for held in sorted(draft.all_reservations(), key=lambda r: r.since, reverse=True):
            revoked.append((held.order_id, min(shortfall, held.held)))
            shortfall -= revoked[-1][1]
            if shortfall <= 0:
                break
        # Work out the queue they make, and what a discontinued product's cancels of it, before telling anyone
        # an ETA, so that no one hears two dates (nor one resting on a purchase order already overdue).
        events += apply(draft, overdue_rescheduled(draft, today))
        trial = draft.draft()
        for order_id, quantity in revoked:
            evolve(trial, ReservationRevoked(order_id=order_id, sku=state.sku, quantity=quantity,
                                             estimated_ship_date=today + draft.lead_time, revoked_on=today,
                                             waiting=0))
        told = {b.order_id: (eta, b.quantity) for b, eta in etas(trial, reach=sum(q for _, q in revoked))}
        apply(trial, cancel_uncovered(trial))
        told |= {b.order_id: (eta, b.quantity) for b, eta in etas(trial, reach=sum(q for _, q in revoked))}
        events += apply(draft, [
            ReservationRevoked(order_id=order_id, sku=state.sku, quantity=quantity, estimated_ship_date=told[order_id][0],
                               revoked_on=today, waiting=told[order_id][1])
            for order_id, quantity in revoked
        ])
        reach += sum(q for _, q in revoked)
    return events + settle(draft, reach, today)


def settle(draft: Sku, reach: int | None, today: date, etas_move: bool = True) -> list[Event]:
    """After stock, supply or the queue changed: available stock fills the oldest waiting backorders,
    partially when short; then what supply cannot fill of a discontinued product is cancelled, and the
    ETAs of what still waits move (unless the caller knows that none can)."""
    fills: list[Event] = []
    available = draft.available
    rows = draft.head() if draft.backordered else iter(())
    while available > 0 and (backorder := next(rows, None)):
        filled = min(backorder.quantity, available)
        available -= filled
        fills.append(BackorderFulfilled(order_id=backorder.order_id, sku=draft.sku, quantity=filled,
                                        remaining=backorder.quantity - filled))
    return apply(draft, fills) + after_supply_changed(draft, reach, today, etas_move=etas_move)
