"""The order aggregate: placement, line outcomes, cancellation, shipping, refunds and the status a
storefront follows."""

from datetime import date
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.commands import CancelOrder, OrderLine, PlaceOrder, ShipOrder
from contracts.events import (
    BackorderCreated,
    BackorderFulfilled,
    CancellationRefused,
    CancellationRequested,
    OrderBackordered,
    OrderCancelled,
    OrderConfirmed,
    OrderPlaced,
    OrderReadyToShip,
    OrderRejected,
    OrderShipped,
    OutOfStock,
    RefundIssued,
    ShipmentRefused,
    StockReleased,
    StockReserved,
)
from services.order.domain import decisions
from services.order.domain.money import rounded
from services.order.domain.state import Order, evolve

ETA = date(2026, 12, 9)


def placed(*lines: tuple, currency: str | None = "EUR") -> tuple[Order, list]:
    """The order, and the events that made it (for the fold check)."""
    cmd = PlaceOrder(order_id="o1", customer_id="c1", customer_email="c@example.com", currency=currency,
                     lines=[OrderLine(sku=s, quantity=q, unit_price=p[0] if p else None) for s, q, *p in lines])
    events = decisions.place(None, cmd)
    assert [type(e) for e in events] == [OrderPlaced]
    return evolve(None, events[0]), list(events)


class Script:
    """An order and everything recorded on it: each decision checked to change nothing, then applied."""

    def __init__(self, *lines: tuple, currency: str | None = "EUR") -> None:
        self.order, self.events = placed(*lines, currency=currency)

    def __call__(self, decide, *args, **kw) -> list:
        before = self.order.model_copy(deep=True)
        events = decide(self.order, *args, **kw)
        assert self.order == before, "a decision changed the order"
        for event in events:
            evolve(self.order, event)
        self.events += events
        return events

    def inventory(self, event) -> list:
        return self(decisions.record_allocation, event)

    def rebuilt(self) -> Order:
        order = None
        for event in self.events:
            order = evolve(order, event)
        return order


def backordered(sku: str, quantity: int) -> BackorderCreated:
    return BackorderCreated(order_id="o1", sku=sku, quantity=quantity, estimated_ship_date=ETA, backordered_on=ETA)


def released(sku: str, quantity=0, backorder_cancelled=0, kept=0, reason=None, requested=True) -> StockReleased:
    return StockReleased(order_id="o1", sku=sku, quantity=quantity, backorder_cancelled=backorder_cancelled, kept=kept,
                         reason=reason, requested=requested)


def test_placing_an_order_twice_places_it_once():
    s = Script(("A", 1))
    cmd = PlaceOrder(order_id="o1", customer_id="c1", customer_email="c@example.com", lines=[OrderLine(sku="A", quantity=1)])
    assert decisions.place(s.order, cmd) == []


def test_order_is_confirmed_once_every_line_is_reserved():
    s = Script(("A", 2), ("B", 1))
    assert [type(e).__name__ for e in s.inventory(StockReserved(order_id="o1", sku="A", quantity=2))] == ["OrderLineReserved"]
    assert s.order.status == "placed"
    events = s.inventory(StockReserved(order_id="o1", sku="B", quantity=1))
    assert isinstance(events[-1], OrderConfirmed) and s.order.status == "confirmed"


def test_partially_backordered_order_waits_then_is_ready_to_ship_expedited():
    s = Script(("A", 5))
    s.inventory(StockReserved(order_id="o1", sku="A", quantity=3))
    assert s.order.status == "placed"  # the backorder for the other 2 is still to come
    events = s.inventory(backordered("A", 2))
    assert events[-1] == OrderBackordered(order_id="o1", backordered_lines=[{"sku": "A", "quantity": 2, "estimated_ship_date": ETA}])
    s.inventory(BackorderFulfilled(order_id="o1", sku="A", quantity=1, remaining=1))
    assert s.order.status == "backordered"
    events = s.inventory(BackorderFulfilled(order_id="o1", sku="A", quantity=1, remaining=0))
    assert events[-1] == OrderReadyToShip(order_id="o1", expedited=True)
    line = s.order.line("A")
    assert (line.reserved, line.backordered, line.fulfilled, line.eta) == (3, 0, 2, None)


def test_order_whose_every_line_is_refused_is_rejected_with_the_reasons():
    s = Script(("A", 1), ("B", 1))
    for sku, reason in (("A", "unknown_sku"), ("B", "discontinued")):
        events = s.inventory(OutOfStock(order_id="o1", sku=sku, quantity=1, reason=reason, message=f"{sku} cannot be ordered"))
    assert isinstance(events[-1], OrderRejected)
    assert [l.reason for l in events[-1].lines] == ["unknown_sku", "discontinued"]
    assert s.order.status == "rejected"


def test_order_with_one_refused_line_is_confirmed_for_the_rest():
    s = Script(("A", 1), ("B", 1))
    s.inventory(OutOfStock(order_id="o1", sku="A", quantity=1, reason="unknown_sku", message="no"))
    events = s.inventory(StockReserved(order_id="o1", sku="B", quantity=1))
    assert isinstance(events[-1], OrderConfirmed) and events[-1].rejected_lines[0].sku == "A"


def test_cancelling_a_backordered_line_is_requested_then_confirmed_with_a_refund():
    s = Script(("A", 5, "2.50"))
    s.inventory(StockReserved(order_id="o1", sku="A", quantity=3))
    s.inventory(backordered("A", 2))
    assert s(decisions.cancel, CancelOrder(order_id="o1", reason="too slow")) == [
        CancellationRequested(order_id="o1", skus=["A"], reason="too slow")]
    assert decisions.cancel(s.order, CancelOrder(order_id="o1"))[0].reason.startswith("a cancellation")
    events = s.inventory(released("A", quantity=3, backorder_cancelled=2))
    cancelled = next(e for e in events if isinstance(e, OrderCancelled))
    assert cancelled.whole_order and cancelled.refund_amount == Decimal("12.50") and cancelled.reason == "too slow"
    assert any(isinstance(e, RefundIssued) for e in events)
    assert s.order.status == "cancelled" and s.rebuilt() == s.order


def test_cancelling_what_was_filled_is_refused():
    s = Script(("A", 2))
    s.inventory(backordered("A", 2))
    s.inventory(BackorderFulfilled(order_id="o1", sku="A", quantity=2, remaining=0))
    refused = decisions.cancel(s.order, CancelOrder(order_id="o1"))
    assert isinstance(refused[0], CancellationRefused) and "filled" in refused[0].reason


def test_a_receipt_that_wins_the_race_with_a_cancellation_makes_it_refused():
    s = Script(("A", 2))
    s.inventory(backordered("A", 2))
    s(decisions.cancel, CancelOrder(order_id="o1"))
    s.inventory(BackorderFulfilled(order_id="o1", sku="A", quantity=2, remaining=0))
    events = s.inventory(released("A", kept=2))
    assert isinstance(events[-2], CancellationRefused) and isinstance(events[-1], OrderReadyToShip)


def test_a_store_cancellation_during_the_customers_is_one_answer_with_the_stores_reason():
    s = Script(("A", 4, "5"), ("B", 1, "7"))
    s.inventory(backordered("A", 4))
    s.inventory(StockReserved(order_id="o1", sku="B", quantity=1))
    s(decisions.cancel, CancelOrder(order_id="o1", reason="changed my mind"))
    # Inventory discontinued A before it saw the customer's request, then answered the request.
    events = s.inventory(released("A", backorder_cancelled=4, reason="A is discontinued", requested=False))
    events += s.inventory(released("A"))
    events += s.inventory(released("B", quantity=1))
    assert [type(e).__name__ for e in events if not type(e).__name__.startswith("OrderLine")] == [
        "OrderCancelled", "RefundIssued"]
    cancelled = events[-2]
    assert cancelled.refund_amount == Decimal("27.00") and cancelled.whole_order
    assert cancelled.reason == "changed my mind; A is discontinued"
    assert s.rebuilt() == s.order and s.order.cancel_reason is None


def test_a_store_cancellation_alone_is_told_with_its_reason():
    s = Script(("A", 2, "5"))
    s.inventory(backordered("A", 2))
    events = s.inventory(released("A", backorder_cancelled=2, reason="A is discontinued", requested=False))
    cancelled = next(e for e in events if isinstance(e, OrderCancelled))
    assert cancelled.reason == "A is discontinued" and cancelled.whole_order and cancelled.refund_amount == Decimal("10.00")


def test_a_refusal_arriving_after_a_line_cancellation_closes_the_order():
    s = Script(("A", 1), ("X", 6))
    s.inventory(StockReserved(order_id="o1", sku="A", quantity=1))
    s(decisions.cancel, CancelOrder(order_id="o1", sku="A"))
    first = s.inventory(released("A", quantity=1))
    assert isinstance(first[1], OrderCancelled) and not first[1].whole_order
    events = s.inventory(OutOfStock(order_id="o1", sku="X", quantity=6, reason="unknown_sku", message="X is unknown"))
    assert s.order.status == "cancelled"
    assert events[-1] == OrderCancelled(order_id="o1", lines=[], whole_order=True,
                                        rejected_lines=[{"sku": "X", "reason": "unknown_sku", "message": "X is unknown"}])


def test_a_whole_cancellation_refunds_the_priced_lines_when_some_are_unpriced():
    s = Script(("A", 2, "10"), ("B", 1))
    s.inventory(StockReserved(order_id="o1", sku="A", quantity=2))
    s.inventory(StockReserved(order_id="o1", sku="B", quantity=1))
    s(decisions.cancel, CancelOrder(order_id="o1"))
    s.inventory(released("A", quantity=2))
    events = s.inventory(released("B", quantity=1))
    refund = next(e for e in events if isinstance(e, RefundIssued))
    assert refund.amount == Decimal("20.00")


def test_refunds_are_rounded_to_the_currency_and_never_exceed_what_was_charged():
    assert rounded(Decimal("0.9999"), "USD") == Decimal("1.00")
    assert rounded(Decimal("12.5"), "JPY") == Decimal("12") and rounded(Decimal("1.2345"), "KWD") == Decimal("1.234")
    s = Script(("A", 3, "0.3333"), currency="USD")
    s.inventory(backordered("A", 3))
    refunds = []
    for _ in range(2):  # a discontinued product's units cancelled one at a time, then the customer's last
        refunds += [e.amount for e in s.inventory(released("A", backorder_cancelled=1, reason="gone", requested=False))
                    if isinstance(e, RefundIssued)]
    s(decisions.cancel, CancelOrder(order_id="o1"))
    refunds += [e.amount for e in s.inventory(released("A", backorder_cancelled=1)) if isinstance(e, RefundIssued)]
    assert refunds == [Decimal("0.33"), Decimal("0.34"), Decimal("0.33")] and sum(refunds) == Decimal("1.00")


def test_shipping_everything_reserved_or_filled_marks_the_order_shipped():
    s = Script(("A", 3), ("B", 1))
    s.inventory(StockReserved(order_id="o1", sku="A", quantity=1))
    s.inventory(backordered("A", 2))
    s.inventory(StockReserved(order_id="o1", sku="B", quantity=1))
    first = s(decisions.ship, ShipOrder(order_id="o1", shipment_id="s1", carrier="DHL", tracking_number="T1"))
    assert first == [OrderShipped(order_id="o1", shipment_id="s1", lines=[{"sku": "A", "quantity": 1}, {"sku": "B", "quantity": 1}],
                                  carrier="DHL", tracking_number="T1", complete=False)]
    assert s.order.status == "backordered" and s.order.line("A").shipped == 1
    events = s.inventory(BackorderFulfilled(order_id="o1", sku="A", quantity=2, remaining=0))
    assert isinstance(events[-1], OrderReadyToShip) and s.order.status == "ready_to_ship"
    last = s(decisions.ship, ShipOrder(order_id="o1", shipment_id="s2", lines=[{"sku": "A", "quantity": 2}]))
    assert last[0].complete and s.order.status == "shipped"
    assert s(decisions.ship, ShipOrder(order_id="o1", shipment_id="s2")) == []  # the same shipment again
    refused = decisions.cancel(s.order, CancelOrder(order_id="o1"))
    assert isinstance(refused[0], CancellationRefused) and "shipped" in refused[0].reason
    assert s.rebuilt() == s.order


def test_shipping_what_is_not_reserved_or_already_shipped_is_refused():
    s = Script(("A", 3))
    s.inventory(StockReserved(order_id="o1", sku="A", quantity=1))
    s.inventory(backordered("A", 2))
    refused = s(decisions.ship, ShipOrder(order_id="o1", shipment_id="s1", lines=[{"sku": "A", "quantity": 2}]))
    assert isinstance(refused[0], ShipmentRefused) and "1 reserved or filled" in refused[0].reason
    s(decisions.ship, ShipOrder(order_id="o1", shipment_id="s2"))
    again = s(decisions.ship, ShipOrder(order_id="o1", shipment_id="s3", lines=[{"sku": "A", "quantity": 1}]))
    assert isinstance(again[0], ShipmentRefused) and "1 shipped already" in again[0].reason
    other = s(decisions.ship, ShipOrder(order_id="o1", shipment_id="s4", lines=[{"sku": "Z", "quantity": 1}]))
    assert "no line for Z" in other[0].reason


def test_a_line_being_cancelled_is_not_shipped():
    s = Script(("A", 2))
    s.inventory(StockReserved(order_id="o1", sku="A", quantity=2))
    s(decisions.cancel, CancelOrder(order_id="o1"))
    refused = s(decisions.ship, ShipOrder(order_id="o1", shipment_id="s1", lines=[{"sku": "A", "quantity": 1}]))
    assert "being cancelled" in refused[0].reason


def test_folding_the_events_rebuilds_the_cancel_reason_too():
    s = Script(("A", 2), ("B", 1))
    s.inventory(StockReserved(order_id="o1", sku="A", quantity=2))
    s.inventory(StockReserved(order_id="o1", sku="B", quantity=1))
    s(decisions.cancel, CancelOrder(order_id="o1", sku="A", reason="old reason"))
    s.inventory(released("A", kept=0))  # nothing left to take: still one answer
    assert s.rebuilt() == s.order and s.order.cancel_reason is None


OUTCOMES = {
    "reserved": lambda sku, q: [StockReserved(order_id="o1", sku=sku, quantity=q)],
    "backordered": lambda sku, q: [backordered(sku, q)],
    "split": lambda sku, q: [StockReserved(order_id="o1", sku=sku, quantity=1), backordered(sku, q - 1)] if q > 1 else
    [backordered(sku, q)],
    "refused": lambda sku, q: [OutOfStock(order_id="o1", sku=sku, quantity=q, reason="unknown_sku", message="no")],
}


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(sorted(OUTCOMES)), min_size=1, max_size=3), st.integers(0, 3), st.randoms())
def test_every_order_reaches_a_waiting_or_final_status_whatever_order_outcomes_arrive_in(outcomes, cancel_at, rnd):
    """Per-SKU outcomes travel on different partitions: any interleaving, with a cancellation of the first line
    sent at any point, ends in a status a storefront can act on, and the fold rebuilds the order."""
    skus = [f"S{i}" for i in range(len(outcomes))]
    s = Script(*[(sku, 3, "1.10") for sku in skus])
    per_sku = [OUTCOMES[kind](sku, 3) for sku, kind in zip(skus, outcomes)]
    queues = [list(q) for q in per_sku]
    step = 0
    cancelling = None
    while any(queues):
        if step == cancel_at and cancelling is None:
            cancelling = s(decisions.cancel, CancelOrder(order_id="o1", sku=skus[0]))
            if cancelling and isinstance(cancelling[0], CancellationRequested):
                line = s.order.line(skus[0])
                queues[0].append(released(skus[0], quantity=line.reserved, backorder_cancelled=line.backordered))
        queue = rnd.choice([q for q in queues if q])
        s.inventory(queue.pop(0))
        step += 1
    assert s.order.status not in ("placed",)
    assert not any(line.cancelling for line in s.order.lines)
    assert s.order.announced == s.order.status or s.order.status in ("partially_shipped", "shipped")
    assert s.rebuilt() == s.order
    for line in s.order.lines:
        assert line.rejection or line.reserved + line.backordered + line.fulfilled + line.shipped + line.cancelled == line.quantity


def test_a_draft_is_changed_without_changing_its_order():
    order, _ = placed(("A", 2), ("B", 1))
    order.store_reasons, order.being_cancelled, order.shipments = ["recall"], {"A": 1}, ["s1"]
    before = order.model_copy(deep=True)
    draft = order.draft()
    draft.line("A").reserved += 2
    draft.store_reasons.append("damaged")
    draft.being_cancelled["B"] = 1
    draft.shipments.append("s2")
    evolve(draft, OrderCancelled(order_id="o1", lines=[], whole_order=False))
    assert order == before and draft != before
