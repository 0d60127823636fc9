"""What a hop costs in the Kafka client alone: aiokafka on uvloop (the services' client) against confluent-kafka
(librdkafka). Starts a local broker; for each client, runs benchmarks/kafka_client_hop.py as a process of its own
that consumes one topic and produces each record to another; offers it records of an event's size at `--rate`
per second, one per send; and prints the hop's CPU per record and the latency from a record's send to its
arrival on the other topic. confluent-kafka goes into a throwaway environment under .local/, made once; it is
not a dependency of the project.

    uv run python -m benchmarks.kafka_clients [--rate 300] [--seconds 15] [--repeat 2]
"""

import argparse
import asyncio
import json
import logging
import statistics
import struct
import sys
import tempfile
import time
import uuid
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from benchmarks.throwaway import python_with
from infra import kafka
from infra.topics import create_topics

CONFLUENT_KAFKA = "confluent-kafka==2.16.1"
RECORD_BYTES = 900  # about an order's CloudEvent
ROOT = Path(__file__).parent.parent


async def one_run(bootstrap: str, client: str, rate: float, seconds: float) -> tuple[float, list[float]]:
    """CPU microseconds per record of the hop, and each record's latency in ms."""
    source, target = f"bench.hop-in-{uuid.uuid4().hex[:6]}", f"bench.hop-out-{uuid.uuid4().hex[:6]}"
    await create_topics(bootstrap, partitions=3, names=[source, target])
    if client == "aiokafka":
        python = sys.executable
    else:
        python = python_with(CONFLUENT_KAFKA.replace("==", "-"), CONFLUENT_KAFKA)
    hop = await asyncio.create_subprocess_exec(python, "-m", "benchmarks.kafka_client_hop", client, bootstrap, source,
                                               target, str(seconds), cwd=ROOT, stdout=asyncio.subprocess.PIPE)
    await hop.stdout.readline()  # ready
    watcher = AIOKafkaConsumer(target, bootstrap_servers=bootstrap, group_id=target, auto_offset_reset="earliest",
                               fetch_max_wait_ms=100)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
    await watcher.start()
    await producer.start()
    padding = b"x" * (RECORD_BYTES - 8)
    latencies: list[float] = []

    async def watch() -> None:
        while True:
            for records in (await watcher.getmany(timeout_ms=1000)).values():
                now = time.perf_counter()
                latencies.extend((now - struct.unpack("d", r.value[:8])[0]) * 1000 for r in records)

    watching = asyncio.create_task(watch())
    try:
        started, sent = time.perf_counter(), 0
        while time.perf_counter() - started < seconds + 3:  # past the hop's window, which starts at its first record
            if (ahead := started + sent / rate - time.perf_counter()) > 0:
                await asyncio.sleep(ahead)
            await producer.send(source, struct.pack("d", time.perf_counter()) + padding, key=str(sent).encode())
            sent += 1
        result = json.loads((await hop.stdout.read()).decode().strip().splitlines()[-1])
        await asyncio.sleep(1)
    finally:
        watching.cancel()
        await watcher.stop()
        await producer.stop()
    return result["cpu_seconds"] * 1e6 / result["records"], latencies


async def main(args: argparse.Namespace) -> None:
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # its connection attempts while the broker starts
    with tempfile.TemporaryDirectory() as folder:
        broker = kafka.start_broker_on_free_ports(Path(folder))
        try:
            for _ in range(args.repeat):
                for client in ("aiokafka", "confluent-kafka"):
                    cpu_us, latencies = await one_run(broker.bootstrap_servers, client, args.rate, args.seconds)
                    latencies.sort()
                    print(f"{client:<16} {args.rate:g} records/s: {cpu_us:5.0f} us CPU per record; send -> other topic "
                          f"p50 {statistics.median(latencies):.1f} ms, p99 {latencies[int(len(latencies) * 0.99)]:.1f} ms")
        finally:
            broker.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=300)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--repeat", type=int, default=2)
    asyncio.run(main(parser.parse_args()))
