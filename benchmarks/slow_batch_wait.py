"""How long a record waits after a slow batch, by the broker's wait for an empty fetch (`fetch_max_wait_ms`):
starts a local broker, and a consumer of a busy topic and a quiet one, as a service reads several. Each round
takes a record, is slow (another record is fetched meanwhile and waits to be taken), takes that one, then times
the next record from its send to its poll. aiokafka sends one fetch per broker at a time: once fetched records
have waited 0.1 s to be taken, it fetches the other partitions alone, and the broker holds that fetch up to
`fetch_max_wait_ms` when they are quiet, however soon the next record comes for the busy one.

    uv run python -m benchmarks.slow_batch_wait [--waits-ms 500 100] [--rounds 20] [--slow-batch-s 0.2]
"""

import argparse
import asyncio
import logging
import statistics
import tempfile
import time
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from infra import kafka
from infra.topics import create_topics


async def waits_ms(bootstrap: str, fetch_max_wait_ms: int, rounds: int, slow_batch_s: float) -> list[float]:
    busy, quiet = f"bench.busy-{fetch_max_wait_ms}", f"bench.quiet-{fetch_max_wait_ms}"
    await create_topics(bootstrap, partitions=1, names=[busy, quiet])
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
    consumer = AIOKafkaConsumer(busy, quiet, bootstrap_servers=bootstrap, group_id=busy,
                                auto_offset_reset="earliest", fetch_max_wait_ms=fetch_max_wait_ms)
    await producer.start()
    await consumer.start()
    waited = []
    try:
        for _ in range(rounds):
            await producer.send_and_wait(busy, b"taken")
            await taken(consumer)
            await producer.send_and_wait(busy, b"fetched while the batch is slow")
            await asyncio.sleep(slow_batch_s)
            await taken(consumer)
            sent = time.perf_counter()
            await producer.send_and_wait(busy, b"timed")
            await taken(consumer)
            waited.append((time.perf_counter() - sent) * 1000)
    finally:
        await consumer.stop()
        await producer.stop()
    return waited


async def taken(consumer: AIOKafkaConsumer) -> None:
    while not await consumer.getmany(timeout_ms=10_000):
        pass


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as folder:
        broker = kafka.start_broker_on_free_ports(Path(folder))
        try:
            for wait_ms in args.waits_ms:
                waited = await waits_ms(broker.bootstrap_servers, wait_ms, args.rounds, args.slow_batch_s)
                print(f"fetch_max_wait_ms {wait_ms:>5}: after a batch of {args.slow_batch_s} s, the next record "
                      f"waited p50 {statistics.median(waited):.0f} ms, max {max(waited):.0f} ms ({args.rounds} rounds)")
        finally:
            broker.stop()


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--waits-ms", type=int, nargs="+", default=[500, 100])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--slow-batch-s", type=float, default=0.2)
    asyncio.run(main(parser.parse_args()))
