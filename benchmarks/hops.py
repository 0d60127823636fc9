"""Where the time from PlaceOrder to the allocation goes, hop by hop, for the orders placed in the last
`--since-s` seconds (run it right after `benchmarks.throughput`). Read from the topics alone: an event's
envelope `time` is when its transaction began (the store's `now()`), its record's timestamp when the relay
handed it to the producer.

    python -m benchmarks.hops --since-s 30
"""

import argparse
import asyncio
import json
import statistics
import time
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


async def main(bootstrap: str, security: dict, since_s: float) -> None:
    times: dict[str, dict[str, float]] = {}
    since_ms = int((time.time() - since_s) * 1000)
    for record in await read_since(bootstrap, security, since_ms, topics.ORDERS_COMMANDS, topics.ORDERS_EVENTS,
                                   topics.INVENTORY_EVENTS):
        try:
            envelope = json.loads(record.value)
        except (TypeError, ValueError):
            continue
        order_id = (envelope.get("data") or {}).get("order_id")
        if not order_id or not envelope.get("time"):
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
    print(f"orders traced: {len(complete)}")
    if not complete:
        return
    for name, start, end in HOPS:
        took = sorted((t[end] - t[start]) * 1000 for t in complete)
        print(f"{name:<72} p50 {statistics.median(took):6.1f} ms  p99 {took[int(len(took) * 0.99)]:6.1f} ms")
    total = sorted((t["allocated_out"] - t["sent"]) * 1000 for t in complete)
    print(f"{'PlaceOrder sent -> allocation handed to the producer':<72} p50 {statistics.median(total):6.1f} ms  "
          f"p99 {total[int(len(total) * 0.99)]:6.1f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--since-s", type=float, default=30, help="orders placed this many seconds ago or later")
    args = parser.parse_args()
    kafka = load_kafka()
    asyncio.run(main(kafka.kafka_bootstrap_servers, kafka.client_security(), args.since_s))
