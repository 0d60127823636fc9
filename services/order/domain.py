"""The order aggregate, pure: placement, the outcome of each line as inventory decides it, and the
order's status. Status events are emitted when the status a storefront sees changes."""

from datetime import date
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel

from contracts.commands import PlaceOrder
from contracts.events import (
    BackorderCreated,
    BackorderedLine,
    BackorderEtaChanged,
    BackorderFulfilled,
    Event,
    OrderBackordered,
    OrderConfirmed,
    OrderLineBackordered,
    OrderLineEtaChanged,
    OrderLineFulfilled,
    OrderLineRejected,
    OrderLineReserved,
    OrderPlaced,
    OrderReadyToShip,
    OrderRejected,
    OutOfStock,
    RejectedLine,
    StockReserved,
)

Status = Literal["placed", "confirmed", "backordered", "ready_to_ship", "rejected"]


class Line(BaseModel):
    sku: str
    quantity: int
    unit_price: Decimal | None = None
    reserved: int = 0  # from stock when the order was placed
    backordered: int = 0  # still waiting for stock
    fulfilled: int = 0  # backordered units since filled (shipped expedited)
    eta: date | None = None
    rejection: RejectedLine | None = None

    @property
    def decided(self) -> bool:
        return self.rejection is not None or self.reserved + self.backordered + self.fulfilled == self.quantity


class Order(BaseModel):
    order_id: str
    customer_id: str
    customer_email: str
    currency: str | None = None
    lines: list[Line]
    status: Status = "placed"

    def line(self, sku: str) -> Line:
        return next(line for line in self.lines if line.sku == sku)


def place(order: Order | None, cmd: PlaceOrder) -> list[Event]:
    if order is not None:
        return []  # the same order_id again: placed once
    return [OrderPlaced(**cmd.model_dump())]


def record_allocation(order: Order, event: Event) -> list[Event]:
    """Record what inventory decided or did for one line, then the status change it brings, if any."""
    match event:
        case StockReserved():
            recorded: Event = OrderLineReserved(order_id=order.order_id, sku=event.sku, quantity=event.quantity)
        case BackorderCreated():
            recorded = OrderLineBackordered(
                order_id=order.order_id, sku=event.sku, quantity=event.quantity, estimated_ship_date=event.estimated_ship_date
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
        case OutOfStock():
            recorded = OrderLineRejected(
                order_id=order.order_id, sku=event.sku, quantity=event.quantity, reason=event.reason, message=event.message
            )
        case _:
            raise TypeError(f"not an allocation event: {type(event).__name__}")
    events = [recorded]
    evolve(order, recorded)
    if (status := _status_event(order)) is not None:
        evolve(order, status)
        events.append(status)
    return events


def derive_status(order: Order) -> Status:
    lines = order.lines
    if not all(line.decided for line in lines):
        return "placed"
    if all(line.rejection for line in lines):
        return "rejected"
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
    return None


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
        case OrderLineEtaChanged():
            order.line(event.sku).eta = event.estimated_ship_date
        case OrderLineFulfilled():
            line = order.line(event.sku)
            line.backordered -= event.quantity
            line.fulfilled += event.quantity
            if not line.backordered:
                line.eta = None
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
    return order
