"""Batch consumption and the outbox relay on real PostgreSQL and a real Apache Kafka broker."""

import asyncio
import json
from datetime import date

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from contracts.commands import OrderLine, ReceiveStock, RegisterProduct
from contracts.envelope import Envelope
from contracts.events import OrderPlaced
from contracts.topics import INVENTORY_COMMANDS, ORDERS_EVENTS
from services.inventory import handlers as inventory
from services.runtime.consumer import BatchConsumer
from services.runtime.messages import Subscription
from services.runtime.relay import OutboxRelay
from tests.integration.helpers import Published, record
from tests.support import unique

INVENTORY_SUBSCRIPTIONS = [
    Subscription(INVENTORY_COMMANDS, {"RegisterProduct": RegisterProduct, "ReceiveStock": ReceiveStock}, strict=True),
    Subscription(ORDERS_EVENTS, {"OrderPlaced": OrderPlaced}, strict=False),
]


def envelope(body, **kw) -> bytes:
    return Envelope.wrap(body, source="tests", **kw).to_bytes()


def inventory_consumer(pool, publish=None, handle=None) -> BatchConsumer:
    return BatchConsumer("inventory", pool, INVENTORY_SUBSCRIPTIONS,
                         handle or (lambda conn, msgs: inventory.handle(conn, msgs, today=date.today())),
                         inventory.inbox_key, publish or Published(), lambda: None, message_attempts=3)


async def test_concurrent_batches_from_eight_consumers_never_over_allocate(pools):
    pool = await pools("inventory")
    consumer = inventory_consumer(pool)
    await consumer.process([record(INVENTORY_COMMANDS, envelope(RegisterProduct(sku="HOT", name="Hot", lead_time_days=5))),
                            record(INVENTORY_COMMANDS, envelope(ReceiveStock(receipt_id="r1", sku="HOT", quantity=50)))])
    orders = [OrderPlaced(order_id=f"o{i}", customer_id="c", customer_email="c@example.com",
                          lines=[OrderLine(sku="HOT", quantity=1)]) for i in range(200)]
    batches = [[record(ORDERS_EVENTS, envelope(o)) for o in orders[i::8]] for i in range(8)]

    # Eight consumers (as eight service instances would) write the same SKU at once.
    await asyncio.gather(*(inventory_consumer(pool).process(batch) for batch in batches))

    rows = await pool.fetch("SELECT type, sum((data->>'quantity')::int) AS units, count(*) FROM events "
                            "WHERE stream_id = 'HOT' GROUP BY type")
    totals = {r["type"]: (r["units"], r["count"]) for r in rows}
    assert totals["StockReserved"] == (50, 50)
    assert totals["BackorderCreated"] == (150, 150)
    row = await pool.fetchrow("SELECT on_hand, reserved, available, backordered FROM availability WHERE sku = 'HOT'")
    assert tuple(row) == (50, 50, 0, 150)


async def test_a_message_that_fails_alone_is_dead_lettered_and_the_rest_of_its_batch_is_handled(pools):
    pool = await pools("inventory")
    published = Published()

    async def handle(conn, messages):
        if any(getattr(m.body, "sku", None) == "POISON" for m in messages):
            raise ValueError("this product breaks the handler")
        await inventory.handle(conn, messages, today=date.today())

    consumer = inventory_consumer(pool, published, handle)
    await consumer.process([
        record(INVENTORY_COMMANDS, envelope(RegisterProduct(sku="OK1", name="ok", lead_time_days=1))),
        record(INVENTORY_COMMANDS, envelope(RegisterProduct(sku="POISON", name="bad", lead_time_days=1))),
        record(INVENTORY_COMMANDS, b"\xff\xfe not even text"),
        record(INVENTORY_COMMANDS, envelope(RegisterProduct(sku="OK2", name="ok", lead_time_days=1))),
    ])

    assert sorted(await pool.fetchval("SELECT array_agg(DISTINCT stream_id) FROM events")) == ["OK1", "OK2"]
    reasons = sorted(headers["dlq.error"] for _, _, headers in published.sent)
    assert [topic for topic, _, _ in published.sent] == ["inventory.commands.dlq"] * 2
    assert reasons[0].startswith("handler failed: ValueError('this product breaks the handler')")
    assert reasons[1].startswith("not JSON")


async def test_relay_publishes_appended_events_in_order_keyed_by_aggregate_and_resumes_where_it_stopped(
        pools, apache_kafka):
    pool = await pools("inventory")
    topic = unique("relay-test")
    admin = AIOKafkaAdminClient(bootstrap_servers=apache_kafka)
    await admin.start()
    await admin.create_topics([NewTopic(topic, 3, 1)])
    await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=apache_kafka, acks="all")
    await producer.start()

    async def publish(value, topic, *, key=None, headers=None, correlation_id=None, no_confirm=False):
        return await producer.send(topic, value, key=key, headers=[(k, v.encode()) for k, v in (headers or {}).items()])

    consumer = inventory_consumer(pool)
    skus = [f"S{i}" for i in range(5)]
    await consumer.process([record(INVENTORY_COMMANDS, envelope(RegisterProduct(sku=s, name=s, lead_time_days=1)))
                            for s in skus])
    await consumer.process([record(INVENTORY_COMMANDS, envelope(ReceiveStock(receipt_id=f"r-{s}", sku=s, quantity=3)))
                            for s in skus])

    async def run_relay(seconds: float) -> None:
        task = asyncio.create_task(OutboxRelay(pools.urls["inventory"], "inventory", topic, "sku", publish).run())
        await asyncio.sleep(seconds)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    await run_relay(2)
    assert await pool.fetchval("SELECT position FROM relay_cursor") == await pool.fetchval("SELECT max(position) FROM events")
    await run_relay(1.5)  # a second relay starts from the recorded cursor: nothing is sent again

    reader = AIOKafkaConsumer(topic, bootstrap_servers=apache_kafka, auto_offset_reset="earliest", group_id=None)
    await reader.start()
    received = []
    for _ in range(50):
        for records in (await reader.getmany(timeout_ms=200)).values():
            received += records
        if len(received) >= 20:
            break
    await reader.stop()
    await producer.stop()

    assert len(received) == 20
    for sku in skus:
        mine = [json.loads(r.value) for r in received if r.key == sku.encode()]
        assert [e["type"] for e in mine] == ["ProductRegistered", "AvailabilityChanged", "StockReceived",
                                             "AvailabilityChanged"]
        assert [e["data"]["status"] for e in mine[1::2]] == ["backorderable", "in_stock"]
        assert all(e["specversion"] == "1.0" and e["subject"] == sku and e["data"]["sku"] == sku for e in mine)
