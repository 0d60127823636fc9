"""Races between the order's view and inventory's: a refused cancellation answered once, a count crossing a
shipment, a refusal crossing a cancellation, a partial cancellation that changes the status."""

from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from itertools import combinations_with_replacement

import pytest

from contracts.commands import (
    AdjustStock,
    CancelOrder,
    DiscontinueProduct,
    ExpectReplenishment,
    OrderLine,
    ReceiveStock,
    RegisterProduct,
    ShipOrder,
)
from contracts.events import (
    BackorderCreated,
    BackorderEtaChanged,
    BackorderFulfilled,
    CancellationRefused,
    OrderCancelled,
    OrderBackordered,
    OrderConfirmed,
    OrderReadyToShip,
    OrderPlaced,
    OrderRejected,
    OrderShipped,
    OrderStatusChanged,
    OutOfStock,
    ReservationRevoked,
    StockReleased,
    StockReserved,
    StockShipped,
)
from services.inventory.domain import allocation, products, supply
from services.inventory.domain.state import Sku, apply
from services.order.domain import decisions
from services.order.domain.state import evolve
from tests.unit.test_order_domain import Script

DAY = date(2026, 11, 25)


def test_a_refused_cancellation_is_answered_once_not_again_on_every_later_outcome():
    s = Script(("A", 1, Decimal("5.00")), ("B", 1, Decimal("5.00")))
    s.inventory(BackorderCreated(order_id="o1", sku="A", quantity=1, estimated_ship_date=DAY, backordered_on=DAY))
    s.inventory(BackorderCreated(order_id="o1", sku="B", quantity=1, estimated_ship_date=DAY, backordered_on=DAY))
    s(decisions.cancel, CancelOrder(order_id="o1", sku="A"))
    # The receipt wins the race with the cancellation: inventory keeps the filled unit.
    s.inventory(BackorderFulfilled(order_id="o1", sku="A", quantity=1, remaining=0))
    first = s.inventory(StockReleased(order_id="o1", sku="A", quantity=0, backorder_cancelled=0, kept=1))
    assert [type(e) for e in first if isinstance(e, CancellationRefused)] == [CancellationRefused]
    # Later, unrelated: B is filled. The request was answered already.
    later = s.inventory(BackorderFulfilled(order_id="o1", sku="B", quantity=1, remaining=0))
    assert not [e for e in later if isinstance(e, CancellationRefused)], later
    assert s.order.being_cancelled == {} and s.order.cancel_reason is None


def test_a_store_cancellation_after_a_refused_request_does_not_carry_the_customers_old_reason():
    s = Script(("A", 1, Decimal("5.00")), ("B", 2, Decimal("5.00")))
    s.inventory(BackorderCreated(order_id="o1", sku="A", quantity=1, estimated_ship_date=DAY, backordered_on=DAY))
    s.inventory(BackorderCreated(order_id="o1", sku="B", quantity=2, estimated_ship_date=DAY, backordered_on=DAY))
    s(decisions.cancel, CancelOrder(order_id="o1", sku="A", reason="changed my mind"))
    s.inventory(BackorderFulfilled(order_id="o1", sku="A", quantity=1, remaining=0))
    s.inventory(StockReleased(order_id="o1", sku="A", quantity=0, backorder_cancelled=0, kept=1))
    # Days later the store discontinues B on its own.
    events = s.inventory(StockReleased(order_id="o1", sku="B", quantity=0, backorder_cancelled=2, kept=0,
                                       reason="B is discontinued", requested=False))
    cancelled = [e for e in events if isinstance(e, OrderCancelled)]
    assert len(cancelled) == 1 and cancelled[0].reason == "B is discontinued", cancelled


def _inventory(on_hand: int) -> Sku:
    state = Sku(sku="A")
    apply(state, products.register_product(state, RegisterProduct(sku="A", name="Anvil", lead_time_days=5), DAY))
    apply(state, allocation.receive_stock(state, ReceiveStock(receipt_id="r0", sku="A", quantity=on_hand), DAY))
    return state


def test_shipping_reserved_units_that_a_count_revoked_and_a_receipt_refilled_keeps_the_line_consistent():
    """The order ships what it saw reserved; meanwhile inventory's count revoked it and a receipt filled it again
    (so inventory ships it from the fill). The order must not end with negative backordered units."""
    inv = _inventory(2)
    s = Script(("A", 2, Decimal("5.00")))
    placed = s.events[0]
    to_order = apply(inv, allocation.allocate(inv, placed, 2, DAY))             # StockReserved 2
    s.inventory(to_order[0])
    shipped = s(decisions.ship, ShipOrder(order_id="o1", shipment_id="sh1"))  # warehouse ships the 2 reserved
    assert isinstance(shipped[0], OrderShipped)
    # Inventory, before the OrderShipped reaches it: a count finds 0, then a receipt of 2 arrives.
    revoked = apply(inv, allocation.adjust_stock(inv, AdjustStock(sku="A", counted_quantity=0, reason="count"), DAY))
    filled = apply(inv, allocation.receive_stock(inv, ReceiveStock(receipt_id="r1", sku="A", quantity=2), DAY))
    apply(inv, allocation.ship(inv, "o1", 2, DAY))                              # the OrderShipped arrives
    for event in revoked + filled:
        if isinstance(event, (ReservationRevoked, BackorderFulfilled)):
            s.inventory(event)
    line = s.order.line("A")
    assert (line.backordered, line.fulfilled, line.shipped) == (0, 0, 2), line
    assert s.order.status == "shipped"


def test_units_the_order_shipped_are_not_also_cancelled_and_refunded_by_a_discontinue():
    """Same race on a discontinued product: the revoked units no purchase order covers are cancelled by the
    store, while the order had already shipped them. Inventory ships nothing (they are gone from its books);
    the order records them shipped AND cancelled, refunds them, and shows -2 backordered."""
    inv = _inventory(2)
    s = Script(("A", 2, Decimal("5.00")))
    s.inventory(apply(inv, allocation.allocate(inv, s.events[0], 2, DAY))[0])
    s(decisions.ship, ShipOrder(order_id="o1", shipment_id="sh1"))
    apply(inv, products.discontinue_product(inv, DiscontinueProduct(sku="A"), DAY))
    revoked = apply(inv, allocation.adjust_stock(inv, AdjustStock(sku="A", counted_quantity=0, reason="count"), DAY))
    assert apply(inv, allocation.ship(inv, "o1", 2, DAY)) == []                 # inventory ships nothing
    for event in revoked:
        if isinstance(event, (ReservationRevoked, StockReleased)):
            s.inventory(event)
    line = s.order.line("A")
    assert line.backordered >= 0 and line.shipped + line.cancelled <= line.quantity, line
    assert s.order.refunded == 0 or line.shipped == 0


def test_an_order_refused_while_its_cancellation_was_under_way_is_told_rejected_with_the_reason():
    """CancelOrder crosses the OutOfStock of the order's only line: the order ends `rejected`, but no OrderRejected
    is ever emitted; the answer is an OrderCancelled(lines=[], whole_order=False) naming no refused line, so the
    customer is mailed 'closed' without the reason."""
    s = Script(("A", 1, Decimal("5.00")))
    s(decisions.cancel, CancelOrder(order_id="o1"))
    s.inventory(OutOfStock(order_id="o1", sku="A", quantity=1, reason="unknown_sku", message="A is not sold here"))
    s.inventory(StockReleased(order_id="o1", sku="A", quantity=0, backorder_cancelled=0, kept=0))
    assert s.order.status == "rejected"
    told = [e for e in s.events if isinstance(e, (OrderRejected, OrderCancelled))]
    assert any(isinstance(e, OrderRejected) for e in told) or any(e.rejected_lines for e in told), told


def test_a_line_refused_while_its_cancellation_was_under_way_and_the_rest_shipped_is_named_by_a_status():
    """Found by test_refusals_told_once: B's cancellation crosses its refusal and A ships meanwhile. The
    cancellation held the status back, the shipment (which names no refused line) took its place, and no status
    event ever named B: the customer never learnt it was refused."""
    s = Script(("A", 1, Decimal("5.00")), ("B", 1, Decimal("5.00")))
    s(decisions.cancel, CancelOrder(order_id="o1", sku="B"))
    s.inventory(OutOfStock(order_id="o1", sku="B", quantity=1, reason="unknown_sku", message="B is not sold here"))
    s.inventory(StockReserved(order_id="o1", sku="A", quantity=1))
    s(decisions.ship, ShipOrder(order_id="o1", shipment_id="sh1"))
    answered = s.inventory(StockReleased(order_id="o1", sku="B", quantity=0, backorder_cancelled=0, kept=0))

    [status] = [e for e in answered if isinstance(e, OrderStatusChanged)]
    assert status.status == "shipped" and [line.sku for line in status.rejected_lines] == ["B"], answered
    assert s.order.announced == "shipped" and s.rebuilt() == s.order


def test_a_whole_cancellation_that_closes_an_order_with_a_refused_line_names_the_refused_line():
    s = Script(("A", 1, Decimal("5.00")), ("B", 1, Decimal("5.00")))
    s.inventory(StockReserved(order_id="o1", sku="A", quantity=1))
    s(decisions.cancel, CancelOrder(order_id="o1"))
    s.inventory(StockReleased(order_id="o1", sku="A", quantity=1, backorder_cancelled=0, kept=0))
    s.inventory(OutOfStock(order_id="o1", sku="B", quantity=1, reason="unknown_sku", message="B is not sold here"))
    events = s.inventory(StockReleased(order_id="o1", sku="B", quantity=0, backorder_cancelled=0, kept=0))
    cancelled = [e for e in events if isinstance(e, OrderCancelled)]
    assert s.order.status == "cancelled" and len(cancelled) == 1
    # B's refusal reason is told nowhere else (no OrderConfirmed/OrderBackordered was ever emitted).
    assert [r.sku for r in cancelled[0].rejected_lines] == ["B"], cancelled


def test_a_partial_cancellation_that_changes_the_status_tells_the_new_status():
    """Backordered A + reserved B; cancelling A makes the order `confirmed`, but only a partial OrderCancelled
    is emitted (evolve takes it as having announced the status): no OrderConfirmed ever reaches a storefront
    or warehouse that follows the status events. Same for ready_to_ship."""
    s = Script(("A", 2, Decimal("5.00")), ("B", 1, Decimal("5.00")))
    s.inventory(BackorderCreated(order_id="o1", sku="A", quantity=2, estimated_ship_date=DAY, backordered_on=DAY))
    s.inventory(StockReserved(order_id="o1", sku="B", quantity=1))
    s(decisions.cancel, CancelOrder(order_id="o1", sku="A"))
    events = s.inventory(StockReleased(order_id="o1", sku="A", quantity=0, backorder_cancelled=2, kept=0))
    assert s.order.status == "confirmed"
    assert any(isinstance(e, OrderConfirmed) for e in events), events


def test_the_eta_carried_by_a_revocation_the_order_ignores_is_not_lost():
    """The order ships its reserved unit while a count revokes it at inventory; the revoked unit joins the order's
    waiting one behind another revoked order, which moves the ETA of what still waits to the lead time. The order
    drops the whole ReservationRevoked (nothing of it is still held) and with it the new ETA: it keeps telling the
    purchase order's date, which no longer covers it."""
    inv = _inventory(2)
    apply(inv, supply.expect_replenishment(inv, ExpectReplenishment(po_id="p1", sku="A", quantity=1,
                                                                    expected_on=date(2026, 11, 28)), DAY))
    other = OrderPlaced(order_id="x", customer_id="c", customer_email="c@example.com",
                        lines=[OrderLine(sku="A", quantity=1)])
    apply(inv, allocation.allocate(inv, other, 1, DAY))
    s = Script(("A", 2, Decimal("5.00")))
    for event in apply(inv, allocation.allocate(inv, s.events[0], 2, DAY)):   # 1 reserved, 1 waits (PO date)
        s.inventory(event)
    assert s.order.line("A").eta == date(2026, 11, 28)
    s(decisions.ship, ShipOrder(order_id="o1", shipment_id="sh1"))             # ships the reserved unit
    revoked = apply(inv, allocation.adjust_stock(inv, AdjustStock(sku="A", counted_quantity=0, reason="count"), DAY))
    shipped = apply(inv, allocation.ship(inv, "o1", 1, DAY))
    for event in revoked + shipped:
        if getattr(event, "order_id", None) == "o1" and not isinstance(event, StockShipped):
            s.inventory(event)
    assert s.order.line("A").backordered == inv.backorder("o1").quantity == 1
    assert s.order.line("A").eta == inv.backorder("o1").eta, (s.order.line("A").eta, inv.backorder("o1").eta)


def test_a_count_crossing_a_shipment_and_a_refill_leaves_order_and_inventory_agreeing():
    """Line of 2: 1 reserved, 1 backordered. The warehouse ships the reserved unit; before inventory sees the
    shipment, a count finds 0 (the order waits for 2 there) and a receipt of 1 fills it once. Inventory ships
    from what it holds; its StockShipped tells the order what is left, and the order adopts it."""
    inv = _inventory(1)
    s = Script(("A", 2, Decimal("5.00")))
    for event in apply(inv, allocation.allocate(inv, s.events[0], 2, DAY)):   # 1 reserved, 1 backordered
        s.inventory(event)
    s(decisions.ship, ShipOrder(order_id="o1", shipment_id="sh1"))             # ships the reserved unit
    revoked = apply(inv, allocation.adjust_stock(inv, AdjustStock(sku="A", counted_quantity=0, reason="count"), DAY))
    filled = apply(inv, allocation.receive_stock(inv, ReceiveStock(receipt_id="r1", sku="A", quantity=1), DAY))
    shipped = apply(inv, allocation.ship(inv, "o1", 1, DAY))               # the shipment reaches inventory
    for event in revoked + filled + shipped:
        if getattr(event, "order_id", None) == "o1":
            s.inventory(event)
    line = s.order.line("A")
    waiting = inv.backorder("o1").quantity if inv.backorder("o1") else 0
    held = inv.reservations["o1"].held if "o1" in inv.reservations else 0
    assert (line.backordered, line.reserved + line.fulfilled, line.shipped) == (waiting, held, 1)
    rebuilt = None
    for event in s.events:
        rebuilt = evolve(rebuilt, event)
    assert s.order.status == "backordered" and rebuilt == s.order


def test_units_a_count_sent_back_after_the_order_saw_them_filled_wait_with_their_eta_once_the_shipment_reconciles():
    """Line of 4, all backordered; 1 is filled and shipped. Before inventory sees the shipment, a count revokes the
    filled unit (the order drops it: shipped) and a receipt fills the 3 that wait. Inventory ships 1 of the 3 it
    holds: 1 waits again. The order adopts that from StockShipped, and must show when it ships."""
    inv = Sku(sku="A")
    apply(inv, products.register_product(inv, RegisterProduct(sku="A", name="Anvil", lead_time_days=5), DAY))
    s = Script(("A", 4, Decimal("5.00")))
    for event in apply(inv, allocation.allocate(inv, s.events[0], 4, DAY)):
        s.inventory(event)
    for event in apply(inv, allocation.receive_stock(inv, ReceiveStock(receipt_id="r1", sku="A", quantity=1), DAY)):
        if getattr(event, "order_id", None) == "o1":
            s.inventory(event)
    shipped = s(decisions.ship, ShipOrder(order_id="o1", shipment_id="sh1"))
    assert shipped[0].lines[0].quantity == 1
    revoked = apply(inv, allocation.adjust_stock(inv, AdjustStock(sku="A", counted_quantity=0, reason="count"), DAY))
    filled = apply(inv, allocation.receive_stock(inv, ReceiveStock(receipt_id="r2", sku="A", quantity=3), DAY))
    told = apply(inv, allocation.ship(inv, "o1", 1, DAY))
    for event in revoked + filled + told:
        if getattr(event, "order_id", None) == "o1":
            s.inventory(event)
    line, waiting = s.order.line("A"), inv.backorder("o1")
    assert (line.fulfilled, line.backordered) == (inv.reservations["o1"].held, waiting.quantity) == (2, 1)
    assert line.eta == waiting.eta, line
    assert s.order.status == "backordered"
    told = [e for e in s.events if isinstance(e, OrderBackordered)][-1]
    assert [(l.sku, l.quantity, l.estimated_ship_date) for l in told.backordered_lines] == [("A", 1, waiting.eta)]


# What inventory tells of one line of 2 units, in the order it tells it, and where the line ends.
LINE_OUTCOMES = {
    "reserved": ([StockReserved(order_id="o1", sku="{sku}", quantity=2)], "holds"),
    "backordered": ([BackorderCreated(order_id="o1", sku="{sku}", quantity=2, estimated_ship_date=DAY,
                                      backordered_on=DAY)], "waits"),
    "split": ([StockReserved(order_id="o1", sku="{sku}", quantity=1),
               BackorderCreated(order_id="o1", sku="{sku}", quantity=1, estimated_ship_date=DAY, backordered_on=DAY)],
              "waits"),
    "filled": ([BackorderCreated(order_id="o1", sku="{sku}", quantity=2, estimated_ship_date=DAY, backordered_on=DAY),
                BackorderFulfilled(order_id="o1", sku="{sku}", quantity=2, remaining=0)], "filled"),
    "unknown": ([OutOfStock(order_id="o1", sku="{sku}", quantity=2, reason="unknown_sku", message="not sold")],
                "rejected"),
    "discontinued": ([OutOfStock(order_id="o1", sku="{sku}", quantity=2, reason="discontinued", message="gone")],
                     "rejected"),
    "eta_moved": ([BackorderCreated(order_id="o1", sku="{sku}", quantity=2, estimated_ship_date=DAY, backordered_on=DAY),
                   BackorderEtaChanged(order_id="o1", sku="{sku}", quantity=2, previous_estimated_ship_date=DAY,
                                       estimated_ship_date=date(2026, 12, 9))], "waits"),
    # Reserved, then a count found less: the units go back to the queue, and may be filled again.
    "revoked": ([StockReserved(order_id="o1", sku="{sku}", quantity=2),
                 ReservationRevoked(order_id="o1", sku="{sku}", quantity=2, estimated_ship_date=DAY, revoked_on=DAY,
                                    waiting=2)], "waits"),
    "revoked_refilled": ([StockReserved(order_id="o1", sku="{sku}", quantity=2),
                          ReservationRevoked(order_id="o1", sku="{sku}", quantity=2, estimated_ship_date=DAY,
                                             revoked_on=DAY, waiting=2),
                          BackorderFulfilled(order_id="o1", sku="{sku}", quantity=2, remaining=0)], "filled"),
    # Backordered, then discontinued with nothing expected to fill it: the store cancels it.
    "store_cancelled": ([BackorderCreated(order_id="o1", sku="{sku}", quantity=2, estimated_ship_date=DAY,
                                          backordered_on=DAY),
                         StockReleased(order_id="o1", sku="{sku}", quantity=0, backorder_cancelled=2, kept=0,
                                       reason="{sku} is discontinued", requested=False)], "cancelled"),
}


def _told(sku: str, kind: str) -> list:
    events, _ = LINE_OUTCOMES[kind]
    return [e.model_copy(update={k: v.replace("{sku}", sku) for k, v in e.model_dump().items()
                                 if isinstance(v, str) and "{sku}" in v}) for e in events]


def _interleavings(queues: list[list]) -> Iterator[list]:
    """Every merge of the queues that keeps each queue's own order (one partition per SKU)."""
    if not any(queues):
        yield []
        return
    for i, queue in enumerate(queues):
        if queue:
            for rest in _interleavings(queues[:i] + [queue[1:]] + queues[i + 1:]):
                yield [queue[0]] + rest


STATUS_EVENTS = {"backordered": "OrderBackordered", "cancelled": "OrderCancelled", "rejected": "OrderRejected",
                 "ready_to_ship": "OrderReadyToShip", "confirmed": "OrderConfirmed"}


def _expected_status(ends: list[str]) -> str:
    if "waits" in ends:
        return "backordered"
    if all(end in ("rejected", "cancelled") for end in ends):
        return "cancelled" if "cancelled" in ends else "rejected"
    return "ready_to_ship" if "filled" in ends else "confirmed"


@pytest.mark.parametrize("kinds", list(combinations_with_replacement(sorted(LINE_OUTCOMES), 3)) +
                         list(combinations_with_replacement(sorted(LINE_OUTCOMES), 2)), ids=str)
def test_an_order_of_several_skus_ends_in_the_same_right_status_whichever_order_their_outcomes_arrive_in(kinds):
    skus = [f"S{i}" for i in range(len(kinds))]
    expected = _expected_status([LINE_OUTCOMES[kind][1] for kind in kinds])
    refused = {sku for sku, kind in zip(skus, kinds) if LINE_OUTCOMES[kind][1] == "rejected"}
    for arrival in _interleavings([_told(sku, kind) for sku, kind in zip(skus, kinds)]):
        s = Script(*[(sku, 2, Decimal("5.00")) for sku in skus])
        for event in arrival:
            s.inventory(event)
        assert s.order.status == s.order.announced == expected, (arrival, s.order)
        told = [e for e in s.events if isinstance(e, (OrderConfirmed, OrderBackordered, OrderReadyToShip, OrderRejected))
                or isinstance(e, OrderCancelled) and e.whole_order]
        # The status is told when every line is decided, naming the refused lines; an order whose lines all
        # ended where inventory first put them hears it once.
        assert type(told[-1]).__name__ == STATUS_EVENTS[expected], (told, arrival)
        named = told[-1].lines if isinstance(told[-1], OrderRejected) else told[-1].rejected_lines
        assert {line.sku for line in named} == refused, (told, arrival)
        if not {"filled", "store_cancelled", "revoked", "revoked_refilled"} & set(kinds):
            assert len(told) == 1, (told, arrival)
        assert s.rebuilt() == s.order
