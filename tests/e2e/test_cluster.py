"""Under load, on a 3-node Apache Kafka cluster: a broker killed and restarted, an inventory instance leaving
and rejoining its group. Every order gets exactly one outcome; nothing is lost, nothing doubled as consumers
see it (one event per CloudEvents id), no SKU over-allocated."""

import asyncio
import random
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from contracts import topics
from contracts.commands import OrderLine, PlaceOrder, ReceiveStock, RegisterProduct
from contracts.topics import INVENTORY_COMMANDS, INVENTORY_EVENTS, NOTIFICATIONS_EVENTS, ORDERS_COMMANDS, ORDERS_EVENTS
from infra import kafka
from infra.topics import create_topics
from tests.conftest import free_port
from tests.e2e.conftest import instances_of
from tests.support import Bus, Record, eventually, unique

STATUS = {"OrderConfirmed", "OrderBackordered", "OrderRejected"}
ALLOCATION = {"StockReserved", "BackorderCreated"}
ORDERS_PER_SECOND = 25


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    cluster = kafka.start_apache_kafka_cluster(tmp_path_factory.mktemp("kafka-cluster"),
                                               ports=[free_port(also=(1,)) for _ in range(3)])
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
async def bus(cluster):
    await create_topics(cluster.bootstrap_servers)
    bus = await Bus(cluster.bootstrap_servers).start()
    yield bus
    await bus.stop()


async def test_topics_on_three_brokers_are_replicated_three_times_and_acknowledged_on_two(cluster, bus):
    admin = AIOKafkaAdminClient(bootstrap_servers=cluster.bootstrap_servers)
    await admin.start()
    try:
        for topic in (ORDERS_EVENTS, topics.dead_letter(ORDERS_EVENTS)):
            [described] = await admin.describe_topics([topic])
            assert {len(p["replicas"]) for p in described["partitions"]} == {3}, described
        [configs] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, ORDERS_EVENTS)])
        values = {name: value for name, value, *_ in configs.resources[0][4]}
        assert values["min.insync.replicas"] == "2"
        assert (values["retention.ms"], values["segment.ms"]) == ("604800000", "86400000")
    finally:
        await admin.close()


async def test_a_broker_killed_and_restarted_mid_load_loses_and_doubles_nothing(cluster, bus, database_factory,
                                                                               tmp_path):
    async with instances_of(cluster.bootstrap_servers, database_factory(), tmp_path,
                            ["order", "inventory", "notification"]) as running:
        skus = await products(bus, count=4, stock=40)
        orders = await place_orders(bus, skus, 250, disruptions={
            2.5: lambda: asyncio.to_thread(cluster.kill, 1),
            5.0: lambda: asyncio.to_thread(cluster.restart, 1),
        })
        await every_order_has_its_outcome(bus, orders, timeout=180)
        await eventually(lambda: mails_one_per_order(running.mail, orders), timeout=60)
    assert_nothing_doubled(bus, orders)
    assert_not_over_allocated(bus, skus, stock=40)


async def test_an_inventory_instance_leaving_and_rejoining_mid_load_over_allocates_nothing(cluster, bus,
                                                                                         database_factory, tmp_path):
    async with instances_of(cluster.bootstrap_servers, database_factory(), tmp_path,
                            ["order", "inventory", "inventory-2", "inventory-3", "notification"]) as running:
        skus = await products(bus, count=3, stock=30)
        orders = await place_orders(bus, skus, 250, disruptions={
            2.5: lambda: asyncio.to_thread(running.stop, "inventory-2"),
            5.0: lambda: asyncio.to_thread(running.start, "inventory-2"),
        })
        await every_order_has_its_outcome(bus, orders, timeout=180)
        for sku in skus:
            availability = (await running.get("inventory", f"/availability/{sku}")).json()
            reserved = sum(r.data["quantity"] for r in unique_events(bus, INVENTORY_EVENTS, "StockReserved", sku=sku))
            assert availability["reserved"] == reserved <= availability["on_hand"] == 30, availability
        handled = [await placed_orders_handled(running, name) for name in ("inventory", "inventory-2", "inventory-3")]
        assert sum(n > 0 for n in handled) >= 2, f"the group did not share the work: {handled}"
    assert_nothing_doubled(bus, orders)
    assert_not_over_allocated(bus, skus, stock=30)


async def products(bus: Bus, count: int, stock: int) -> list[str]:
    skus = [unique("sku") for _ in range(count)]
    for sku in skus:
        await bus.send(INVENTORY_COMMANDS, RegisterProduct(sku=sku, name="Widget", lead_time_days=7), sku)
        await bus.send(INVENTORY_COMMANDS, ReceiveStock(receipt_id=unique("r"), sku=sku, quantity=stock), sku)
    for sku in skus:
        await bus.wait_for(INVENTORY_EVENTS, "StockReceived", sku=sku, timeout=60)
    return skus


async def place_orders(bus: Bus, skus: list[str], count: int,
                       disruptions: dict[float, Callable[[], Awaitable]]) -> dict[str, int]:
    """`count` orders of 1 or 2 units of one of `skus`, at ORDERS_PER_SECOND, each send on its own so that a
    partition whose leader is gone holds up only its own; `disruptions` run at their second into the load.
    Returns the quantity ordered by order id."""
    orders = {unique("ord"): random.choice((1, 2)) for _ in range(count)}
    started = time.monotonic()
    due = sorted(disruptions.items())
    running, sends = [], []
    for i, (order_id, quantity) in enumerate(orders.items()):
        while due and time.monotonic() - started >= due[0][0]:
            running.append(asyncio.create_task(due.pop(0)[1]()))
        await asyncio.sleep(max(0.0, started + i / ORDERS_PER_SECOND - time.monotonic()))
        line = OrderLine(sku=random.choice(skus), quantity=quantity)
        sends.append(asyncio.create_task(bus.send(ORDERS_COMMANDS, PlaceOrder(
            order_id=order_id, customer_id="c", customer_email=f"{order_id}@example.com", lines=[line]), order_id)))
    running += [asyncio.create_task(action()) for _, action in due]
    await asyncio.gather(*sends, *running)
    return orders


def unique_events(bus: Bus, topic: str, type_: str, **data) -> list[Record]:
    """The events as a consumer sees them: a record sent again with the same CloudEvents id is one event."""
    return list({r.envelope["id"]: r for r in bus.events(topic, type_, **data)}.values())


def per_order(bus: Bus, topic: str, types: set[str], orders: dict[str, int]) -> dict[str, list[Record]]:
    found = defaultdict(list)
    for type_ in types:
        for record in unique_events(bus, topic, type_):
            if record.data.get("order_id") in orders:
                found[record.data["order_id"]].append(record)
    return found


async def every_order_has_its_outcome(bus: Bus, orders: dict[str, int], timeout: float) -> None:
    def all_told() -> None:
        status = per_order(bus, ORDERS_EVENTS, STATUS, orders)
        told = per_order(bus, NOTIFICATIONS_EVENTS, {"NotificationSent"}, orders)
        missing = [o for o in orders if o not in status or o not in told]
        assert not missing, f"{len(missing)} of {len(orders)} orders without a status or its notification"

    await eventually(all_told, timeout=timeout)


def mails_one_per_order(mail, orders: dict[str, int]) -> None:
    received = Counter(m["To"] for m in mail.mails())
    assert {o: received[f"{o}@example.com"] for o in orders} == dict.fromkeys(orders, 1)


def assert_nothing_doubled(bus: Bus, orders: dict[str, int]) -> None:
    """Each order placed once, one status, its units allocated once (reserved plus backordered, as ordered),
    one notification."""
    placed = per_order(bus, ORDERS_EVENTS, {"OrderPlaced"}, orders)
    status = per_order(bus, ORDERS_EVENTS, STATUS, orders)
    allocated = per_order(bus, INVENTORY_EVENTS, ALLOCATION, orders)
    told = per_order(bus, NOTIFICATIONS_EVENTS, {"NotificationSent"}, orders)
    for order_id, quantity in orders.items():
        assert len(placed[order_id]) == 1, placed[order_id]
        assert len(status[order_id]) == 1, [r.type for r in status[order_id]]
        assert sum(r.data["quantity"] for r in allocated[order_id]) == quantity, [r.data for r in allocated[order_id]]
        assert len(told[order_id]) == 1, [r.data for r in told[order_id]]


def assert_not_over_allocated(bus: Bus, skus: list[str], stock: int) -> None:
    for sku in skus:
        reserved = sum(r.data["quantity"] for r in unique_events(bus, INVENTORY_EVENTS, "StockReserved", sku=sku))
        assert reserved == stock, (sku, reserved)  # demand exceeds the stock: all of it, and no more


async def placed_orders_handled(running, instance: str) -> float:
    """How many OrderPlaced this instance handled since it started, from its /metrics."""
    metrics = (await running.get(instance, "/metrics")).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
               if line.startswith("orderflow_messages_handled_total") and 'type="OrderPlaced"' in line)
