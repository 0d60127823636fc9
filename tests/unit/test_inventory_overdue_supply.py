"""ETAs around purchase orders that did not come by their date, and counts on a discontinued product."""

from datetime import date, timedelta

from contracts.commands import (
    AdjustStock,
    DiscontinueProduct,
    ExpectReplenishment,
    OrderLine,
    ReceiveStock,
    RegisterProduct,
)
from contracts.events import (
    BackorderCancelled,
    BackorderCreated,
    BackorderEtaChanged,
    OrderPlaced,
    ReservationRevoked,
)
from services.inventory.domain import allocation, products, supply
from services.inventory.domain.state import Sku, apply

DAY = date(2026, 11, 25)
REVIEW_DAY = date(2026, 12, 5)


def order(order_id: str, quantity: int) -> OrderPlaced:
    return OrderPlaced(order_id=order_id, customer_id="c", customer_email="c@example.com",
                       lines=[OrderLine(sku="A", quantity=quantity)])


def reviewed() -> Sku:
    """o1 waits for 2 units of p1 (due 1 Dec), which never came: the review of 5 Dec moved it to 15 Dec."""
    state = Sku(sku="A")
    apply(state, products.register_product(state, RegisterProduct(sku="A", name="Anvil", lead_time_days=10), DAY))
    apply(state, supply.expect_replenishment(state, ExpectReplenishment(po_id="p1", sku="A", quantity=2,
                                                                        expected_on=date(2026, 12, 1)), DAY))
    apply(state, allocation.allocate(state, order("o1", 2), 2, DAY))
    apply(state, supply.review_overdue(state, REVIEW_DAY, ["o1"]))
    assert state.backorder("o1").eta == date(2026, 12, 15)
    return state


def test_a_new_purchase_order_moves_an_eta_the_review_moved():
    """A purchase order that gives a credible date, here a new one due before the moved ETA, moves it again."""
    state = reviewed()
    events = apply(state, supply.expect_replenishment(state, ExpectReplenishment(
        po_id="p2", sku="A", quantity=2, expected_on=date(2026, 12, 8)), REVIEW_DAY))
    assert [(e.order_id, e.estimated_ship_date) for e in events if isinstance(e, BackorderEtaChanged)] == [
        ("o1", date(2026, 12, 8))], events


def test_a_backorder_placed_behind_a_reviewed_one_is_not_promised_earlier_than_it():
    """FIFO promises: o2, ordered behind o1, is never promised a date before o1's."""
    state = reviewed()
    apply(state, supply.expect_replenishment(state, ExpectReplenishment(po_id="p2", sku="A", quantity=2,
                                                                        expected_on=date(2026, 12, 8)), REVIEW_DAY))
    created = [e for e in apply(state, allocation.allocate(state, order("o2", 2), 2, REVIEW_DAY))
               if isinstance(e, BackorderCreated)]
    assert created[0].estimated_ship_date >= state.backorder("o1").eta, (
        created, [(b.order_id, b.eta) for b in state.head()])


def test_a_count_on_a_discontinued_product_tells_each_revoked_order_one_eta_and_no_date_for_cancelled_units():
    """A count tells each revoked order one date: the one that holds after what the discontinue cancels."""
    state = Sku(sku="A")
    apply(state, products.register_product(state, RegisterProduct(sku="A", name="Anvil", lead_time_days=10), DAY))
    apply(state, allocation.receive_stock(state, ReceiveStock(receipt_id="r0", sku="A", quantity=3), DAY))
    apply(state, allocation.allocate(state, order("o1", 3), 3, DAY))
    apply(state, supply.expect_replenishment(state, ExpectReplenishment(po_id="p1", sku="A", quantity=1,
                                                                        expected_on=DAY + timedelta(days=3)), DAY))
    apply(state, products.discontinue_product(state, DiscontinueProduct(sku="A"), DAY))
    events = allocation.adjust_stock(state, AdjustStock(sku="A", counted_quantity=0, reason="theft"), DAY)
    told = [(type(e).__name__, e.estimated_ship_date) for e in events
            if isinstance(e, (ReservationRevoked, BackorderEtaChanged)) and e.order_id == "o1"]
    assert any(isinstance(e, BackorderCancelled) for e in events)
    assert told == [("ReservationRevoked", DAY + timedelta(days=3))], (told, events)
