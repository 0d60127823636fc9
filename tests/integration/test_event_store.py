"""The event store on real PostgreSQL: optimistic concurrency, snapshots, SKU rows, and rebuilt projections."""

import asyncio
from datetime import date, timedelta
from functools import partial

import pytest

from contracts.commands import (
    AdjustStock,
    CancelOrder,
    ExpectReplenishment,
    OrderLine,
    PlaceOrder,
    ReceiveStock,
    RegisterProduct,
)
from contracts.envelope import Envelope
from contracts.commands import ShipOrder
from contracts.events import BackorderCreated, OrderPlaced
from contracts.topics import INVENTORY_COMMANDS, ORDERS_COMMANDS, ORDERS_EVENTS
from services.inventory import handlers as inventory
from services.inventory.app import SERVICE as INVENTORY
from services.order import handlers as orders
from services.order.app import SERVICE as ORDER
from services.order.domain.state import Order, evolve
from services.runtime.eventstore import ConcurrencyError, NewEvent, Streams, append
from tests.integration.helpers import message

TODAY = date(2026, 11, 25)


async def test_two_writers_of_the_same_stream_version_cannot_both_commit(pools):
    pool = await pools("order")
    event = OrderPlaced(order_id="A", customer_id="c", customer_email="c@example.com", lines=[OrderLine(sku="S", quantity=1)])
    cause = Envelope.wrap(event, source="tests")
    first, second = await pool.acquire(), await pool.acquire()
    try:
        tx1, tx2 = first.transaction(), second.transaction()
        await tx1.start()
        await tx2.start()
        writers = []
        for conn in (first, second):  # both read the stream before either writes
            streams: Streams[Order] = Streams(conn, Order)
            await streams.load(["A"])
            streams.record("A", evolve(None, event), [event], cause)
            writers.append(streams)
        await writers[0].save()
        await tx1.commit()
        with pytest.raises(ConcurrencyError):
            await writers[1].save()
        await tx2.rollback()
    finally:
        await pool.release(first)
        await pool.release(second)
    assert await pool.fetchval("SELECT count(*) FROM events") == 1


async def run(pool, handle, messages):
    async with pool.acquire() as conn, conn.transaction():
        await handle(conn, messages)


async def test_rebuilt_projections_equal_the_live_ones(pools):
    inventory_pool, order_pool = await pools("inventory"), await pools("order")
    commands = [
        RegisterProduct(sku="A", name="Anvil", lead_time_days=10),
        RegisterProduct(sku="B", name="Bell", lead_time_days=3, backorderable=False),
        ReceiveStock(receipt_id="r1", sku="A", quantity=5),
        ExpectReplenishment(po_id="p1", sku="A", quantity=4, expected_on=date(2026, 12, 1)),
    ]
    await run(inventory_pool, lambda c, m: inventory.handle(c, m, TODAY),
              [message(INVENTORY_COMMANDS, c) for c in commands])
    placed = [
        PlaceOrder(order_id=f"o{i}", customer_id="c", customer_email="c@example.com",
                   lines=[OrderLine(sku="A", quantity=3), OrderLine(sku="B", quantity=1)])
        for i in range(4)
    ]
    order_handle = partial(orders.handle, goodwill_percent=10)
    inventory_handle = partial(inventory.handle, today=TODAY)
    forwarded = {"order": 0, "inventory": 0}

    async def forward(source, target, target_pool, target_handle, topic, parse):
        """Hand what one service appended since last time to the other, as the relay and Kafka would,
        keeping to the types the other reads."""
        reads = next(sub.models for sub in target.subscriptions if sub.topic == topic)
        rows = await (await pools(source)).fetch(
            "SELECT position, type, data::text FROM events WHERE position > $1 ORDER BY position", forwarded[source])
        if rows:
            forwarded[source] = rows[-1]["position"]
            wanted = [message(topic, parse(r["type"], r["data"])) for r in rows if r["type"] in reads]
            if wanted:
                await run(target_pool, target_handle, wanted)

    async def settle_between_services():
        for _ in range(3):
            await forward("order", INVENTORY, inventory_pool, inventory_handle, ORDERS_EVENTS, orders.parse_event)
            await forward("inventory", ORDER, order_pool, order_handle, "inventory.events", inventory.parse_event)

    await run(order_pool, order_handle, [message(ORDERS_COMMANDS, p) for p in placed])
    await settle_between_services()
    await run(inventory_pool, inventory_handle,
              [message(INVENTORY_COMMANDS, ReceiveStock(receipt_id="r2", sku="A", quantity=4))])
    await run(order_pool, order_handle, [message(ORDERS_COMMANDS, CancelOrder(order_id="o3", reason="no")),
                                         message(ORDERS_COMMANDS, ShipOrder(order_id="o0", shipment_id="s1"))])
    await settle_between_services()
    await run(inventory_pool, inventory_handle,
              [message(INVENTORY_COMMANDS, AdjustStock(sku="A", counted_quantity=4, reason="count"))])
    await settle_between_services()

    live_inventory = await inventory_pool.fetch("SELECT sku, name, status, on_hand, reserved, available, backordered, "
                                                "backorder_eta FROM availability ORDER BY sku")
    live_orders = await order_pool.fetch("SELECT * FROM order_lines ORDER BY order_id, sku")
    live_status = await order_pool.fetch("SELECT order_id, status FROM orders ORDER BY order_id")
    assert {r["status"] for r in live_status} == {"backordered", "cancelled", "ready_to_ship", "shipped"}
    assert any(r["rejection_reason"] == "not_backorderable" for r in live_orders)
    assert await inventory_pool.fetchval("SELECT count(*) FROM events WHERE type = 'ReservationRevoked'") > 0
    assert await inventory_pool.fetchval("SELECT count(*) FROM events WHERE type = 'StockShipped'") == 1
    sku_rows = {table: await inventory_pool.fetch(f"SELECT * FROM {table} ORDER BY 1, 2")
                for table in ("skus", "backorders", "reservations", "replenishments")}

    async with inventory_pool.acquire() as conn:
        await inventory.rebuild(conn, TODAY)  # the SKU rows, folded again from the events
    async with order_pool.acquire() as conn:
        await orders.rebuild(conn)

    assert await inventory_pool.fetch("SELECT sku, name, status, on_hand, reserved, available, backordered, "
                                      "backorder_eta FROM availability ORDER BY sku") == live_inventory
    assert await order_pool.fetch("SELECT * FROM order_lines ORDER BY order_id, sku") == live_orders
    assert await order_pool.fetch("SELECT order_id, status FROM orders ORDER BY order_id") == live_status
    assert {table: await inventory_pool.fetch(f"SELECT * FROM {table} ORDER BY 1, 2") for table in sku_rows} == sku_rows


async def test_goodwill_review_offers_a_discount_once_to_orders_that_waited_long(pools):
    pool = await pools("order")
    handle = partial(orders.handle, goodwill_percent=10)
    for order_id, waited in (("long", 20), ("short", 3)):
        placed = PlaceOrder(order_id=order_id, customer_id="c", customer_email="c@example.com",
                            lines=[OrderLine(sku="A", quantity=1)])
        await run(pool, handle, [message(ORDERS_COMMANDS, placed)])
        since = TODAY - timedelta(days=waited)
        await run(pool, handle, [message("inventory.events", BackorderCreated(
            order_id=order_id, sku="A", quantity=1, estimated_ship_date=TODAY, backordered_on=since))])

    async with pool.acquire() as conn, conn.transaction():
        assert await orders.offer_goodwill_for_long_waits(conn, TODAY, wait_days=14, percent=15) == 1
    async with pool.acquire() as conn, conn.transaction():
        assert await orders.offer_goodwill_for_long_waits(conn, TODAY, wait_days=14, percent=15) == 0

    offered = await pool.fetch("SELECT stream_id, data FROM events WHERE type = 'DiscountOffered'")
    assert [r["stream_id"] for r in offered] == ["long"]
    assert '"cause": "long_wait"' in offered[0]["data"] and '"percent": 15' in offered[0]["data"]


async def test_an_append_waits_for_an_earlier_one_to_commit_so_positions_appear_in_commit_order(pools):
    """The relay reads past its cursor: a row given a lower position that committed later would be skipped."""
    pool = await pools("order")
    first, second = await pool.acquire(), await pool.acquire()
    try:
        earlier = first.transaction()
        await earlier.start()
        await append(first, [placed("A")])
        later = asyncio.create_task(_append_in_transaction(second, placed("B")))
        waiting = "SELECT wait_event FROM pg_stat_activity WHERE pid = $1"
        second_pid = second.get_server_pid()
        for _ in range(100):  # until the second insert waits on the append lock
            if await pool.fetchval(waiting, second_pid) == "advisory":
                break
            await asyncio.sleep(0.05)
        assert await pool.fetchval(waiting, second_pid) == "advisory"
        assert not later.done()
        await earlier.commit()
        await later
    finally:
        await pool.release(first)
        await pool.release(second)
    assert [r["stream_id"] for r in await pool.fetch("SELECT stream_id FROM events ORDER BY position")] == ["A", "B"]


def placed(order_id: str) -> NewEvent:
    event = OrderPlaced(order_id=order_id, customer_id="c", customer_email="c@example.com",
                        lines=[OrderLine(sku="S", quantity=1)])
    return NewEvent(order_id, 1, event, order_id, order_id)


async def _append_in_transaction(conn, event: NewEvent) -> None:
    async with conn.transaction():
        await append(conn, [event])
