"""The order aggregate, pure: placement, the outcome of each line as inventory decides it, and the
order's status. Status events are emitted when the status a storefront sees changes."""

from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Literal
from uuid import uuid4

from pydantic import BaseModel

from contracts.commands import CancelOrder, PlaceOrder
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
    OrderLineRejected,
    OrderLineReservationRevoked,
    OrderLineReserved,
    OrderPlaced,
    OrderReadyToShip,
    OrderRejected,
    OutOfStock,
    RefundIssued,
    RejectedLine,
    ReservationRevoked,
    StockReleased,
    StockReserved,
)

Status = Literal["placed", "confirmed", "backordered", "ready_to_ship", "rejected", "cancelled"]


class Line(BaseModel):
    sku: str
    quantity: int
    unit_price: Decimal | None = None
    reserved: int = 0  # from stock when the order was placed
    backordered: int = 0  # still waiting for stock
    fulfilled: int = 0  # backordered units since filled (shipped expedited)
    cancelled: int = 0
    cancelling: bool = False  # a cancellation was requested and inventory has not answered yet
    eta: date | None = None
    waiting_since: date | None = None  # while units of the line wait: when they started to
    rejection: RejectedLine | None = None

    @property
    def decided(self) -> bool:
        return self.rejection is not None or (
            self.reserved + self.backordered + self.fulfilled + self.cancelled == self.quantity)

    @property
    def cancellable(self) -> int:
        """Units a cancellation could still take back: all but those already filled or cancelled."""
        return 0 if self.rejection else self.quantity - self.fulfilled - self.cancelled


class Order(BaseModel):
    order_id: str
    customer_id: str
    customer_email: str
    currency: str | None = None
    lines: list[Line]
    status: Status = "placed"
    cancel_reason: str | None = None
    discount_code: str | None = None
    being_cancelled: dict[str, int] = {}  # units cancelled so far in the cancellation under way, by sku

    def line(self, sku: str) -> Line:
        return next(line for line in self.lines if line.sku == sku)

    @property
    def waiting_since(self) -> date | None:
        """When the longest-waiting backordered units of the order started to wait."""
        return min((line.waiting_since for line in self.lines if line.backordered and line.waiting_since), default=None)


def place(order: Order | None, cmd: PlaceOrder) -> list[Event]:
    if order is not None:
        return []  # the same order_id again: placed once
    return [OrderPlaced(**cmd.model_dump())]


def cancel(order: Order, cmd: CancelOrder) -> list[Event]:
    """Ask inventory to release the lines (or the one line) of the order, or refuse with a reason."""

    def refuse(reason: str) -> list[Event]:
        return [CancellationRefused(order_id=order.order_id, sku=cmd.sku, reason=reason)]

    if order.status in ("rejected", "cancelled"):
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
        return refuse("everything left of it was already filled and ships expedited, or was cancelled")
    requested = CancellationRequested(order_id=order.order_id, skus=[line.sku for line in open_lines], reason=cmd.reason)
    evolve(order, requested)
    return [requested]


def new_discount_code() -> str:
    return f"SORRY-{uuid4().hex[:10].upper()}"


def record_allocation(order: Order, event: Event, goodwill_percent: int = 10,
                      discount_code: Callable[[], str] = new_discount_code) -> list[Event]:
    """Record what inventory decided or did for one line, then what it brings: goodwill for a slipped
    backorder (once per order), the end of a cancellation, a status change."""
    match event:
        case StockReserved():
            recorded: Event = OrderLineReserved(order_id=order.order_id, sku=event.sku, quantity=event.quantity)
        case BackorderCreated():
            recorded = OrderLineBackordered(
                order_id=order.order_id, sku=event.sku, quantity=event.quantity,
                estimated_ship_date=event.estimated_ship_date, backordered_on=event.backordered_on,
            )
        case BackorderEtaChanged():
            recorded = OrderLineEtaChanged(
                order_id=order.order_id,
                sku=event.sku,
                previous_estimated_ship_date=event.previous_estimated_ship_date,
                estimated_ship_date=event.estimated_ship_date,
            )
        case BackorderFulfilled():
            recorded = OrderLineFulfilled(order_id=order.order_id, sku=event.sku, quantity=event.quantity)
        case ReservationRevoked():
            recorded = OrderLineReservationRevoked(order_id=order.order_id, sku=event.sku, quantity=event.quantity,
                                                   estimated_ship_date=event.estimated_ship_date,
                                                   revoked_on=event.revoked_on)
        case OutOfStock():
            recorded = OrderLineRejected(
                order_id=order.order_id, sku=event.sku, quantity=event.quantity, reason=event.reason, message=event.message
            )
        case StockReleased():
            recorded = OrderLineCancelled(order_id=order.order_id, sku=event.sku, released=event.quantity,
                                          backorder_cancelled=event.backorder_cancelled, kept=event.kept,
                                          reason=event.reason)
        case _:
            raise TypeError(f"not an allocation event: {type(event).__name__}")
    events = [recorded]
    evolve(order, recorded)
    slipped = isinstance(event, BackorderEtaChanged) and event.estimated_ship_date > event.previous_estimated_ship_date
    if slipped and order.discount_code is None and goodwill_percent > 0:
        events += _apply(order, [DiscountOffered(
            order_id=order.order_id, code=discount_code(), percent=goodwill_percent, cause="eta_slipped",
            reason=f"{event.sku} now ships {event.estimated_ship_date.isoformat()}, later than we said")])
    if any(line.cancelling for line in order.lines):
        return events  # the status moves once the whole cancellation is done
    if isinstance(recorded, OrderLineCancelled):
        events += _apply(order, _cancellation_outcome(order))
    if (status := _status_event(order)) is not None:
        events += _apply(order, [status])
    return events


def offer_goodwill_for_wait(order: Order, today: date, wait_days: int, percent: int,
                            discount_code: Callable[[], str] = new_discount_code) -> list[Event]:
    """Goodwill for an order whose backorder has waited `wait_days` or more, once per order."""
    if order.status != "backordered" or order.discount_code or percent <= 0 or order.waiting_since is None:
        return []
    if (today - order.waiting_since).days < wait_days:
        return []
    return _apply(order, [DiscountOffered(
        order_id=order.order_id, code=discount_code(), percent=percent, cause="long_wait",
        reason=f"your backorder has waited since {order.waiting_since.isoformat()}")])


def _cancellation_outcome(order: Order) -> list[Event]:
    cancelled = [CancelledLine(sku=sku, quantity=q) for sku, q in order.being_cancelled.items() if q]
    if not cancelled:
        order.cancel_reason = None
        if any(line.fulfilled for line in order.lines):
            return [CancellationRefused(order_id=order.order_id,
                                        reason="everything was already filled from a receipt and ships expedited")]
        return []  # nothing was left: an earlier cancellation (a discontinued product) took it
    prices = {line.sku: line.unit_price for line in order.lines}
    amount = None
    if all(prices[c.sku] is not None for c in cancelled):
        amount = sum((prices[c.sku] * c.quantity for c in cancelled), Decimal(0))
    whole = all(line.rejection or line.cancelled == line.quantity for line in order.lines)
    return [
        OrderCancelled(order_id=order.order_id, lines=cancelled, whole_order=whole, reason=order.cancel_reason,
                       refund_amount=amount, currency=order.currency),
        RefundIssued(order_id=order.order_id, amount=amount, currency=order.currency, lines=cancelled),
    ]


def _apply(order: Order, events: list[Event]) -> list[Event]:
    for event in events:
        evolve(order, event)
    return events


def derive_status(order: Order) -> Status:
    lines = order.lines
    if not all(line.decided for line in lines):
        return "placed"
    if all(line.rejection or line.cancelled == line.quantity for line in lines):
        return "cancelled" if any(line.cancelled for line in lines) else "rejected"
    if any(line.backordered for line in lines):
        return "backordered"
    return "ready_to_ship" if any(line.fulfilled for line in lines) else "confirmed"


def _status_event(order: Order) -> Event | None:
    status = derive_status(order)
    if status == order.status:
        return None
    rejected = [line.rejection for line in order.lines if line.rejection]
    match status:
        case "confirmed":
            return OrderConfirmed(order_id=order.order_id, rejected_lines=rejected)
        case "backordered":
            waiting = [
                BackorderedLine(sku=line.sku, quantity=line.backordered, estimated_ship_date=line.eta)
                for line in order.lines
                if line.backordered and line.eta
            ]
            return OrderBackordered(order_id=order.order_id, backordered_lines=waiting, rejected_lines=rejected)
        case "ready_to_ship":
            return OrderReadyToShip(order_id=order.order_id)
        case "rejected":
            return OrderRejected(order_id=order.order_id, reason="no line of the order can be ordered", lines=rejected)
    return None  # "cancelled" is announced by OrderCancelled


def evolve(order: Order | None, event: Event) -> Order:
    """Fold one event into the order (in place, except the first), and return it."""
    match event:
        case OrderPlaced():
            return Order(
                order_id=event.order_id,
                customer_id=event.customer_id,
                customer_email=event.customer_email,
                currency=event.currency,
                lines=[Line(sku=l.sku, quantity=l.quantity, unit_price=l.unit_price) for l in event.lines],
            )
    assert order is not None, f"{type(event).__name__} before OrderPlaced"
    match event:
        case OrderLineReserved():
            order.line(event.sku).reserved += event.quantity
        case OrderLineBackordered():
            line = order.line(event.sku)
            line.backordered += event.quantity
            line.eta = event.estimated_ship_date
            line.waiting_since = line.waiting_since or event.backordered_on
        case OrderLineEtaChanged():
            order.line(event.sku).eta = event.estimated_ship_date
        case OrderLineReservationRevoked():
            line = order.line(event.sku)
            from_stock = min(line.reserved, event.quantity)
            line.reserved -= from_stock
            line.fulfilled -= event.quantity - from_stock
            line.backordered += event.quantity
            line.eta = event.estimated_ship_date
            line.waiting_since = line.waiting_since or event.revoked_on
        case OrderLineFulfilled():
            line = order.line(event.sku)
            line.backordered -= event.quantity
            line.fulfilled += event.quantity
            if not line.backordered:
                line.eta = line.waiting_since = None
        case OrderLineRejected():
            order.line(event.sku).rejection = RejectedLine(sku=event.sku, reason=event.reason, message=event.message)
        case OrderConfirmed():
            order.status = "confirmed"
        case OrderBackordered():
            order.status = "backordered"
        case OrderReadyToShip():
            order.status = "ready_to_ship"
        case OrderRejected():
            order.status = "rejected"
        case CancellationRequested():
            order.cancel_reason = event.reason
            order.being_cancelled = {}
            for sku in event.skus:
                order.line(sku).cancelling = True
        case OrderLineCancelled():
            line = order.line(event.sku)
            line.reserved -= event.released
            line.backordered -= event.backorder_cancelled
            line.cancelled += event.released + event.backorder_cancelled
            line.cancelling = False
            if not line.backordered:
                line.eta = line.waiting_since = None
            if event.reason and order.cancel_reason is None:  # inventory cancelled on its own, and says why
                order.cancel_reason = event.reason
            order.being_cancelled[event.sku] = (
                order.being_cancelled.get(event.sku, 0) + event.released + event.backorder_cancelled)
        case DiscountOffered():
            order.discount_code = event.code
        case OrderCancelled():
            order.being_cancelled = {}
            order.cancel_reason = None
            if event.whole_order:
                order.status = "cancelled"
    return order
