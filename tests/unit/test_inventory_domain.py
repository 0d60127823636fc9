"""The SKU aggregate: allocation, backorders, FIFO fulfilment and ETAs, without I/O."""

from datetime import date, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.commands import (
    AdjustStock,
    CancelReplenishment,
    DiscontinueProduct,
    ExpectReplenishment,
    OrderLine,
    ReceiveStock,
    RegisterProduct,
    RescheduleReplenishment,
    UpdateProduct,
)
from contracts.events import (
    BackorderCancelled,
    BackorderCreated,
    BackorderEtaChanged,
    BackorderFulfilled,
    OrderPlaced,
    OutOfStock,
    ReservationRevoked,
    StockReleased,
    StockReserved,
)
from services.inventory import domain
from services.inventory.domain import Sku

TODAY = date(2026, 11, 25)


def product(sku="A", **overrides) -> Sku:
    state = Sku(sku=sku)
    fields = {"sku": sku, "name": "Anvil", "lead_time_days": 14} | overrides
    domain.register_product(state, RegisterProduct(**fields))
    return state


def order(order_id: str, quantity: int, sku="A", allow_backorder=True) -> OrderPlaced:
    return OrderPlaced(order_id=order_id, customer_id="c", customer_email="c@example.com",
                       lines=[OrderLine(sku=sku, quantity=quantity)], allow_backorder=allow_backorder)


def receive(state: Sku, quantity: int, receipt_id="r1", po_id=None):
    return domain.receive_stock(state, ReceiveStock(receipt_id=receipt_id, sku=state.sku, quantity=quantity, po_id=po_id), TODAY)


def allocate(state: Sku, order_id: str, quantity: int, **kw):
    return domain.allocate(state, order(order_id, quantity, sku=state.sku, **kw), quantity, TODAY)


def test_in_stock_line_is_reserved_in_full():
    state = product()
    receive(state, 10)
    assert allocate(state, "o1", 4) == [StockReserved(order_id="o1", sku="A", quantity=4)]
    assert (state.on_hand, state.reserved, state.available) == (10, 4, 6)


def test_short_line_reserves_what_is_there_and_backorders_the_rest_with_lead_time_eta():
    state = product()
    receive(state, 3)
    events = allocate(state, "o1", 5)
    assert events == [
        StockReserved(order_id="o1", sku="A", quantity=3),
        BackorderCreated(order_id="o1", sku="A", quantity=2, estimated_ship_date=TODAY + timedelta(days=14),
                         backordered_on=TODAY),
    ]
    assert state.available == 0 and state.backordered == 2


def test_backorder_eta_comes_from_the_first_replenishment_not_promised_to_earlier_backorders():
    state = product()
    domain.expect_replenishment(state, ExpectReplenishment(po_id="p1", sku="A", quantity=5, expected_on=date(2026, 12, 1)), TODAY)
    domain.expect_replenishment(state, ExpectReplenishment(po_id="p2", sku="A", quantity=5, expected_on=date(2026, 12, 8)), TODAY)
    first = allocate(state, "o1", 4)[-1]
    second = allocate(state, "o2", 4)[-1]  # 1 unit left of p1, 3 from p2
    third = allocate(state, "o3", 4)[-1]  # 2 left of p2: not covered, lead time
    assert first.estimated_ship_date == date(2026, 12, 1)
    assert second.estimated_ship_date == date(2026, 12, 8)
    assert third.estimated_ship_date == TODAY + timedelta(days=14)


def test_new_replenishment_moves_the_eta_of_waiting_backorders():
    state = product()
    allocate(state, "o1", 2)
    events = domain.expect_replenishment(
        state, ExpectReplenishment(po_id="p1", sku="A", quantity=10, expected_on=date(2026, 12, 1)), TODAY)
    assert events[-1] == BackorderEtaChanged(order_id="o1", sku="A", quantity=2,
                                             previous_estimated_ship_date=TODAY + timedelta(days=14),
                                             estimated_ship_date=date(2026, 12, 1))


def test_short_receipt_fills_oldest_backorder_first():
    state = product()
    for order_id in ("o1", "o2", "o3"):
        allocate(state, order_id, 4)
    events = receive(state, 6)
    fills = [e for e in events if isinstance(e, BackorderFulfilled)]
    assert fills == [
        BackorderFulfilled(order_id="o1", sku="A", quantity=4, remaining=0),
        BackorderFulfilled(order_id="o2", sku="A", quantity=2, remaining=2),
    ]
    assert [(b.order_id, b.quantity) for b in state.backorders] == [("o2", 2), ("o3", 4)]
    assert state.available == 0 and state.reserved == 6


def test_receipt_beyond_backorders_becomes_available_stock():
    state = product()
    allocate(state, "o1", 2)
    receive(state, 5)
    assert state.backorders == [] and state.available == 3


def test_unknown_sku_is_refused():
    assert allocate(Sku(sku="X"), "o1", 1)[0].reason == "unknown_sku"


def test_discontinued_product_sells_its_remaining_stock_but_takes_no_backorder():
    state = product(discontinued=True)
    receive(state, 2)
    assert allocate(state, "o1", 2) == [StockReserved(order_id="o1", sku="A", quantity=2)]
    refused = allocate(state, "o2", 1)
    assert isinstance(refused[0], OutOfStock) and refused[0].reason == "discontinued"
    assert state.backorders == []


def test_not_backorderable_and_customer_declined_backorders_are_refused_without_reserving():
    state = product(backorderable=False)
    receive(state, 1)
    assert allocate(state, "o1", 2)[0].reason == "not_backorderable"
    state = product()
    receive(state, 1)
    assert allocate(state, "o2", 2, allow_backorder=False)[0].reason == "backorders_not_allowed"
    assert state.reserved == 0


def test_registering_the_same_product_twice_records_nothing_new():
    state = product()
    assert domain.register_product(state, RegisterProduct(sku="A", name="Anvil", lead_time_days=14)) == []


commands = st.lists(
    st.one_of(
        st.tuples(st.just("order"), st.integers(1, 8), st.booleans()),
        st.tuples(st.just("receive"), st.integers(1, 12), st.booleans()),
        st.tuples(st.just("expect"), st.integers(1, 12), st.integers(0, 30)),
        st.tuples(st.just("cancel"), st.integers(0, 39), st.booleans()),
        st.tuples(st.just("reschedule"), st.integers(0, 39), st.integers(0, 30)),
        st.tuples(st.just("count"), st.integers(0, 20), st.booleans()),
        st.tuples(st.just("cancel_po"), st.integers(0, 39), st.booleans()),
        st.tuples(st.just("lead_time"), st.integers(0, 30), st.booleans()),
        st.tuples(st.just("discontinue"), st.integers(0, 1), st.booleans()),
    ),
    max_size=40,
)


@settings(max_examples=1000, deadline=None)
@given(commands)
def test_stock_is_never_over_allocated_and_events_fold_back_to_the_state(script):
    state = product()
    events = []
    for i, (kind, quantity, flag) in enumerate(script):
        if kind == "order":
            events += allocate(state, f"o{i}", quantity, allow_backorder=flag)
        elif kind == "cancel_po":
            events += domain.cancel_replenishment(state, CancelReplenishment(po_id=f"p{quantity}", sku="A"), TODAY)
        elif kind == "lead_time":
            events += domain.update_product(state, UpdateProduct(sku="A", lead_time_days=quantity), TODAY)
        elif kind == "discontinue":
            events += domain.discontinue_product(state, DiscontinueProduct(sku="A"), TODAY)
        elif kind == "count":
            events += domain.adjust_stock(state, AdjustStock(sku="A", counted_quantity=quantity, reason="count"), TODAY)
        elif kind == "reschedule":
            events += domain.reschedule_replenishment(
                state, RescheduleReplenishment(po_id=f"p{quantity}", sku="A", expected_on=TODAY + timedelta(days=flag)),
                TODAY)
        elif kind == "cancel":
            events += domain.cancel(state, f"o{quantity}", TODAY)
        elif kind == "receive":
            events += receive(state, quantity, receipt_id=f"r{i}", po_id="p0" if flag else None)
        else:
            events += domain.expect_replenishment(
                state, ExpectReplenishment(po_id=f"p{i}", sku="A", quantity=quantity,
                                           expected_on=TODAY + timedelta(days=flag)), TODAY)
        assert 0 <= state.reserved <= state.on_hand
        assert [b.eta for b in state.backorders] == domain._etas(state, TODAY)
        assert all(b.quantity > 0 for b in state.backorders)
        assert state.backordered == sum(b.quantity for b in state.backorders)
        # Stock waits only when nobody waits for it.
        assert state.available == 0 or not state.backorders
    rebuilt = product()
    for event in events:
        domain.evolve(rebuilt, event)
    assert rebuilt == state


def test_cancelling_releases_reserved_stock_and_the_backorder_and_freed_stock_fills_older_waiters():
    state = product()
    allocate(state, "waiting", 2)  # backordered: nothing in stock yet
    receive(state, 2)  # fills "waiting"
    receive(state, 3, receipt_id="r2")
    allocate(state, "o1", 5)  # 3 reserved, 2 backordered
    allocate(state, "o2", 1)  # backordered behind o1
    events = domain.cancel(state, "o1", TODAY)
    assert events[:2] == [
        BackorderCancelled(order_id="o1", sku="A", quantity=2),
        StockReleased(order_id="o1", sku="A", quantity=3, backorder_cancelled=2, kept=0),
    ]
    assert BackorderFulfilled(order_id="o2", sku="A", quantity=1, remaining=0) in events
    assert state.backorders == [] and state.available == 2 and "o1" not in state.reservations


def test_cancelling_keeps_units_already_filled_from_a_receipt():
    state = product()
    allocate(state, "o1", 2)
    receive(state, 2)
    assert domain.cancel(state, "o1", TODAY) == [
        StockReleased(order_id="o1", sku="A", quantity=0, backorder_cancelled=0, kept=2)]
    assert state.reserved == 2


def test_a_delayed_purchase_order_moves_the_eta_of_the_backorders_it_covers():
    state = product()
    domain.expect_replenishment(state, ExpectReplenishment(po_id="p1", sku="A", quantity=5, expected_on=date(2026, 12, 1)), TODAY)
    allocate(state, "o1", 2)
    events = domain.reschedule_replenishment(
        state, RescheduleReplenishment(po_id="p1", sku="A", expected_on=date(2026, 12, 4)), TODAY)
    assert events[-1].estimated_ship_date == date(2026, 12, 4)
    assert events[-1].previous_estimated_ship_date == date(2026, 12, 1)


def test_discontinuing_keeps_backorders_that_expected_stock_will_fill_and_cancels_the_rest():
    state = product()
    domain.expect_replenishment(state, ExpectReplenishment(po_id="p1", sku="A", quantity=3, expected_on=date(2026, 12, 1)), TODAY)
    for order_id in ("o1", "o2", "o3"):
        allocate(state, order_id, 2)
    events = domain.discontinue_product(state, DiscontinueProduct(sku="A", reason="supplier closed"), TODAY)
    assert events[1:] == [
        BackorderCancelled(order_id="o2", sku="A", quantity=1),
        StockReleased(order_id="o2", sku="A", quantity=0, backorder_cancelled=1, kept=0,
                      reason="Anvil is discontinued: supplier closed"),
        BackorderCancelled(order_id="o3", sku="A", quantity=2),
        StockReleased(order_id="o3", sku="A", quantity=0, backorder_cancelled=2, kept=0,
                      reason="Anvil is discontinued: supplier closed"),
        # o2's last unit now counts on the purchase order instead of the lead time.
        BackorderEtaChanged(order_id="o2", sku="A", quantity=1, previous_estimated_ship_date=TODAY + timedelta(days=14),
                            estimated_ship_date=date(2026, 12, 1)),
    ]
    assert [(b.order_id, b.quantity) for b in state.backorders] == [("o1", 2), ("o2", 1)]
    assert allocate(state, "o4", 1)[0].reason == "discontinued"


def test_a_longer_lead_time_moves_the_etas_that_rest_on_it():
    state = product(lead_time_days=14)
    allocate(state, "o1", 1)
    events = domain.update_product(state, UpdateProduct(sku="A", lead_time_days=20), TODAY)
    assert events[-1].estimated_ship_date == TODAY + timedelta(days=20)
    assert state.product.name == "Anvil"


def test_a_count_below_what_is_reserved_sends_the_newest_reservations_back_to_the_head_of_the_queue():
    state = product()
    receive(state, 5)
    allocate(state, "old", 2)
    allocate(state, "new", 3)
    allocate(state, "waiting", 1)
    events = domain.adjust_stock(state, AdjustStock(sku="A", counted_quantity=1, reason="shrinkage"), TODAY)
    revoked = [(e.order_id, e.quantity) for e in events if isinstance(e, ReservationRevoked)]
    assert revoked == [("new", 3), ("old", 1)]
    assert [(b.order_id, b.quantity) for b in state.backorders] == [("old", 1), ("new", 3), ("waiting", 1)]
    assert (state.on_hand, state.reserved) == (1, 1)


def test_reservations_sent_back_by_a_count_are_told_their_final_eta_once():
    state = product()
    receive(state, 4)
    allocate(state, "old", 2)
    allocate(state, "new", 2)
    domain.expect_replenishment(state, ExpectReplenishment(po_id="p1", sku="A", quantity=2, expected_on=date(2026, 12, 1)), TODAY)
    events = domain.adjust_stock(state, AdjustStock(sku="A", counted_quantity=0, reason="theft"), TODAY)
    revoked = {e.order_id: e.estimated_ship_date for e in events if isinstance(e, ReservationRevoked)}
    assert revoked == {"old": date(2026, 12, 1), "new": TODAY + timedelta(days=14)}
    assert not [e for e in events if isinstance(e, BackorderEtaChanged) and e.order_id in revoked]


def test_a_count_above_the_books_fills_waiting_backorders():
    state = product()
    allocate(state, "o1", 2)
    events = domain.adjust_stock(state, AdjustStock(sku="A", counted_quantity=3, reason="found a pallet"), TODAY)
    assert BackorderFulfilled(order_id="o1", sku="A", quantity=2, remaining=0) in events
    assert state.available == 1


def test_a_short_delivery_of_a_purchase_order_moves_the_etas_that_counted_on_the_rest():
    state = product()
    domain.expect_replenishment(state, ExpectReplenishment(po_id="p1", sku="A", quantity=5, expected_on=date(2026, 12, 1)), TODAY)
    allocate(state, "o1", 2)
    allocate(state, "o2", 3)
    events = receive(state, 3, po_id="p1")  # 2 short: o1 is filled, o2 gets 1 and waits for the lead time
    assert BackorderFulfilled(order_id="o1", sku="A", quantity=2, remaining=0) in events
    moved = [e for e in events if isinstance(e, BackorderEtaChanged)]
    assert [(e.order_id, e.estimated_ship_date) for e in moved] == [("o2", TODAY + timedelta(days=14))]
    assert state.replenishments == []
