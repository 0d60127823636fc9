"""What the customer is told of an order's status, read from its events alone, whatever crosses what (refusals,
cancellations, shipments, outcomes in flight): once everything is delivered, the last status told is the order's
status (and the one it has announced), and no status event but OrderStatusChanged repeats the status told before it
unless it carries a refusal no event carried."""

from decimal import Decimal

from hypothesis import event, given, settings
from hypothesis import strategies as st

from contracts.commands import CancelOrder, ShipOrder
from contracts.events import (
    OrderBackordered,
    OrderCancelled,
    OrderConfirmed,
    OrderReadyToShip,
    OrderRejected,
    OrderShipped,
    OrderStatusChanged,
    OutOfStock,
    RefundIssued,
    StockReleased,
    StockReserved,
)
from services.notification import domain
from services.order.domain import decisions
from services.order.domain.state import Order, evolve
from tests.unit import test_order_and_inventory_agree as agree
from tests.unit.test_order_domain import Script
from tests.unit.test_refusals_told_once import World, step


def status_told(event, after: Order) -> str | None:
    """The status `event` tells the customer, if any (`after`: the order once it happened). A shipment tells a
    shipping status; one that leaves the order waiting or undecided tells only what shipped."""
    match event:
        case OrderConfirmed():
            return "confirmed"
        case OrderBackordered():
            return "backordered"
        case OrderReadyToShip():
            return "ready_to_ship"
        case OrderRejected():
            return "rejected"
        case OrderCancelled(whole_order=True):
            return "cancelled"
        case OrderStatusChanged():
            return event.status
        case OrderShipped() if after.status in ("partially_shipped", "shipped"):
            return after.status
    return None


def check(world: World) -> None:
    for order_id, order in world.orders.items():
        told, carried, story, rebuilt = None, set(), [], None
        for event in world.recorded[order_id]:
            rebuilt = evolve(rebuilt, event)
            story.append(f"{type(event).__name__} {getattr(event, 'status', '')} "
                         f"{sorted(l.sku for l in domain.refused(event))} {getattr(event, 'complete', '')}")
            status = status_told(event, rebuilt)
            new_refusals = {l.sku for l in domain.refused(event)} - carried
            carried |= new_refusals
            if status is None:
                continue
            # Each shipment is news of its own. An OrderStatusChanged may repeat the status a shipment told while a
            # cancellation held the status back (the refusals it names may have been told meanwhile, by the
            # cancellation): it calls for a mail only for refusals not told, so the customer hears nothing twice.
            if not isinstance(event, (OrderShipped, OrderStatusChanged)):
                assert status != told or new_refusals, f"{status} told twice:\n" + "\n".join(story)
            told = status
        assert told == order.status, f"ends {order.status}, told {told}:\n" + "\n".join(story)
        assert order.announced == order.status, (order.announced, order.status)


def run(script, in_flight, rnd):
    world = World(in_flight)
    agree.play(world, script, rnd)
    check(world)
    recorded = [e for es in world.recorded.values() for e in es]
    event(f"status changed: {min(sum(isinstance(e, OrderStatusChanged) for e in recorded), 3)}+")
    event(f"shipments: {min(sum(isinstance(e, OrderShipped) for e in recorded), 3)}+")
    event(f"cancellations: {min(sum(isinstance(e, OrderCancelled) for e in recorded), 3)}+")


@settings(max_examples=1000, deadline=None)
@given(st.lists(step, min_size=10, max_size=50), st.randoms(use_true_random=False))
def test_in_flight_the_last_status_told_is_the_orders_and_none_is_told_twice(script, rnd):
    run(script, True, rnd)


@settings(max_examples=300, deadline=None)
@given(st.lists(step, min_size=10, max_size=40))
def test_delivered_at_once_the_last_status_told_is_the_orders_and_none_is_told_twice(script):
    run(script, False, None)


def test_a_status_repeated_after_a_shipment_whose_refusal_a_cancellation_told_calls_for_no_mail():
    """Found by the property above: A's cancellation crosses its refusal, the store cancels a unit of B meanwhile,
    and the rest of B ships (complete) while A's cancellation holds the status back. Its answer tells A's refusal
    with the cancellation of B's unit; the OrderStatusChanged(shipped) that follows repeats the shipment's status
    and names A again: the customer is told neither twice."""
    s = Script(("A", 1, Decimal("5.00")), ("B", 2, Decimal("5.00")))
    s(decisions.cancel, CancelOrder(order_id="o1", sku="A"))
    s.inventory(OutOfStock(order_id="o1", sku="A", quantity=1, reason="unknown_sku", message="A is not sold here"))
    s.inventory(StockReserved(order_id="o1", sku="B", quantity=2))
    s.inventory(StockReleased(order_id="o1", sku="B", quantity=1, backorder_cancelled=0, kept=0,
                              reason="B is discontinued", requested=False))
    [shipped] = s(decisions.ship, ShipOrder(order_id="o1", shipment_id="sh1"))
    answered = s.inventory(StockReleased(order_id="o1", sku="A", quantity=0, backorder_cancelled=0, kept=0))

    assert shipped.complete and [type(e) for e in answered if not isinstance(e, RefundIssued)][-2:] == [
        OrderCancelled, OrderStatusChanged]
    mails, told = domain.decide_each([(shipped, "m1"), *((e, f"m{n}") for n, e in enumerate(answered, 2))], {})
    assert [m.kind for m in mails if m] == ["order_shipped", "order_cancelled"]
    assert [sku for _, sku, _ in told] == ["A"] and s.order.announced == s.order.status == "shipped"
