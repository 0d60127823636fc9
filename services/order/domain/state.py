"""The order's state, its status, and `evolve`, the one place where events change it."""

from datetime import date
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, Field

from contracts.events import (
    CancellationRefused,
    CancellationRequested,
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
    RefundIssued,
    RejectedLine,
)

Status = Literal["placed", "confirmed", "backordered", "ready_to_ship", "partially_shipped", "shipped", "rejected",
                 "cancelled"]


class Line(BaseModel):
    sku: str
    quantity: int
    unit_price: Decimal | None = None
    reserved: int = 0  # from stock, not yet shipped
    backordered: int = 0  # still waiting for stock
    fulfilled: int = 0  # backordered units since filled (they ship expedited), not yet shipped
    shipped: int = 0
    cancelled: int = 0
    cancelling: bool = False  # the customer asked to cancel it and inventory has not answered yet
    eta: date | None = None
    waiting_since: date | None = None  # while units of the line wait: when they started to
    rejection: RejectedLine | None = None

    @property
    def decided(self) -> bool:
        return self.rejection is not None or (
            self.reserved + self.backordered + self.fulfilled + self.shipped + self.cancelled == self.quantity)

    @property
    def cancellable(self) -> int:
        """Units a cancellation could still take back: all but those filled, shipped or cancelled."""
        return 0 if self.rejection else self.quantity - self.fulfilled - self.shipped - self.cancelled

    @property
    def shippable(self) -> int:
        return self.reserved + self.fulfilled

    @property
    def open(self) -> int:
        """Units still to ship: held or waiting."""
        return self.reserved + self.fulfilled + self.backordered


class Order(BaseModel):
    order_id: str
    customer_id: str
    customer_email: str
    currency: str | None = None
    lines: list[Line]
    status: Status = "placed"  # derived from the lines after every event
    announced: Status = "placed"  # the last status a status event told
    cancel_reason: str | None = None  # the customer's, while their cancellation is under way
    # Mutable defaults made by a factory: pydantic deep-copies a literal [] or {} for every new order.
    store_reasons: list[str] = Field(default_factory=list)  # why inventory cancelled units on its own, while not yet told
    being_cancelled: dict[str, int] = Field(default_factory=dict)  # units cancelled so far and not yet told, by sku
    refunded: Decimal = Decimal(0)
    discount_code: str | None = None
    shipments: list[str] = Field(default_factory=list)

    def line(self, sku: str) -> Line:
        return next(line for line in self.lines if line.sku == sku)

    def draft(self) -> "Order":
        """A copy to try events on, which `evolve` may change without touching this order: its lines and
        collections are its own, the rest is immutable values. A fraction of what a deep copy costs."""
        return self.model_copy(update={
            "lines": [line.model_copy() for line in self.lines], "store_reasons": list(self.store_reasons),
            "being_cancelled": dict(self.being_cancelled), "shipments": list(self.shipments)})

    @property
    def waiting_since(self) -> date | None:
        """When the longest-waiting backordered units of the order started to wait."""
        return min((line.waiting_since for line in self.lines if line.backordered and line.waiting_since), default=None)


def derive_status(order: Order) -> Status:
    lines = order.lines
    if not all(line.decided for line in lines):
        return "placed"
    if all(line.rejection or line.cancelled == line.quantity for line in lines):
        return "cancelled" if any(line.cancelled for line in lines) else "rejected"
    if any(line.backordered for line in lines):
        return "backordered"
    if any(line.fulfilled for line in lines):
        return "ready_to_ship"  # filled backorders wait to ship, expedited
    if any(line.shipped for line in lines):
        return "partially_shipped" if any(line.open for line in lines) else "shipped"
    return "confirmed"


def evolve(order: Order | None, event: Event) -> Order:
    """Fold one event into the order (in place, except the first), and return it."""
    if isinstance(event, OrderPlaced):
        return Order(order_id=event.order_id, customer_id=event.customer_id, customer_email=event.customer_email,
                     currency=event.currency,
                     lines=[Line(sku=l.sku, quantity=l.quantity, unit_price=l.unit_price) for l in event.lines])
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
        case OrderLineReconciled():
            line = order.line(event.sku)
            line.reserved, line.fulfilled, line.backordered = event.reserved, event.fulfilled, event.backordered
            if not line.backordered:
                line.eta = line.waiting_since = None
            else:  # events recorded before they carried the ETA keep the line's
                line.eta = event.estimated_ship_date or line.eta
                line.waiting_since = line.waiting_since or event.backordered_on
        case OrderLineRejected():
            order.line(event.sku).rejection = RejectedLine(sku=event.sku, reason=event.reason, message=event.message)
        case CancellationRequested():
            order.cancel_reason = event.reason
            for sku in event.skus:
                order.line(sku).cancelling = True
        case OrderLineCancelled():
            line = order.line(event.sku)
            line.reserved -= event.released
            line.backordered -= event.backorder_cancelled
            line.cancelled += event.released + event.backorder_cancelled
            if event.requested:
                line.cancelling = False
            elif event.reason and event.reason not in order.store_reasons:
                order.store_reasons.append(event.reason)
            if not line.backordered:
                line.eta = line.waiting_since = None
            order.being_cancelled[event.sku] = (
                order.being_cancelled.get(event.sku, 0) + event.released + event.backorder_cancelled)
        case OrderCancelled():
            order.being_cancelled = {}
            order.store_reasons = []
            order.cancel_reason = None
        case CancellationRefused() if not any(line.cancelling for line in order.lines):
            # The answer to a request (or one refused at once): nothing of it is under way any more.
            order.being_cancelled = {}
            order.store_reasons = []
            order.cancel_reason = None
        case RefundIssued():
            order.refunded += event.amount or 0
        case OrderShipped():
            order.shipments.append(event.shipment_id)
            for shipped in event.lines:
                line = order.line(shipped.sku)
                from_stock = min(line.reserved, shipped.quantity)
                line.reserved -= from_stock
                line.fulfilled -= shipped.quantity - from_stock
                line.shipped += shipped.quantity
        case DiscountOffered():
            order.discount_code = event.code
    order.status = derive_status(order)
    # What the status events told. A partial cancellation tells no status, nor does a shipment before every
    # line is decided or before any status was told (a cancellation under way held it back): the status event
    # that follows (OrderStatusChanged, when no other fits) does, naming the refused lines a shipment does not.
    if isinstance(event, (OrderConfirmed, OrderBackordered, OrderReadyToShip, OrderRejected, OrderStatusChanged)) or (
            isinstance(event, OrderCancelled) and order.status == "cancelled") or (
            isinstance(event, OrderShipped) and order.status in ("partially_shipped", "shipped")
            and order.announced != "placed"):
        order.announced = order.status
    return order
