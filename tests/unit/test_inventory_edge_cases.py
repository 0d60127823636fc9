"""Edge cases of the SKU aggregate: a product registered again as discontinued, backorders placed behind
an overdue purchase order, and purchase orders expected absurdly far ahead."""

from datetime import date, timedelta

import pytest

from contracts.commands import ExpectReplenishment, OrderLine, RegisterProduct, RescheduleReplenishment
from contracts.events import BackorderCancelled, BackorderEtaChanged, OrderPlaced
from services.inventory.domain import allocation, availability, products, supply
from services.inventory.domain.state import Refused, Sku, apply

DAY = date(2026, 11, 25)


def test_registering_again_as_discontinued_with_a_longer_lead_time_tells_no_slip_for_units_it_cancels():
    """Nobody is told a slip (which brings goodwill) for units cancelled in the same decision."""
    state = Sku(sku="A")
    apply(state, products.register_product(state, RegisterProduct(sku="A", name="Anvil", lead_time_days=5), DAY))
    placed = OrderPlaced(order_id="o1", customer_id="c", customer_email="c@example.com",
                         lines=[OrderLine(sku="A", quantity=2)])
    apply(state, allocation.allocate(state, placed, 2, DAY))
    events = products.register_product(state, RegisterProduct(sku="A", name="Anvil", lead_time_days=10,
                                                              discontinued=True), DAY)
    cancelled = {e.order_id for e in events if isinstance(e, BackorderCancelled) and not e.remaining}
    assert cancelled == {"o1"}
    assert not [e for e in events if isinstance(e, BackorderEtaChanged) and e.order_id in cancelled], events


def test_a_backorder_placed_behind_an_overdue_purchase_order_is_not_promised_an_earlier_date_than_those_ahead():
    """The daily review moved o1's ETA off an overdue purchase order; a backorder placed that day behind o1
    is not told the overdue date (as "today"), which would promise it before o1 and slip it tomorrow."""
    state = Sku(sku="A")
    apply(state, products.register_product(state, RegisterProduct(sku="A", name="Anvil", lead_time_days=10), DAY))
    apply(state, supply.expect_replenishment(state, ExpectReplenishment(po_id="p1", sku="A", quantity=5,
                                                                        expected_on=date(2026, 12, 1)), DAY))
    def order(order_id: str, quantity: int) -> OrderPlaced:
        return OrderPlaced(order_id=order_id, customer_id="c", customer_email="c@example.com",
                           lines=[OrderLine(sku="A", quantity=quantity)])

    apply(state, allocation.allocate(state, order("o1", 2), 2, DAY))
    review_day = date(2026, 12, 5)
    apply(state, supply.review_overdue(state, review_day, ["o1"]))
    assert state.backorder("o1").eta == review_day + timedelta(days=10)
    apply(state, allocation.allocate(state, order("o2", 1), 1, review_day))
    assert state.backorder("o2").eta >= state.backorder("o1").eta, [(b.order_id, b.eta) for b in state.head()]
    assert availability.availability(state, review_day).estimated_ship_date > review_day


def test_a_purchase_order_expected_beyond_any_credible_date_is_refused_with_its_reason():
    """A date such as 9999-12-31 would be promised to customers, and the supplier's learned lateness added to
    it overflows the calendar: every later order of the SKU, and the planning run of its SKUs, would fail."""
    state = Sku(sku="A")
    apply(state, products.register_product(state, RegisterProduct(sku="A", name="Anvil", lead_time_days=5), DAY))
    far = DAY + supply.FURTHEST_EXPECTED + timedelta(days=1)
    with pytest.raises(Refused, match="more than 100 years"):
        supply.expect_replenishment(state, ExpectReplenishment(po_id="p1", sku="A", quantity=5, expected_on=far), DAY)
    apply(state, supply.expect_replenishment(state, ExpectReplenishment(po_id="p1", sku="A", quantity=5,
                                                                        expected_on=far - timedelta(days=1)), DAY))
    with pytest.raises(Refused, match="more than 100 years"):
        supply.reschedule_replenishment(state, RescheduleReplenishment(po_id="p1", sku="A", expected_on=date.max), DAY)


def test_a_purchase_order_dated_before_today_promises_no_day_already_past():
    """Registered late, or rescheduled to a day gone by: it is expected where the daily review would expect it
    (today plus the lead time), not told to the customers waiting for it as a date they will see slip tomorrow."""
    state = Sku(sku="A")
    apply(state, products.register_product(state, RegisterProduct(sku="A", name="Anvil", lead_time_days=10), DAY))
    apply(state, allocation.allocate(state, OrderPlaced(order_id="o1", customer_id="c", customer_email="c@example.com",
                                                        lines=[OrderLine(sku="A", quantity=2)]), 2, DAY))
    today = DAY + timedelta(days=5)
    events = apply(state, supply.expect_replenishment(
        state, ExpectReplenishment(po_id="p1", sku="A", quantity=2, expected_on=DAY + timedelta(days=2)), today))
    assert [(e.order_id, e.estimated_ship_date) for e in events if isinstance(e, BackorderEtaChanged)] == [
        ("o1", today + timedelta(days=10))], events
    assert state.replenishments[0].expected_on == today + timedelta(days=10)
    apply(state, supply.expect_replenishment(
        state, ExpectReplenishment(po_id="p2", sku="A", quantity=2, expected_on=today + timedelta(days=3)), today))
    assert state.backorder("o1").eta == today + timedelta(days=3)
    events = apply(state, supply.reschedule_replenishment(
        state, RescheduleReplenishment(po_id="p2", sku="A", expected_on=today - timedelta(days=1)), today))
    assert all(e.estimated_ship_date >= today for e in events if isinstance(e, BackorderEtaChanged)), events
    assert state.backorder("o1").eta == today + timedelta(days=10)
