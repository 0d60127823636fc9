"""Where the time from PlaceOrder to the allocation goes, hop by hop, for the orders placed in the last
`--since-s` seconds (`make bench` prints it for its own orders). Read from the topics alone: an event's
envelope `time` is when its transaction began (the store's `now()`), its record's timestamp when the relay
handed it to the producer.

    python -m benchmarks.hops --since-s 30
"""

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Collection
from datetime import datetime

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from contracts import topics
from services.runtime.settings import load_kafka

ALLOCATION = {"StockReserved", "BackorderCreated", "OutOfStock"}
HOPS = (
    ("PlaceOrder sent -> order service's transaction begins", "sent", "placed_tx"),
    ("order transaction begins -> OrderPlaced handed to the producer", "placed_tx", "placed_out"),
    ("OrderPlaced handed to the producer -> inventory's transaction begins", "placed_out", "allocated_tx"),
    ("inventory transaction begins -> allocation handed to the producer", "allocated_tx", "allocated_out"),
)


def _seconds(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


async def read_since(bootstrap: str, security: dict, since_ms: int, *names: str) -> list:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, **security)
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()  # the partitions, before any subscription asked for them
        partitions = [TopicPartition(t, p) for t in names for p in consumer.partitions_for_topic(t) or ()]
        consumer.assign(partitions)
        starts = await consumer.offsets_for_times({p: since_ms for p in partitions})
        ends = await consumer.end_offsets(partitions)
        for partition in partitions:
            found = starts[partition]
            consumer.seek(partition, found.offset if found else ends[partition])
        left = {p for p in partitions if (await consumer.position(p)) < ends[p]}
        found = []
        while left:
            for partition, records in (await consumer.getmany(*left, timeout_ms=1000)).items():
                found += records
                if await consumer.position(partition) >= ends[partition]:
                    left.discard(partition)
        return found
    finally:
        await consumer.stop()


async def split(bootstrap: str, security: dict, since_ms: int, order_ids: Collection[str] | None = None) -> list[str]:
    """The hops' p50 and p99, as lines, for the orders placed since `since_ms` (of the epoch), or only for
    `order_ids` among them."""
    times: dict[str, dict[str, float]] = {}
    for record in await read_since(bootstrap, security, since_ms, topics.ORDERS_COMMANDS, topics.ORDERS_EVENTS,
                                   topics.INVENTORY_EVENTS):
        try:
            envelope = json.loads(record.value)
        except (TypeError, ValueError):
            continue
        order_id = (envelope.get("data") or {}).get("order_id")
        if not order_id or not envelope.get("time") or (order_ids is not None and order_id not in order_ids):
            continue
        seen = times.setdefault(order_id, {})
        if envelope["type"] == "PlaceOrder":
            seen.setdefault("sent", _seconds(envelope["time"]))
        elif envelope["type"] == "OrderPlaced":
            seen.setdefault("placed_tx", _seconds(envelope["time"]))
            seen.setdefault("placed_out", record.timestamp / 1000)
        elif envelope["type"] in ALLOCATION:
            seen.setdefault("allocated_tx", _seconds(envelope["time"]))
            seen.setdefault("allocated_out", record.timestamp / 1000)
    complete = [t for t in times.values() if len(t) == 5]
    lines = [f"orders traced: {len(complete)}"]
    spans = [*HOPS, ("PlaceOrder sent -> allocation handed to the producer", "sent", "allocated_out")]
    for name, start, end in spans if complete else ():
        took = sorted((t[end] - t[start]) * 1000 for t in complete)
        lines.append(f"{name:<72} p50 {statistics.median(took):6.1f} ms  p99 {took[int(len(took) * 0.99)]:6.1f} ms"
                     f"  max {took[-1]:6.1f} ms")
    return lines


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--since-s", type=float, default=30, help="orders placed this many seconds ago or later")
    args = parser.parse_args()
    kafka = load_kafka()
    since_ms = int((time.time() - args.since_s) * 1000)
    print("\n".join(asyncio.run(split(kafka.kafka_bootstrap_servers, kafka.client_security(), since_ms))))
