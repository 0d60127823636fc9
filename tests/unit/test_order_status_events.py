"""Status events around shipments: an order that reaches a shipping status by anything but OrderShipped (a
late line outcome, a cancellation) is told it, and a line refused after the rest shipped is told with its
reason."""

from datetime import date
from decimal import Decimal

from contracts.commands import ShipOrder
from contracts.events import (
    BackorderCreated,
    BackorderFulfilled,
    OrderBackordered,
    OrderCancelled,
    OrderConfirmed,
    OrderReadyToShip,
    OrderRejected,
    OrderShipped,
    OrderStatusChanged,
    OutOfStock,
    StockReleased,
    StockReserved,
)
from services.order.domain import decisions
from tests.unit.test_order_races import Script

DAY = date(2026, 11, 25)
STATUS_EVENTS = (OrderConfirmed, OrderBackordered, OrderReadyToShip, OrderRejected, OrderCancelled, OrderShipped,
                 OrderStatusChanged)


def test_a_shipment_before_every_line_is_decided_is_followed_by_a_status_event():
    """B ships while A's outcome is still on its way; A is then reserved. The order is `partially_shipped`, but the
    only status-bearing event ever told is OrderShipped(complete=False) from when it was `placed`: no status event
    "follows" (evolve's comment says one does), and `announced` stays `placed` for ever."""
    s = Script(("A", 1, Decimal("5.00")), ("B", 1, Decimal("5.00")))
    s.inventory(StockReserved(order_id="o1", sku="B", quantity=1))
    s(decisions.ship, ShipOrder(order_id="o1", shipment_id="sh1"))
    after = s.inventory(StockReserved(order_id="o1", sku="A", quantity=1))
    assert s.order.status == "partially_shipped"
    assert [e for e in after if isinstance(e, STATUS_EVENTS)], (after, s.order.announced)


def test_a_line_refused_after_the_rest_shipped_is_told_with_its_reason():
    """B ships while A's outcome is on its way; A is refused (OutOfStock). The order is `shipped` (complete), yet
    the last shipment said `complete=False`, and A's refusal reason is in no event at all: no OrderConfirmed /
    OrderRejected / OrderCancelled carries `rejected_lines`."""
    s = Script(("A", 1, Decimal("5.00")), ("B", 1, Decimal("5.00")))
    s.inventory(StockReserved(order_id="o1", sku="B", quantity=1))
    shipped = s(decisions.ship, ShipOrder(order_id="o1", shipment_id="sh1"))
    assert shipped[0].complete is False
    s.inventory(OutOfStock(order_id="o1", sku="A", quantity=1, reason="unknown_sku", message="A is not sold here"))
    assert s.order.status == "shipped"
    told_rejections = [r.sku for e in s.events for r in getattr(e, "rejected_lines", []) or getattr(e, "lines", [])
                       if isinstance(e, (OrderConfirmed, OrderRejected, OrderCancelled, OrderBackordered,
                                         OrderStatusChanged))
                       and hasattr(r, "reason")]
    assert "A" in told_rejections, s.events


def test_store_cancelling_the_last_waiting_units_after_a_shipment_tells_that_the_order_is_shipped():
    """Backordered order: 2 of A's 4 are filled and ship (status stays `backordered`: 2 still wait); then the
    store cancels the 2 still waiting (discontinued). The order is now `shipped`, but only a partial
    OrderCancelled (whole_order=False) is told: the last status event a storefront saw is OrderBackordered."""
    s = Script(("A", 4, Decimal("5.00")))
    s.inventory(BackorderCreated(order_id="o1", sku="A", quantity=4, estimated_ship_date=DAY, backordered_on=DAY))
    s.inventory(BackorderFulfilled(order_id="o1", sku="A", quantity=2, remaining=2))
    s(decisions.ship, ShipOrder(order_id="o1", shipment_id="sh1"))
    after = s.inventory(StockReleased(order_id="o1", sku="A", quantity=0, backorder_cancelled=2, kept=0,
                                      reason="A is discontinued", requested=False))
    assert s.order.status == "shipped"
    # The shipment said the rest follows (complete=False); nothing after says the order is done.
    telling = [e for e in s.events if isinstance(e, STATUS_EVENTS)
               and not (isinstance(e, OrderCancelled) and not e.whole_order)
               and not (isinstance(e, OrderShipped) and not e.complete)]
    assert not isinstance(telling[-1], OrderBackordered), (telling[-1], after, s.order.announced)
