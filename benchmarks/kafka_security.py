"""What SASL_SSL (SCRAM-SHA-512 over TLS) costs a Kafka client against PLAINTEXT: starts a local Apache Kafka
each way and times connecting a producer, producing records of the size of an order's CloudEvent (acks=all,
as the services do) and reading them back; prints each and their ratio.

    uv run python -m benchmarks.kafka_security [--records 20000] [--size 1000] [--repeat 3]
"""

import argparse
import asyncio
import logging
import secrets
import statistics
import tempfile
import time
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition

from infra import kafka
from infra.certificates import broker_certificate
from infra.ports import free_port
from infra.topics import create_topics

TOPIC, PARTITIONS = "bench.security", 3


async def connect_ms(broker: kafka.Broker) -> float:
    """A producer's start: a TCP connection, the TLS handshake and SCRAM's round trips where secured."""
    started = time.perf_counter()
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, **broker.client_security())
    await producer.start()
    elapsed = time.perf_counter() - started
    await producer.stop()
    return elapsed * 1000


async def produce_s(broker: kafka.Broker, records: int, value: bytes) -> float:
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, acks="all", linger_ms=5,
                                enable_idempotence=False, **broker.client_security())
    await producer.start()
    try:
        started = time.perf_counter()
        sent = [await producer.send(TOPIC, value, key=f"ord-{i}".encode()) for i in range(records)]
        await asyncio.gather(*sent)
        return time.perf_counter() - started
    finally:
        await producer.stop()


async def consume_s(broker: kafka.Broker, records: int) -> float:
    """Read the last `records` records of the topic."""
    consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap_servers, group_id=None, enable_auto_commit=False,
                                **broker.client_security())
    await consumer.start()
    try:
        partitions = [TopicPartition(TOPIC, p) for p in range(PARTITIONS)]
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        for partition in partitions:
            consumer.seek(partition, max(ends[partition] - records // len(partitions) - 1, 0))
        started, read = time.perf_counter(), 0
        while read < records:
            read += sum(len(batch) for batch in (await consumer.getmany(timeout_ms=1000)).values())
        return time.perf_counter() - started
    finally:
        await consumer.stop()


async def measure(broker: kafka.Broker, records: int, size: int, repeat: int) -> dict[str, float]:
    await create_topics(broker.bootstrap_servers, PARTITIONS, [TOPIC], **broker.client_security())
    value = b"x" * size
    await produce_s(broker, 1000, value)  # warm the broker's JIT and the client's connections
    connect = statistics.median([await connect_ms(broker) for _ in range(10)])
    produce = statistics.median([await produce_s(broker, records, value) for _ in range(repeat)])
    consume = statistics.median([await consume_s(broker, records) for _ in range(repeat)])
    return {"connect ms": connect, "produce records/s": records / produce, "consume records/s": records / consume}


def run(folder: Path, records: int, size: int, repeat: int) -> dict[str, dict[str, float]]:
    keystore, cafile = broker_certificate(folder / "tls")
    results = {}
    for name, secured in (("PLAINTEXT", None), ("SASL_SSL", kafka.SaslSsl(keystore, cafile, "bench",
                                                                          secrets.token_urlsafe(18)))):
        broker = kafka.start_apache_kafka(free_port(also=(1,)), folder / name, sasl_ssl=secured)
        try:
            results[name] = asyncio.run(measure(broker, records, size, repeat))
        finally:
            broker.stop()
    return results


if __name__ == "__main__":
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # connection refusals while a broker starts
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--size", type=int, default=1000, help="bytes per record")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        results = run(Path(folder), args.records, args.size, args.repeat)
    print(f"{args.records:,} records of {args.size} bytes, median of {args.repeat} (connect: of 10)")
    print(f"{'':20}{'PLAINTEXT':>12}{'SASL_SSL':>12}{'ratio':>8}")
    for measure_name in results["PLAINTEXT"]:
        plain, secured = results["PLAINTEXT"][measure_name], results["SASL_SSL"][measure_name]
        print(f"{measure_name:20}{plain:12,.1f}{secured:12,.1f}{secured / plain:8.2f}")
