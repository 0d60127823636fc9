"""What the order service decides: placing, the outcome of each line as inventory reports it, cancelling,
shipping and goodwill. Each reads the order and returns events; the handler applies them with `evolve`."""

from collections.abc import Callable
from datetime import date
from decimal import Decimal
from uuid import uuid4

from contracts.commands import CancelOrder, PlaceOrder, ShipOrder
from contracts.events import (
    BackorderCreated,
    BackorderedLine,
    BackorderEtaChanged,
    BackorderFulfilled,
    CancellationRefused,
    CancellationRequested,
    CancelledLine,
    DiscountOffered,
    Event,
    OrderBackordered,
    OrderCancelled,
    OrderConfirmed,
    OrderLineBackordered,
    OrderLineCancelled,
    OrderLineEtaChanged,
    OrderLineFulfilled,
    OrderLineReconciled,
    OrderLineRejected,
    OrderLineReservationRevoked,
    OrderLineReserved,
    OrderPlaced,
    OrderReadyToShip,
    OrderRejected,
    OrderShipped,
    OrderStatusChanged,
    OutOfStock,
    RefundIssued,
    ReservationRevoked,
    ShipmentRefused,
    ShippedLine,
    StockReleased,
    StockReserved,
    StockShipped,
)
from services.order.domain.money import rounded
from services.order.domain.state import Order, evolve


def place(order: Order | None, cmd: PlaceOrder) -> list[Event]:
    if order is not None:
        return []  # the same order_id again: placed once
    return [OrderPlaced(**cmd.model_dump())]


def cancel(order: Order, cmd: CancelOrder) -> list[Event]:
    """Ask inventory to release the lines (or the one line) of the order, or refuse with a reason."""

    def refuse(reason: str) -> list[Event]:
        return [CancellationRefused(order_id=order.order_id, sku=cmd.sku, reason=reason)]

    if order.status in ("rejected", "cancelled", "shipped"):
        return refuse(f"the order is already {order.status}")
    if any(line.cancelling for line in order.lines):
        return refuse("a cancellation of this order is already under way")
    lines = order.lines
    if cmd.sku:
        lines = [line for line in order.lines if line.sku == cmd.sku]
        if not lines:
            return refuse(f"the order has no line for {cmd.sku}")
    open_lines = [line for line in lines if line.cancellable]
    if not open_lines:
        shipped = sum(line.shipped for line in lines)
        return refuse(f"{shipped} units already shipped; the rest was filled (it ships expedited) or cancelled"
                      if shipped else "everything left of it was already filled and ships expedited, or was cancelled")
    return [CancellationRequested(order_id=order.order_id, skus=[line.sku for line in open_lines], reason=cmd.reason)]


def ship(order: Order, cmd: ShipOrder) -> list[Event]:
    """Record what the warehouse shipped: only units reserved or filled and not yet shipped, never a line
    whose cancellation is under way. A shipment id seen before changes nothing."""
    if cmd.shipment_id in order.shipments:
        return []

    def refuse(reason: str) -> list[Event]:
        return [ShipmentRefused(order_id=order.order_id, shipment_id=cmd.shipment_id, reason=reason)]

    if cmd.lines is None:
        asked = {line.sku: line.shippable for line in order.lines if line.shippable and not line.cancelling}
        if not asked:
            return refuse(f"nothing of the order is reserved or filled and not yet shipped (it is {order.status})")
    else:
        asked = {line.sku: line.quantity for line in cmd.lines}
        skus = {line.sku for line in order.lines}
        problems = [f"the order has no line for {sku}" for sku in asked if sku not in skus]
        for sku, quantity in asked.items():
            if sku not in skus:
                continue
            line = order.line(sku)
            if line.cancelling:
                problems.append(f"{sku} is being cancelled")
            elif quantity > line.shippable:
                problems.append(f"{quantity} x {sku} asked, {line.shippable} reserved or filled and not yet shipped"
                                + (f" ({line.shipped} shipped already)" if line.shipped else ""))
        if problems:
            return refuse("; ".join(problems))
    draft = order.draft()
    shipped = OrderShipped(order_id=order.order_id, shipment_id=cmd.shipment_id,
                           lines=[ShippedLine(sku=sku, quantity=q) for sku, q in asked.items()],
                           carrier=cmd.carrier, tracking_number=cmd.tracking_number)
    evolve(draft, shipped)
    complete = draft.status == "shipped"
    return [shipped.model_copy(update={"complete": complete})]


def new_discount_code() -> str:
    return f"SORRY-{uuid4().hex[:10].upper()}"


def record_allocation(order: Order, event: Event, goodwill_percent: int = 10,
                      discount_code: Callable[[], str] = new_discount_code) -> list[Event]:
    """Record what inventory decided or did for one line, then what it brings: goodwill for a slipped
    backorder (once per order), the end of a cancellation, a status change."""
    draft = order.draft()
    line = draft.line(event.sku)
    match event:
        case StockReserved():
            recorded: Event = OrderLineReserved(order_id=order.order_id, sku=event.sku, quantity=event.quantity)
        case BackorderCreated():
            recorded = OrderLineBackordered(order_id=order.order_id, sku=event.sku, quantity=event.quantity,
                                            estimated_ship_date=event.estimated_ship_date,
                                            backordered_on=event.backordered_on)
        # A count may revoke units the order shipped meanwhile (they were there after all): the order keeps
        # only what is still held as waiting, and inventory takes the rest off its queue when it sees the
        # shipment. Until then, inventory's fills, cancellations and ETAs may speak of those units too:
        # they are capped at what the order has waiting.
        case BackorderEtaChanged():
            if not line.backordered or line.eta == event.estimated_ship_date:
                return []
            recorded = OrderLineEtaChanged(order_id=order.order_id, sku=event.sku,
                                           previous_estimated_ship_date=event.previous_estimated_ship_date,
                                           estimated_ship_date=event.estimated_ship_date)
        case BackorderFulfilled():
            if not (quantity := min(event.quantity, line.backordered)):
                return []
            recorded = OrderLineFulfilled(order_id=order.order_id, sku=event.sku, quantity=quantity)
        case ReservationRevoked():
            if quantity := min(event.quantity, line.shippable):
                recorded = OrderLineReservationRevoked(order_id=order.order_id, sku=event.sku, quantity=quantity,
                                                       estimated_ship_date=event.estimated_ship_date,
                                                       revoked_on=event.revoked_on)
            elif line.backordered and line.eta != event.estimated_ship_date:  # its units shipped; the ETA of what waits moved
                recorded = OrderLineEtaChanged(order_id=order.order_id, sku=event.sku,
                                               previous_estimated_ship_date=line.eta,
                                               estimated_ship_date=event.estimated_ship_date)
            else:
                return []
        case StockShipped():
            # Inventory's word on what the line holds and waits for after a shipment. It differs from the
            # order's only when a count crossed the shipment: the order adopts it, if it accounts for every unit.
            books = (event.reserved, event.filled, event.waiting)
            if books == (line.reserved, line.fulfilled, line.backordered) or sum(books) != line.open:
                return []
            recorded = OrderLineReconciled(order_id=order.order_id, sku=event.sku, reserved=event.reserved,
                                           fulfilled=event.filled, backordered=event.waiting,
                                           estimated_ship_date=event.estimated_ship_date,
                                           backordered_on=event.backordered_on)
        case OutOfStock():
            recorded = OrderLineRejected(order_id=order.order_id, sku=event.sku, quantity=event.quantity,
                                         reason=event.reason, message=event.message)
        case StockReleased():
            released, dropped = min(event.quantity, line.reserved), min(event.backorder_cancelled, line.backordered)
            if not (released or dropped or event.requested):
                return []
            recorded = OrderLineCancelled(order_id=order.order_id, sku=event.sku, released=released,
                                          backorder_cancelled=dropped, kept=event.kept, reason=event.reason,
                                          requested=event.requested)
        case _:
            raise TypeError(f"not an allocation event: {type(event).__name__}")
    events = _apply(draft, [recorded])
    slipped = isinstance(event, BackorderEtaChanged) and event.estimated_ship_date > event.previous_estimated_ship_date
    if slipped and draft.discount_code is None and goodwill_percent > 0:
        events += _apply(draft, [DiscountOffered(
            order_id=order.order_id, code=discount_code(), percent=goodwill_percent, cause="eta_slipped",
            reason=f"{event.sku} now ships {event.estimated_ship_date.isoformat()}, later than we said")])
    if any(line.cancelling for line in draft.lines):
        return events  # the customer's request is answered, and the status told, once all of it is done
    if draft.being_cancelled:
        events += _apply(draft, _cancellation_outcome(draft))
    return events + _apply(draft, _status_events(draft))


def offer_goodwill_for_wait(order: Order, today: date, wait_days: int, percent: int,
                            discount_code: Callable[[], str] = new_discount_code) -> list[Event]:
    """Goodwill for an order whose backorder has waited `wait_days` or more, once per order."""
    if order.status != "backordered" or order.discount_code or percent <= 0 or order.waiting_since is None:
        return []
    if (today - order.waiting_since).days < wait_days:
        return []
    return [DiscountOffered(order_id=order.order_id, code=discount_code(), percent=percent, cause="long_wait",
                            reason=f"your backorder has waited since {order.waiting_since.isoformat()}")]


def _cancellation_outcome(order: Order) -> list[Event]:
    """One answer for what was cancelled, by the customer's request or by the store (with its reason)."""
    cancelled = [CancelledLine(sku=sku, quantity=q) for sku, q in order.being_cancelled.items() if q]
    reason = "; ".join(r for r in (order.cancel_reason, *order.store_reasons) if r) or None
    rejected = [line.rejection for line in order.lines if line.rejection]
    if not cancelled:
        asked = [order.line(sku) for sku in order.being_cancelled]
        if any(line.fulfilled or line.shipped for line in asked):
            why = "everything was already filled from a receipt or shipped"
        elif refused := [line.rejection for line in asked if line.rejection]:
            why = "nothing was left to cancel: " + "; ".join(f"{r.sku}: {r.message}" for r in refused)
        else:
            why = "nothing was left to cancel"
        return [CancellationRefused(order_id=order.order_id, reason=why)]
    amount = _refund(order, cancelled)
    return [
        OrderCancelled(order_id=order.order_id, lines=cancelled, whole_order=order.status == "cancelled",
                       reason=reason, refund_amount=amount, currency=order.currency, rejected_lines=rejected),
        RefundIssued(order_id=order.order_id, amount=amount, currency=order.currency, lines=cancelled),
    ]


def _refund(order: Order, cancelled: list[CancelledLine]) -> Decimal | None:
    """The value of the priced units cancelled, in the currency's minor unit; None when none was priced.
    Rounded over everything cancelled so far, less what was refunded, so refunds never add up to more than
    the priced lines cost."""
    prices = {line.sku: line.unit_price for line in order.lines}
    if all(prices[c.sku] is None for c in cancelled):
        return None
    value = sum((line.unit_price * line.cancelled for line in order.lines if line.unit_price is not None), Decimal(0))
    charged = rounded(sum((line.unit_price * line.quantity for line in order.lines if line.unit_price is not None),
                          Decimal(0)), order.currency)
    return max(Decimal(0), min(rounded(value, order.currency), charged) - order.refunded)


def _status_events(order: Order) -> list[Event]:
    """The status event when the status differs from the last one told (a shipment tells its own)."""
    status = order.status
    if status == order.announced:
        return []
    rejected = [line.rejection for line in order.lines if line.rejection]
    match status:
        case "confirmed":
            return [OrderConfirmed(order_id=order.order_id, rejected_lines=rejected)]
        case "backordered":
            waiting = [BackorderedLine(sku=line.sku, quantity=line.backordered, estimated_ship_date=line.eta)
                       for line in order.lines if line.backordered and line.eta]
            return [OrderBackordered(order_id=order.order_id, backordered_lines=waiting, rejected_lines=rejected)]
        case "ready_to_ship":
            return [OrderReadyToShip(order_id=order.order_id, rejected_lines=rejected)]
        case "rejected":
            return [OrderRejected(order_id=order.order_id, reason="no line of the order can be ordered", lines=rejected)]
        case "cancelled":  # the last open line was refused after the rest had been cancelled
            return [OrderCancelled(order_id=order.order_id, lines=[], whole_order=True, rejected_lines=rejected)]
        case "partially_shipped" | "shipped":
            return [OrderStatusChanged(order_id=order.order_id, status=status, rejected_lines=rejected)]
    return []


def _apply(order: Order, events: list[Event]) -> list[Event]:
    for event in events:
        evolve(order, event)
    return events
