"""The order service's view of each line and inventory's books of it agree, whatever orders of several SKUs,
receipts, counts, purchase orders, cancellations, shipments and days come, each delivered as it is decided."""

from datetime import date, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.commands import (
    AdjustStock,
    CancelOrder,
    CancelReplenishment,
    DiscontinueProduct,
    ExpectReplenishment,
    OrderLine,
    PlaceOrder,
    ReceiveStock,
    RegisterProduct,
    RescheduleReplenishment,
    ShipOrder,
    UpdateProduct,
)
from contracts.events import CancellationRequested, OrderPlaced, OrderShipped
from services.inventory.domain import allocation, products, supply
from services.inventory.domain.state import Sku, apply
from services.order import handlers as order_handlers
from services.order.domain import decisions
from services.order.domain.state import Order, evolve

TODAY = date(2026, 11, 25)
SKUS = ("A", "B")
# What the order service reads of inventory's events.
TO_ORDERS = tuple(t for t, use in order_handlers.USE_CASES.items() if use is order_handlers.record_allocation)

SKU = st.sampled_from(SKUS)
step = st.one_of(
    st.tuples(st.just("place"), st.tuples(st.integers(0, 5), st.integers(0, 5)), st.just(True)),
    st.tuples(st.just("place"), st.tuples(st.integers(0, 5), st.integers(0, 5)), st.booleans()),
    st.tuples(st.just("receive"), SKU, st.integers(1, 8)),
    st.tuples(st.just("receive"), SKU, st.integers(1, 8)),
    st.tuples(st.just("count"), SKU, st.integers(0, 10)),
    st.tuples(st.just("expect"), SKU, st.tuples(st.integers(1, 8), st.integers(0, 20))),
    st.tuples(st.just("cancel"), st.integers(0, 15), st.none() | SKU),  # the n-th order placed (modulo)
    st.tuples(st.just("ship"), st.integers(0, 15), st.none()),
    st.tuples(st.just("ship"), st.integers(0, 15), st.none()),
    st.tuples(st.just("discontinue"), SKU, st.none()),
    st.tuples(st.just("lead_time"), SKU, st.integers(0, 20)),
    st.tuples(st.just("reschedule"), st.integers(0, 40), st.integers(0, 20)),  # the purchase order of step n
    st.tuples(st.just("cancel_po"), st.integers(0, 40), st.none()),
    st.tuples(st.just("review"), st.none(), st.none()),
    st.tuples(st.just("day"), st.integers(0, 10), st.none()),
)
steps = st.lists(step, min_size=10, max_size=40)


class World:
    """Both services' states. Every event is delivered to the other side as soon as it is decided, or, when
    `in_flight`, queued on its partition (by SKU towards orders, by order towards inventory) until `deliver`."""

    placeable = SKUS  # the SKUs a PlaceOrder step's quantities are for, in order

    def __init__(self, in_flight: bool = False) -> None:
        self.in_flight = in_flight
        self.to_orders: dict[str, list] = {sku: [] for sku in SKUS}
        self.to_inventory: dict[str, list] = {}
        self.skus = {sku: Sku(sku=sku) for sku in SKUS}
        self.orders: dict[str, Order] = {}
        self.recorded: dict[str, list] = {}
        self.today = TODAY
        for sku, lead in zip(SKUS, (14, 7)):
            self.inventory(sku, products.register_product(self.skus[sku], RegisterProduct(
                sku=sku, name=sku, lead_time_days=lead), TODAY))

    def order(self, order_id: str, events: list) -> None:
        for event in events:
            self.orders[order_id] = evolve(self.orders.get(order_id), event)
            self.recorded.setdefault(order_id, []).append(event)

    def inventory(self, sku: str, events: list) -> None:
        apply(self.skus[sku], events)
        for event in events:
            if isinstance(event, TO_ORDERS) and event.order_id in self.orders:
                self.to_orders[sku].append(event)
        if not self.in_flight:
            self.deliver_all()

    def to_inventory_of(self, order_id: str, events: list) -> None:
        self.to_inventory.setdefault(order_id, []).extend(
            e for e in events if isinstance(e, (OrderPlaced, CancellationRequested, OrderShipped)))
        if not self.in_flight:
            self.deliver_all()

    def deliver(self, rnd) -> None:
        """The oldest message of a partition picked at random, if any waits."""
        partitions = ([(True, q) for q in self.to_orders.values() if q]
                      + [(False, q) for q in self.to_inventory.values() if q])
        if partitions:
            to_orders, queue = rnd.choice(partitions)
            event = queue.pop(0)
            if to_orders:
                self.order(event.order_id, decisions.record_allocation(self.orders[event.order_id], event))
            else:
                self.decide_for_order(event)

    def deliver_all(self) -> None:
        while True:
            for queue in self.to_orders.values():
                while queue:
                    event = queue.pop(0)
                    self.order(event.order_id, decisions.record_allocation(self.orders[event.order_id], event))
            waiting = [q for q in self.to_inventory.values() if q]
            if not waiting:
                return
            self.decide_for_order(waiting[0].pop(0))

    def decide_for_order(self, event) -> None:
        """What inventory does with an order's event."""
        match event:
            case OrderPlaced():
                for line in event.lines:
                    self.inventory(line.sku, allocation.allocate(self.skus[line.sku], event, line.quantity, self.today))
            case CancellationRequested():
                for sku in event.skus:
                    self.inventory(sku, allocation.cancel(self.skus[sku], event.order_id, self.today))
            case OrderShipped():
                for line in event.lines:
                    self.inventory(line.sku, allocation.ship(self.skus[line.sku], event.order_id, line.quantity,
                                                             self.today))

    def place(self, order_id: str, quantities: tuple[int, ...], allow_backorder: bool) -> None:
        lines = [OrderLine(sku=sku, quantity=q) for sku, q in zip(self.placeable, quantities) if q]
        if not lines:
            return
        placed = decisions.place(None, PlaceOrder(order_id=order_id, customer_id="c", customer_email="c@example.com",
                                                  lines=lines, allow_backorder=allow_backorder))
        self.order(order_id, placed)
        self.to_inventory_of(order_id, placed)

    def cancel(self, order_id: str, sku: str | None) -> None:
        asked = decisions.cancel(self.orders[order_id], CancelOrder(order_id=order_id, sku=sku))
        self.order(order_id, asked)
        self.to_inventory_of(order_id, asked)

    def ship(self, order_id: str, shipment_id: str) -> None:
        shipped = decisions.ship(self.orders[order_id], ShipOrder(order_id=order_id, shipment_id=shipment_id))
        self.order(order_id, shipped)
        self.to_inventory_of(order_id, shipped)

    def check_safe(self) -> None:
        """What holds at every moment, messages in flight or not."""
        for order in self.orders.values():
            for line in order.lines:
                assert min(line.reserved, line.fulfilled, line.backordered, line.shipped, line.cancelled) >= 0, line
                assert line.reserved + line.backordered + line.fulfilled + line.shipped + line.cancelled <= line.quantity
        for state in self.skus.values():
            assert 0 <= state.reserved <= state.on_hand
            assert state.available == 0 or not state.backordered

    def check(self) -> None:
        """What holds once every message is delivered: both sides tell the same of every line."""
        self.check_safe()
        for order_id, order in self.orders.items():
            for line in order.lines:
                state = self.skus[line.sku]
                held = state.reservations.get(order_id)
                waiting = state.backorder(order_id)
                books = (held.held if held else 0, waiting.quantity if waiting else 0)
                assert (line.reserved + line.fulfilled, line.backordered) == books, (order_id, line, books)
                assert line.eta == (waiting.eta if waiting else None), (order_id, line, waiting)
                assert line.reserved >= 0 and line.fulfilled >= 0 and line.backordered >= 0, line
                assert line.rejection or (line.reserved + line.backordered + line.fulfilled + line.shipped
                                          + line.cancelled == line.quantity), line
            assert order.status != "placed" and order.announced in (order.status, "partially_shipped", "shipped") or \
                order.status in ("partially_shipped", "shipped"), order
            rebuilt = None
            for event in self.recorded[order_id]:
                rebuilt = evolve(rebuilt, event)
            assert rebuilt == order


def play(world: World, script: list, rnd) -> None:
    for i, (kind, what, how) in enumerate(script):
        match kind:
            case "place":
                world.place(f"o{i}", what, how)
            case "receive":
                world.inventory(what, allocation.receive_stock(world.skus[what], ReceiveStock(
                    receipt_id=f"r{i}", sku=what, quantity=how), world.today))
            case "count":
                world.inventory(what, allocation.adjust_stock(world.skus[what], AdjustStock(
                    sku=what, counted_quantity=how, reason="count"), world.today))
            case "expect":
                quantity, days = how
                world.inventory(what, supply.expect_replenishment(world.skus[what], ExpectReplenishment(
                    po_id=f"p{i}", sku=what, quantity=quantity, expected_on=TODAY + timedelta(days=days)), world.today))
            case "cancel" if world.orders:
                order = list(world.orders.values())[what % len(world.orders)]
                world.cancel(order.order_id, how if how in {line.sku for line in order.lines} else None)
            case "ship" if world.orders:
                world.ship(list(world.orders)[what % len(world.orders)], f"s{i}")
            case "discontinue":
                world.inventory(what, products.discontinue_product(world.skus[what], DiscontinueProduct(sku=what),
                                                                   world.today))
            case "lead_time":
                world.inventory(what, products.update_product(world.skus[what], UpdateProduct(
                    sku=what, lead_time_days=how), world.today))
            case "reschedule" | "cancel_po":
                for sku, state in world.skus.items():
                    if any(r.po_id == f"p{what}" for r in state.replenishments):
                        change = (supply.cancel_replenishment(state, CancelReplenishment(po_id=f"p{what}", sku=sku),
                                                              world.today) if kind == "cancel_po" else
                                  supply.reschedule_replenishment(state, RescheduleReplenishment(
                                      po_id=f"p{what}", sku=sku, expected_on=TODAY + timedelta(days=how)), world.today))
                        world.inventory(sku, change)
            case "review":
                for state in world.skus.values():
                    overdue = [b.order_id for b in state.head() if b.eta < world.today]
                    world.inventory(state.sku, supply.review_overdue(state, world.today, overdue))
            case "day":
                world.today += timedelta(days=what)
            case "deliver":
                for _ in range(what):
                    world.deliver(rnd)
        if world.in_flight:
            world.check_safe()
        else:
            world.check()
    world.deliver_all()
    world.check()


@settings(max_examples=300, deadline=None)
@given(steps)
def test_the_order_view_of_every_line_is_inventorys_books_of_it(script):
    play(World(), script, rnd=None)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(step, st.tuples(st.just("deliver"), st.integers(1, 6), st.none())),
                min_size=20, max_size=60), st.randoms(use_true_random=False))
def test_with_messages_in_flight_between_the_services_both_end_telling_the_same_of_every_line(script, rnd):
    """Outcomes, cancellations and shipments cross each other on their partitions: a shipment reaches inventory
    after a count revoked what it shipped, a cancellation after a receipt filled what it cancels..."""
    play(World(in_flight=True), script, rnd)
