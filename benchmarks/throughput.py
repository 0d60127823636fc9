"""Drives N orders through a running orderflow (`make run`) and prints end-to-end orders/s and the
latency from PlaceOrder to the resulting reservation or backorder event (p50/p99).

    make bench ARGS="--orders 5000"        # against KAFKA_BOOTSTRAP_SERVERS or 127.0.0.1:9092
"""

import argparse
import asyncio
import json
import statistics
import time
import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition

from contracts import topics
from contracts.commands import OrderLine, PlaceOrder, ReceiveStock, RegisterProduct
from contracts.envelope import STRUCTURED_CONTENT_TYPE, Envelope
from services.runtime.settings import load_kafka

ALLOCATION = {"StockReserved", "BackorderCreated", "OutOfStock"}  # inventory's answer to OrderPlaced
STATUS = {"OrderConfirmed", "OrderBackordered", "OrderRejected"}
STRUCTURED_MODE = [("content-type", STRUCTURED_CONTENT_TYPE.encode())]


async def consumer_at_end(bootstrap: str, security: dict, *names: str) -> AIOKafkaConsumer:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, **security)
    await consumer.start()
    partitions = [TopicPartition(t, p) for t in names for p in consumer.partitions_for_topic(t) or ()]
    if not partitions:
        await consumer._client.force_metadata_update()
        partitions = [TopicPartition(t, p) for t in names for p in consumer.partitions_for_topic(t) or ()]
    consumer.assign(partitions)
    await consumer.seek_to_end(*partitions)
    for tp in partitions:
        await consumer.position(tp)  # resolve the end offsets now, before anything is sent
    return consumer


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else values[0]


async def main(bootstrap: str, security: dict, orders: int, skus: int, stock: int, timeout: float, rate: float,
               sku_prefix: str | None) -> None:
    run = uuid.uuid4().hex[:6]
    # At a given --rate, no linger: it would add up to its 5 ms to the latency measured, the benchmark's own.
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0 if rate else 5,
                                enable_idempotence=False,
                                **security)
    await producer.start()

    def send(topic: str, message, key: str):
        return producer.send(topic, Envelope.wrap(message, source="benchmark").to_bytes(), key=key.encode(),
                             headers=STRUCTURED_MODE)

    sku_names = [f"{sku_prefix or f'bench-{run}'}-{i}" for i in range(skus)]
    watcher = await consumer_at_end(bootstrap, security, topics.INVENTORY_EVENTS, topics.ORDERS_EVENTS, topics.NOTIFICATIONS_EVENTS)
    setup = [await send(topics.INVENTORY_COMMANDS, RegisterProduct(sku=s, name=s, lead_time_days=7), s) for s in sku_names]
    setup += [await send(topics.INVENTORY_COMMANDS, ReceiveStock(receipt_id=f"{s}-r{run}", sku=s, quantity=stock), s)
              for s in sku_names if stock]
    await asyncio.gather(*setup)
    received = 0
    while stock and received < skus:
        for records in (await watcher.getmany(timeout_ms=500)).values():
            received += sum(1 for r in records if json.loads(r.value)["type"] == "StockReceived")

    sent_at: dict[str, float] = {}
    placed_at: dict[str, float] = {}
    allocated_at: dict[str, float] = {}
    status_at: dict[str, float] = {}
    notifications = 0

    async def watch() -> None:
        nonlocal notifications
        while len(status_at) < orders or len(allocated_at) < orders:
            for records in (await watcher.getmany(timeout_ms=100)).values():
                now = time.perf_counter()
                for r in records:
                    event = json.loads(r.value)
                    order_id = event["data"].get("order_id")
                    if order_id not in sent_at:
                        continue
                    if event["type"] == "OrderPlaced":
                        placed_at.setdefault(order_id, now)
                    elif event["type"] in ALLOCATION:
                        allocated_at.setdefault(order_id, now)
                    elif event["type"] in STATUS:
                        status_at.setdefault(order_id, now)
                    elif event["type"] == "NotificationSent":
                        notifications += 1

    order_ids = [f"bench-{run}-o{i}" for i in range(orders)]
    watching = asyncio.create_task(watch())
    started = time.perf_counter()
    pending = []
    for i, order_id in enumerate(order_ids):
        if rate and (ahead := started + i / rate - time.perf_counter()) > 0:
            await asyncio.sleep(ahead)
        sku = sku_names[i % skus]
        sent_at[order_id] = time.perf_counter()
        pending.append(await send(topics.ORDERS_COMMANDS, PlaceOrder(
            order_id=order_id, customer_id=f"c{i}", customer_email=f"c{i}@example.com",
            lines=[OrderLine(sku=sku, quantity=1)]), order_id))
    await asyncio.gather(*pending)
    sent = time.perf_counter()
    try:
        await asyncio.wait_for(watching, timeout)
    except TimeoutError:
        print(f"timed out: {len(allocated_at)} of {orders} allocated, {len(status_at)} with a status")
    done = time.perf_counter()
    await watcher.stop()
    await producer.stop()

    latencies = [(allocated_at[o] - sent_at[o]) * 1000 for o in order_ids if o in allocated_at]
    backordered = max(0, orders - skus * stock)
    print(f"orders            {orders} over {skus} SKUs with {stock} each in stock (~{backordered} backordered)")
    print(f"sent in           {sent - started:.2f} s ({orders / (sent - started):,.0f} orders/s offered)")
    print(f"all allocated in  {max(allocated_at.values()) - started:.2f} s "
          f"-> {len(allocated_at) / (max(allocated_at.values()) - started):,.0f} orders/s (order + inventory)")
    print(f"all statuses in   {max(status_at.values(), default=done) - started:.2f} s "
          f"-> {len(status_at) / (max(status_at.values(), default=done) - started):,.0f} orders/s "
          "(order -> inventory -> order)")
    print(f"PlaceOrder -> StockReserved/BackorderCreated latency: p50 {percentile(latencies, 50):.0f} ms, "
          f"p99 {percentile(latencies, 99):.0f} ms, max {max(latencies):.0f} ms")
    first_hop = [(placed_at[o] - sent_at[o]) * 1000 for o in order_ids if o in placed_at]
    print(f"  of which PlaceOrder -> OrderPlaced (order service alone): p50 {percentile(first_hop, 50):.0f} ms, "
          f"p99 {percentile(first_hop, 99):.0f} ms")
    print(f"NotificationSent seen by then: {notifications}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bootstrap", help="KAFKA_BOOTSTRAP_SERVERS by default; TLS and SASL from the KAFKA_* settings")
    parser.add_argument("--orders", type=int, default=5000)
    parser.add_argument("--skus", type=int, default=50)
    parser.add_argument("--stock", type=int, default=60, help="units in stock per SKU before the run")
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--rate", type=float, default=0, help="orders/s to offer (0: as fast as possible)")
    parser.add_argument("--sku-prefix", help="reuse these SKUs across runs (their queues grow), instead of new ones")
    args = parser.parse_args()
    kafka = load_kafka(**({"kafka_bootstrap_servers": args.bootstrap} if args.bootstrap else {}))
    asyncio.run(main(kafka.kafka_bootstrap_servers, kafka.client_security(), args.orders, args.skus, args.stock, args.timeout, args.rate, args.sku_prefix))
