"""Events of contract v1: facts the services publish on `orders.events`, `inventory.events` and
`notifications.events`. Each names the aggregate it belongs to (`order_id`, `sku`), the Kafka key."""

from datetime import date
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict

from contracts.commands import OrderLine


class Event(BaseModel):
    # Fields a newer producer adds are ignored, so consumers keep working through a rolling deploy.
    model_config = ConfigDict(frozen=True, extra="ignore")


# Why a line cannot be ordered; the storefront shows `message`.
RefusalReason = Literal["unknown_sku", "discontinued", "not_backorderable", "backorders_not_allowed"]


# --- orders.events (key: order_id) -------------------------------------------------------------


class OrderPlaced(Event):
    order_id: str
    customer_id: str
    customer_email: str
    lines: list[OrderLine]
    currency: str | None = None
    allow_backorder: bool = True


class OrderLineReserved(Event):
    order_id: str
    sku: str
    quantity: int


class OrderLineBackordered(Event):
    order_id: str
    sku: str
    quantity: int
    estimated_ship_date: date
    backordered_on: date | None = None


class OrderLineReservationRevoked(Event):
    """Units reserved for the line were not there at a stock count: they are backordered again."""

    order_id: str
    sku: str
    quantity: int
    estimated_ship_date: date
    revoked_on: date | None = None


class OrderLineEtaChanged(Event):
    order_id: str
    sku: str
    previous_estimated_ship_date: date
    estimated_ship_date: date


class OrderLineReconciled(Event):
    """Inventory's books of the line after a shipment that crossed a stock count, which the order adopts: with
    the ETA of what waits (the order may have heard none for it, when it had seen those units filled)."""

    order_id: str
    sku: str
    reserved: int
    fulfilled: int
    backordered: int
    estimated_ship_date: date | None = None
    backordered_on: date | None = None


class OrderLineFulfilled(Event):
    """Backordered units were filled from a receipt; they ship expedited."""

    order_id: str
    sku: str
    quantity: int
    expedited: bool = True


class OrderLineRejected(Event):
    order_id: str
    sku: str
    quantity: int
    reason: RefusalReason
    message: str


class RejectedLine(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    sku: str
    reason: RefusalReason
    message: str


class BackorderedLine(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    sku: str
    quantity: int
    estimated_ship_date: date


class OrderConfirmed(Event):
    """Every accepted line is reserved from stock; `rejected_lines` could not be ordered."""

    order_id: str
    rejected_lines: list[RejectedLine] = []


class OrderBackordered(Event):
    """Every line is decided and some wait for stock, each with its estimated ship date."""

    order_id: str
    backordered_lines: list[BackorderedLine]
    rejected_lines: list[RejectedLine] = []


class OrderReadyToShip(Event):
    """Every backordered unit has been filled; the order ships expedited; `rejected_lines` could not be ordered."""

    order_id: str
    expedited: bool = True
    rejected_lines: list[RejectedLine] = []


class OrderStatusChanged(Event):
    """The order reached a shipping status that no event of its own told (the last waiting line refused or
    cancelled, or decided after a shipment); `rejected_lines` could not be ordered."""

    order_id: str
    status: Literal["partially_shipped", "shipped"]
    rejected_lines: list[RejectedLine] = []


class OrderRejected(Event):
    order_id: str
    reason: str
    lines: list[RejectedLine] = []


class DiscountOffered(Event):
    """Goodwill for a backorder that slipped or waits long: a discount on a future purchase, once per order."""

    order_id: str
    code: str
    percent: int
    cause: Literal["eta_slipped", "long_wait"]
    reason: str


class CancellationRequested(Event):
    """The customer asked to cancel these lines; inventory releases their stock and backorders."""

    order_id: str
    skus: list[str]
    reason: str | None = None


class CancellationRefused(Event):
    order_id: str
    sku: str | None = None
    reason: str


class OrderLineCancelled(Event):
    """Inventory released `released` reserved units and dropped `backorder_cancelled` waiting ones;
    `kept` units were already filled and ship. `requested` when it answers the customer's request; else
    inventory cancelled on its own, and `reason` says why."""

    order_id: str
    sku: str
    released: int
    backorder_cancelled: int
    kept: int
    reason: str | None = None
    requested: bool = True


class ShippedLine(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    sku: str
    quantity: int


class OrderShipped(Event):
    """The warehouse shipped these units; `complete` when nothing of the order is left to ship."""

    order_id: str
    shipment_id: str
    lines: list[ShippedLine]
    carrier: str | None = None
    tracking_number: str | None = None
    complete: bool = False


class ShipmentRefused(Event):
    order_id: str
    shipment_id: str
    reason: str


class CancelledLine(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    sku: str
    quantity: int


class OrderCancelled(Event):
    """A cancellation is done: these units are cancelled and refunded. `whole_order` when nothing of the
    order is left to ship. No `lines` when the order closed because its last open line was refused
    (`rejected_lines`) after the rest had been cancelled."""

    order_id: str
    lines: list[CancelledLine]
    whole_order: bool
    reason: str | None = None
    refund_amount: Decimal | None = None
    currency: str | None = None
    rejected_lines: list[RejectedLine] = []


class RefundIssued(Event):
    """A refund recorded for cancelled units; `amount` is None when the order carried no prices."""

    order_id: str
    amount: Decimal | None
    currency: str | None = None
    lines: list[CancelledLine]


# --- inventory.events (key: sku) ---------------------------------------------------------------


class ProductFacts(Event):
    """What is known of a product (every field)."""

    sku: str
    name: str
    backorderable: bool
    discontinued: bool
    lead_time_days: int
    safety_stock: int
    alternatives: list[str]
    service_level: float = 0.95


class ProductRegistered(ProductFacts):
    pass


class ProductUpdated(ProductFacts):
    pass


class ProductDiscontinued(Event):
    sku: str
    reason: str | None = None


class StockReceived(Event):
    sku: str
    quantity: int
    receipt_id: str
    po_id: str | None = None


class StockAdjusted(Event):
    sku: str
    counted_quantity: int
    previous_on_hand: int
    reason: str


class ReservationRevoked(Event):
    """A stock count found less than was reserved: the newest reservations go back to backorder, at the
    head of the queue, with an estimated ship date."""

    order_id: str
    sku: str
    quantity: int
    estimated_ship_date: date
    revoked_on: date
    waiting: int  # units of the order now waiting for this SKU, these included


class ReplenishmentExpected(Event):
    po_id: str
    sku: str
    quantity: int
    expected_on: date


class ReplenishmentRescheduled(Event):
    """`overdue_on` when the daily review moved a purchase order that did not come by its date to the next
    credible one (that day plus the lead time)."""

    po_id: str
    sku: str
    expected_on: date
    overdue_on: date | None = None


class ReplenishmentCancelled(Event):
    po_id: str
    sku: str


class StockReserved(Event):
    order_id: str
    sku: str
    quantity: int


class BackorderCreated(Event):
    order_id: str
    sku: str
    quantity: int
    estimated_ship_date: date
    backordered_on: date


class BackorderEtaChanged(Event):
    """`overdue_on` is the day the ETA was found passed without supply and moved to the next credible date:
    by the daily review, or by a learned lead time that would put it on a day already past."""

    order_id: str
    sku: str
    quantity: int
    previous_estimated_ship_date: date
    estimated_ship_date: date
    overdue_on: date | None = None


class BackorderCancelled(Event):
    """`quantity` waiting units left the queue; `remaining` of the order's backorder still wait."""

    order_id: str
    sku: str
    quantity: int
    remaining: int = 0


class StockShipped(Event):
    """Shipped units left `on_hand`, and the order's reservation of them is closed. What the order still
    holds of the SKU (`reserved` from stock, `filled` from backorders) and waits for (`waiting`, since
    `backordered_on`, to ship on `estimated_ship_date`) after it."""

    sku: str
    order_id: str
    quantity: int
    reserved: int = 0
    filled: int = 0
    waiting: int = 0
    estimated_ship_date: date | None = None
    backordered_on: date | None = None


class StockReleased(Event):
    """A cancellation for this order and SKU is done here: `quantity` reserved units went back to stock,
    `backorder_cancelled` waiting units left the queue, `kept` units were already filled and ship.
    `requested` when it answers the order's CancellationRequested; else inventory cancelled on its own (a
    product discontinued) and `reason` says why."""

    order_id: str
    sku: str
    quantity: int
    backorder_cancelled: int
    kept: int
    reason: str | None = None
    requested: bool = True


class BackorderFulfilled(Event):
    """`quantity` units of a backorder were filled, oldest backorder first; `remaining` still wait."""

    order_id: str
    sku: str
    quantity: int
    remaining: int
    expedited: bool = True


class AvailabilityChanged(Event):
    """What a storefront should show for a SKU changed: `in_stock` with `available` units, `backorderable`
    with the `estimated_ship_date` of an order placed now, or `unavailable`."""

    sku: str
    status: Literal["in_stock", "backorderable", "unavailable"]
    available: int
    estimated_ship_date: date | None = None


class LeadTimeLearned(Event):
    """The supplier lead time learned from this SKU's deliveries (ExpectReplenishment to ReceiveStock): a
    high quantile of it, `lead_time_days`, is what ETAs resting on the lead time use from now on, and a high
    quantile of how late deliveries came after their expected date, `delay_days`, is added to the date of a
    purchase order to give the ETAs it covers."""

    sku: str
    lead_time_days: int
    delay_days: int
    mean_days: float
    std_days: float
    on_time_rate: float
    deliveries: int


class ReplenishmentSuggested(Event):
    """The stock position (on hand - reserved + open purchase orders - waiting backorders) fell to the
    reorder point: order `quantity` to bring it up to the target level; `expected_on` is a credible
    delivery date for an order placed today (the learned lead time)."""

    sku: str
    quantity: int
    reason: str
    reorder_point: int
    position: int
    safety_stock: int
    expected_on: date


class OverstockDetected(Event):
    """More stock than `days_of_cover` days of forecast demand allow: `excess` units could be promoted."""

    sku: str
    days_of_cover: float
    excess: int


class SupplierDelayDetected(Event):
    """A purchase order is later than its supplier's learned lead time and spread explain."""

    sku: str
    po_id: str
    ordered_on: date
    expected_on: date
    days_overdue: int
    typical_lead_time_days: float


class OutOfStock(Event):
    """An order line that cannot be ordered at all, with a reason a storefront can show."""

    order_id: str
    sku: str
    quantity: int
    reason: RefusalReason
    message: str


# --- notifications.events (key: order_id) ------------------------------------------------------


class NotificationSent(Event):
    notification_id: str
    order_id: str
    customer_id: str
    kind: Literal["order_confirmed", "backorder_created", "backorder_fulfilled", "order_cancelled", "eta_changed",
                  "reservation_revoked", "discount_offered", "order_shipped", "lines_refused"]
    channel: Literal["email", "webhook"]


ORDER_EVENTS: dict[str, type[Event]] = {
    e.__name__: e
    for e in (
        OrderPlaced,
        OrderLineReserved,
        OrderLineBackordered,
        OrderLineReservationRevoked,
        OrderLineEtaChanged,
        OrderLineFulfilled,
        OrderLineReconciled,
        OrderLineRejected,
        OrderConfirmed,
        OrderBackordered,
        OrderReadyToShip,
        OrderRejected,
        OrderStatusChanged,
        CancellationRequested,
        CancellationRefused,
        OrderLineCancelled,
        OrderCancelled,
        RefundIssued,
        DiscountOffered,
        OrderShipped,
        ShipmentRefused,
    )
}
INVENTORY_EVENTS: dict[str, type[Event]] = {
    e.__name__: e
    for e in (
        ProductRegistered,
        ProductUpdated,
        ProductDiscontinued,
        StockReceived,
        StockAdjusted,
        ReservationRevoked,
        ReplenishmentExpected,
        ReplenishmentRescheduled,
        ReplenishmentCancelled,
        StockReserved,
        BackorderCreated,
        BackorderEtaChanged,
        BackorderFulfilled,
        BackorderCancelled,
        StockReleased,
        StockShipped,
        OutOfStock,
        AvailabilityChanged,
        LeadTimeLearned,
        ReplenishmentSuggested,
        OverstockDetected,
        SupplierDelayDetected,
    )
}
NOTIFICATION_EVENTS: dict[str, type[Event]] = {NotificationSent.__name__: NotificationSent}
