"""The hop of benchmarks/kafka_clients.py: consumes one topic and produces each record to another, as a service's
consumer and relay do, waiting for the acknowledgements of each batch; with aiokafka on uvloop (the project's
Python) or with confluent-kafka (librdkafka, in a throwaway environment). Prints "ready", then, once it has
handled `seconds` of records, one JSON line: {"records": n, "cpu_seconds": c} (every thread of this process).

    python -m benchmarks.kafka_client_hop aiokafka|confluent-kafka BOOTSTRAP FROM TO SECONDS
"""

import asyncio
import json
import os
import sys
import time

MAX_RECORDS = 500
EMPTY_FETCH_WAIT_MS = 100  # as the services'


def cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


async def aiokafka_hop(bootstrap: str, source: str, target: str, seconds: float) -> tuple[int, float]:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    consumer = AIOKafkaConsumer(source, bootstrap_servers=bootstrap, group_id=source, auto_offset_reset="earliest",
                                fetch_max_wait_ms=EMPTY_FETCH_WAIT_MS)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0, acks="all")
    await consumer.start()
    await producer.start()
    print("ready", flush=True)
    records, started, end = 0, None, None
    while end is None or time.monotonic() < end:
        batch = [r for rs in (await consumer.getmany(timeout_ms=1000, max_records=MAX_RECORDS)).values() for r in rs]
        if batch and started is None:
            started, end = cpu_seconds(), time.monotonic() + seconds
        await asyncio.gather(*[await producer.send(target, r.value, key=r.key) for r in batch])
        records += len(batch)
    used = cpu_seconds() - started
    await consumer.stop()
    await producer.stop()
    return records, used


def confluent_hop(bootstrap: str, source: str, target: str, seconds: float) -> tuple[int, float]:
    from confluent_kafka import Consumer, Producer

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": source, "auto.offset.reset": "earliest",
                         "fetch.wait.max.ms": EMPTY_FETCH_WAIT_MS})
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0, "acks": "all"})
    consumer.subscribe([source])
    print("ready", flush=True)
    records, started, end = 0, None, None
    while end is None or time.monotonic() < end:
        first = consumer.poll(1.0)  # returns with the first record; then takes what was fetched, without waiting
        batch = [m for m in ([first, *consumer.consume(MAX_RECORDS - 1, timeout=0)] if first else []) if not m.error()]
        if batch and started is None:
            started, end = cpu_seconds(), time.monotonic() + seconds
        for message in batch:
            producer.produce(target, message.value(), key=message.key())
        producer.flush()
        records += len(batch)
    used = cpu_seconds() - started
    consumer.close()
    return records, used


if __name__ == "__main__":
    client, bootstrap, source, target, seconds = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5])
    if client == "aiokafka":
        import uvloop

        records, used = uvloop.run(aiokafka_hop(bootstrap, source, target, seconds))
    else:
        records, used = confluent_hop(bootstrap, source, target, seconds)
    print(json.dumps({"records": records, "cpu_seconds": used}), flush=True)
