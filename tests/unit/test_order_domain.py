"""The order aggregate: placement, line outcomes and the status a storefront follows."""

from datetime import date
from decimal import Decimal

from contracts.commands import CancelOrder, OrderLine, PlaceOrder
from contracts.events import (
    BackorderCreated,
    BackorderFulfilled,
    CancellationRefused,
    CancellationRequested,
    OrderCancelled,
    OrderBackordered,
    OrderConfirmed,
    OrderPlaced,
    OrderReadyToShip,
    OrderRejected,
    OutOfStock,
    RefundIssued,
    StockReleased,
    StockReserved,
)
from services.order import domain

ETA = date(2026, 12, 9)


def placed(*lines: tuple[str, int]) -> domain.Order:
    cmd = PlaceOrder(order_id="o1", customer_id="c1", customer_email="c@example.com",
                     lines=[OrderLine(sku=s, quantity=q) for s, q in lines])
    events = domain.place(None, cmd)
    assert [type(e) for e in events] == [OrderPlaced]
    return domain.evolve(None, events[0])


def test_placing_an_order_twice_places_it_once():
    order = placed(("A", 1))
    cmd = PlaceOrder(order_id="o1", customer_id="c1", customer_email="c@example.com", lines=[OrderLine(sku="A", quantity=1)])
    assert domain.place(order, cmd) == []


def test_order_is_confirmed_once_every_line_is_reserved():
    order = placed(("A", 2), ("B", 1))
    events = domain.record_allocation(order, StockReserved(order_id="o1", sku="A", quantity=2))
    assert [type(e).__name__ for e in events] == ["OrderLineReserved"]
    assert order.status == "placed"
    events = domain.record_allocation(order, StockReserved(order_id="o1", sku="B", quantity=1))
    assert isinstance(events[-1], OrderConfirmed) and order.status == "confirmed"


def test_partially_backordered_order_waits_then_is_ready_to_ship_expedited():
    order = placed(("A", 5))
    domain.record_allocation(order, StockReserved(order_id="o1", sku="A", quantity=3))
    assert order.status == "placed"  # the backorder for the other 2 is still to come
    events = domain.record_allocation(
        order, BackorderCreated(order_id="o1", sku="A", quantity=2, estimated_ship_date=ETA, backordered_on=ETA))
    assert events[-1] == OrderBackordered(order_id="o1", backordered_lines=[{"sku": "A", "quantity": 2, "estimated_ship_date": ETA}])
    domain.record_allocation(order, BackorderFulfilled(order_id="o1", sku="A", quantity=1, remaining=1))
    assert order.status == "backordered"
    events = domain.record_allocation(order, BackorderFulfilled(order_id="o1", sku="A", quantity=1, remaining=0))
    assert events[-1] == OrderReadyToShip(order_id="o1", expedited=True)
    line = order.line("A")
    assert (line.reserved, line.backordered, line.fulfilled, line.eta) == (3, 0, 2, None)


def test_order_whose_every_line_is_refused_is_rejected_with_the_reasons():
    order = placed(("A", 1), ("B", 1))
    for sku, reason in (("A", "unknown_sku"), ("B", "discontinued")):
        events = domain.record_allocation(
            order, OutOfStock(order_id="o1", sku=sku, quantity=1, reason=reason, message=f"{sku} cannot be ordered"))
    assert isinstance(events[-1], OrderRejected)
    assert [l.reason for l in events[-1].lines] == ["unknown_sku", "discontinued"]
    assert order.status == "rejected"


def test_order_with_one_refused_line_is_confirmed_for_the_rest():
    order = placed(("A", 1), ("B", 1))
    domain.record_allocation(order, OutOfStock(order_id="o1", sku="A", quantity=1, reason="unknown_sku", message="no"))
    events = domain.record_allocation(order, StockReserved(order_id="o1", sku="B", quantity=1))
    assert isinstance(events[-1], OrderConfirmed) and events[-1].rejected_lines[0].sku == "A"


def test_cancelling_a_backordered_line_is_requested_then_confirmed_with_a_refund():
    order = placed(("A", 5))
    order.lines[0].unit_price = Decimal("2.50")
    domain.record_allocation(order, StockReserved(order_id="o1", sku="A", quantity=3))
    domain.record_allocation(
        order, BackorderCreated(order_id="o1", sku="A", quantity=2, estimated_ship_date=ETA, backordered_on=ETA))
    requested = domain.cancel(order, CancelOrder(order_id="o1", reason="too slow"))
    assert requested == [CancellationRequested(order_id="o1", skus=["A"], reason="too slow")]
    assert domain.cancel(order, CancelOrder(order_id="o1"))[0].reason.startswith("a cancellation")

    events = domain.record_allocation(
        order, StockReleased(order_id="o1", sku="A", quantity=3, backorder_cancelled=2, kept=0))

    cancelled = next(e for e in events if isinstance(e, OrderCancelled))
    assert cancelled.whole_order and cancelled.refund_amount == Decimal("12.50")
    assert any(isinstance(e, RefundIssued) for e in events)
    assert order.status == "cancelled"


def test_cancelling_what_already_shipped_is_refused():
    order = placed(("A", 2))
    domain.record_allocation(
        order, BackorderCreated(order_id="o1", sku="A", quantity=2, estimated_ship_date=ETA, backordered_on=ETA))
    domain.record_allocation(order, BackorderFulfilled(order_id="o1", sku="A", quantity=2, remaining=0))
    refused = domain.cancel(order, CancelOrder(order_id="o1"))
    assert isinstance(refused[0], CancellationRefused) and "filled" in refused[0].reason


def test_a_receipt_that_wins_the_race_with_a_cancellation_makes_it_refused():
    order = placed(("A", 2))
    domain.record_allocation(
        order, BackorderCreated(order_id="o1", sku="A", quantity=2, estimated_ship_date=ETA, backordered_on=ETA))
    domain.cancel(order, CancelOrder(order_id="o1"))
    domain.record_allocation(order, BackorderFulfilled(order_id="o1", sku="A", quantity=2, remaining=0))
    events = domain.record_allocation(order, StockReleased(order_id="o1", sku="A", quantity=0, backorder_cancelled=0, kept=2))
    assert isinstance(events[-2], CancellationRefused) and isinstance(events[-1], OrderReadyToShip)


def test_a_customer_cancel_crossing_a_discontinue_refunds_every_unit_once():
    order = placed(("A", 4), ("B", 1))
    order.lines[0].unit_price, order.lines[1].unit_price = Decimal("5"), Decimal("7")
    domain.record_allocation(
        order, BackorderCreated(order_id="o1", sku="A", quantity=4, estimated_ship_date=ETA, backordered_on=ETA))
    domain.record_allocation(order, StockReserved(order_id="o1", sku="B", quantity=1))
    domain.cancel(order, CancelOrder(order_id="o1", reason="changed my mind"))
    # Inventory discontinued A before it saw the customer's request, then answered the request.
    events = domain.record_allocation(order, StockReleased(order_id="o1", sku="A", quantity=0, backorder_cancelled=4,
                                                           kept=0, reason="A is discontinued"))
    events += domain.record_allocation(order, StockReleased(order_id="o1", sku="A", quantity=0, backorder_cancelled=0, kept=0))
    events += domain.record_allocation(order, StockReleased(order_id="o1", sku="B", quantity=1, backorder_cancelled=0, kept=0))
    cancelled = [e for e in events if isinstance(e, OrderCancelled)]
    assert len(cancelled) == 1 and cancelled[0].refund_amount == Decimal("27") and cancelled[0].whole_order
    assert cancelled[0].reason == "changed my mind"
    assert not [e for e in events if isinstance(e, CancellationRefused)]
