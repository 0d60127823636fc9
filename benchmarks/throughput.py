"""Drives N orders through orderflow and prints orders/s (allocated, to a status, mailed) and the latency from
PlaceOrder to the reservation or backorder event and to OrderPlaced (p50/p99); charts them per second.

    make bench                                    # 5,000 orders on a stack of its own, with each process's cost
    make bench ARGS="--orders 3000 --rate 300"    # latency at an offered rate
    make bench ARGS="--against-running"           # drive a `make run` (or KAFKA_BOOTSTRAP_SERVERS) instead

On a stack of its own (a broker on free ports, a fresh database, the mail sink and one instance of each
service) it also prints the CPU seconds per 10,000 orders of every process and their peak RSS."""

import argparse
import asyncio
import json
import logging
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition

from benchmarks import costs, hops
from benchmarks.stack import Stack, own_stack
from benchmarks.timeline import percentile, plot
from contracts import topics
from contracts.commands import OrderLine, PlaceOrder, ReceiveStock, RegisterProduct
from contracts.envelope import STRUCTURED_CONTENT_TYPE, TYPE_HEADER, Envelope
from infra import STATE
from services.runtime.settings import load_kafka

ALLOCATION = {b"StockReserved", b"BackorderCreated", b"OutOfStock"}  # inventory's answer to OrderPlaced
STATUS = {b"OrderConfirmed", b"OrderBackordered", b"OrderRejected"}
STRUCTURED_MODE = [("content-type", STRUCTURED_CONTENT_TYPE.encode())]
TYPE = TYPE_HEADER  # each published event names its type in this header: most need no parsing


async def consumer_at_end(bootstrap: str, *names: str, **security) -> AIOKafkaConsumer:
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


@dataclass
class Run:
    """When each order was sent and when each of its events was first seen (time.perf_counter())."""

    orders: int
    skus: int
    stock: int
    started: float = 0.0
    started_ms: int = 0  # of the epoch: where the topics are read from for the hops
    sent: float = 0.0  # the last PlaceOrder acknowledged
    sent_at: dict[str, float] = field(default_factory=dict)
    placed_at: dict[str, float] = field(default_factory=dict)
    allocated_at: dict[str, float] = field(default_factory=dict)
    status_at: dict[str, float] = field(default_factory=dict)
    mailed_at: dict[str, float] = field(default_factory=dict)  # its first NotificationSent

    def rate(self, done_at: dict[str, float]) -> float:
        """Orders/s from the first PlaceOrder to the last of these events."""
        return len(done_at) / (max(done_at.values()) - self.started) if done_at else 0.0


class Load:
    """Orders of one unit each, round robin over SKUs of the load's own with `stock` units each in stock (the
    rest backordered), sent as PlaceOrder to orders.commands, watched on the event topics."""

    def __init__(self, bootstrap: str, security: dict, skus: int, stock: int, sku_prefix: str | None = None):
        self.bootstrap, self.security, self.skus, self.stock = bootstrap, security, skus, stock
        self.run_id = uuid.uuid4().hex[:6]
        self.sku_prefix = sku_prefix
        self.sku_names: list[str] = []
        self.set_ups = 0

    async def __aenter__(self) -> "Load":
        # No linger: it would add its wait to the latency measured. The producer still batches what comes
        # while a request is in flight.
        self.producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all", linger_ms=0,
                                         enable_idempotence=False, **self.security)
        await self.producer.start()
        self.watcher = await consumer_at_end(self.bootstrap, topics.INVENTORY_EVENTS, topics.ORDERS_EVENTS,
                                             topics.NOTIFICATIONS_EVENTS, **self.security)
        return self

    async def __aexit__(self, *exc) -> None:
        await self.watcher.stop()
        await self.producer.stop()

    def _send(self, topic: str, message, key: str):
        return self.producer.send(topic, Envelope.wrap(message, source="benchmark").to_bytes(), key=key.encode(),
                                  headers=STRUCTURED_MODE)

    async def set_up(self) -> None:
        """Register the SKUs (new ones at each call, unless given a prefix) and receive their stock; returns
        once inventory has it."""
        self.set_ups += 1
        prefix = self.sku_prefix or f"bench-{self.run_id}-{self.set_ups}"
        self.sku_names = [f"{prefix}-{i}" for i in range(self.skus)]
        sent = [await self._send(topics.INVENTORY_COMMANDS, RegisterProduct(sku=s, name=s, lead_time_days=7), s)
                for s in self.sku_names]
        sent += [await self._send(topics.INVENTORY_COMMANDS,
                                  ReceiveStock(receipt_id=f"{s}-r{self.run_id}-{self.set_ups}", sku=s, quantity=self.stock), s)
                 for s in self.sku_names if self.stock]
        await asyncio.gather(*sent)
        received = 0
        while self.stock and received < self.skus:
            for records in (await self.watcher.getmany(timeout_ms=500)).values():
                received += sum(1 for r in records if _type(r) == b"StockReceived")

    async def run(self, orders: int, rate: float, timeout: float) -> Run:
        """Send `orders` (at `rate`/s, or as fast as the producer takes them) and watch until each is
        allocated, has a status and was mailed, or `timeout` s passed."""
        run = Run(orders, self.skus, self.stock)
        tag = uuid.uuid4().hex[:6]
        order_ids = [f"bench-{tag}-o{i}" for i in range(orders)]
        watching = asyncio.create_task(self._watch(run))
        run.started, run.started_ms = time.perf_counter(), int(time.time() * 1000)
        pending = []
        for i, order_id in enumerate(order_ids):
            if rate and (ahead := run.started + i / rate - time.perf_counter()) > 0:
                await asyncio.sleep(ahead)
            run.sent_at[order_id] = time.perf_counter()
            pending.append(await self._send(topics.ORDERS_COMMANDS, PlaceOrder(
                order_id=order_id, customer_id=f"c{i}", customer_email=f"c{i}@example.com",
                lines=[OrderLine(sku=self.sku_names[i % self.skus], quantity=1)]), order_id))
        await asyncio.gather(*pending)
        run.sent = time.perf_counter()
        try:
            await asyncio.wait_for(watching, timeout)
        except TimeoutError:
            print(f"timed out after {timeout:.0f} s: of {orders}, {len(run.allocated_at)} allocated, "
                  f"{len(run.status_at)} with a status, {len(run.mailed_at)} mailed")
        return run

    async def hops(self, run: Run) -> list[str]:
        """The run's orders, hop by hop, read back from the topics."""
        return await hops.split(self.bootstrap, self.security, run.started_ms - 1000, run.sent_at.keys())

    async def _watch(self, run: Run) -> None:
        orders = run.orders
        while len(run.allocated_at) < orders or len(run.status_at) < orders or len(run.mailed_at) < orders:
            for records in (await self.watcher.getmany(timeout_ms=100)).values():
                now = time.perf_counter()
                for r in records:
                    kind = _type(r)
                    if kind in ALLOCATION:  # keyed by SKU: the order is in the data
                        seen, order_id = run.allocated_at, json.loads(r.value)["data"]["order_id"]
                    elif kind == b"OrderPlaced":
                        seen, order_id = run.placed_at, r.key.decode()
                    elif kind in STATUS:
                        seen, order_id = run.status_at, r.key.decode()
                    elif kind == b"NotificationSent":
                        seen, order_id = run.mailed_at, r.key.decode()
                    else:
                        continue
                    if order_id in run.sent_at:
                        seen.setdefault(order_id, now)


def _type(record) -> bytes | None:
    return next((value for key, value in record.headers if key == TYPE), None)


def report(run: Run) -> list[str]:
    latencies = [(run.allocated_at[o] - sent) * 1000 for o, sent in run.sent_at.items() if o in run.allocated_at]
    first_hop = [(run.placed_at[o] - sent) * 1000 for o, sent in run.sent_at.items() if o in run.placed_at]
    lines = [
        f"orders            {run.orders:,} over {run.skus} SKUs with {run.stock} each in stock "
        f"(~{max(0, run.orders - run.skus * run.stock):,} backordered)",
        f"sent in           {run.sent - run.started:.2f} s ({run.orders / (run.sent - run.started):,.0f} orders/s offered)",
    ]
    for what, done_at, path in (("allocated", run.allocated_at, "order -> inventory"),
                                ("to a status", run.status_at, "order -> inventory -> order"),
                                ("mailed", run.mailed_at, "... -> notification -> SMTP, NotificationSent")):
        if done_at:
            lines.append(f"{what:<18}{len(done_at):,} in {max(done_at.values()) - run.started:.2f} s -> "
                         f"{run.rate(done_at):,.0f} orders/s ({path})")
        else:
            lines.append(f"{what:<18}none")
    if latencies:
        lines.append(f"PlaceOrder -> StockReserved/BackorderCreated latency: p50 {percentile(latencies, 50):.0f} ms, "
                     f"p99 {percentile(latencies, 99):.0f} ms, max {max(latencies):.0f} ms")
    if first_hop:
        lines.append(f"  of which PlaceOrder -> OrderPlaced (order service alone): p50 "
                     f"{percentile(first_hop, 50):.0f} ms, p99 {percentile(first_hop, 99):.0f} ms")
    return lines


def load_average() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


async def measured(stack: Stack, load: Load, orders: int, rate: float, timeout: float) -> tuple[Run, str]:
    """One run on a stack of our own, with the CPU each of its processes spent from the first PlaceOrder until
    the last order was mailed, as a table."""
    processes = {name: p.pid for name, p in stack.processes.items()}
    window = costs.Window(processes)
    async with costs.Backends(stack.admin_url) as backends:
        window.start()
        run = await load.run(orders, rate, timeout)
        cpu = window.stop()
    cpu = {name: cpu[name] for name in ("order", "inventory", "notification", "kafka", "mail sink")} \
        | {"postgres": backends.cpu_seconds, "load generator": cpu["load generator"]}
    notes = {
        "postgres": (f"the {len(backends.last)} backends serving the run's database (pg_stat_activity, sampled each "
                     "second); not the postmaster, checkpointer, WAL and background writers, shared by all databases"
                     if backends.readable else "n/a: the server's processes are not on this machine"),
        "kafka": "the broker's process",
        "load generator": "this process: producer, watcher, sampling",
        "inventory": "with the workers it started",
    }
    rss = {name: costs.peak_rss_mib(pid) for name, pid in processes.items()}
    return run, costs.table(cpu, orders, rss, notes)


async def warm_up(load: Load, orders: int, timeout: float) -> None:
    """Orders through a new stack before it is measured: its first batches pay for connecting, for the JVM's
    compiler and for empty caches, which a running system paid long ago."""
    if orders:
        await load.set_up()
        await load.run(orders, 0, timeout)
        print(f"warmed up with {orders:,} orders")


async def main(args: argparse.Namespace) -> None:
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))  # the set-up's lines
    chart = args.chart or STATE / "bench" / f"throughput-{time.strftime('%Y%m%d-%H%M%S')}.png"
    print(load_average(), "(before)")
    if args.against_running or args.bootstrap or os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        kafka = load_kafka(**({"kafka_bootstrap_servers": args.bootstrap} if args.bootstrap else {}))
        print(f"driving the orderflow running on {kafka.kafka_bootstrap_servers}")
        async with Load(kafka.kafka_bootstrap_servers, kafka.client_security(), args.skus, args.stock,
                        args.sku_prefix) as load:
            await load.set_up()
            run, cost_table = await load.run(args.orders, args.rate, args.timeout), None
            split = await load.hops(run)
    else:
        folder = STATE / "bench" / f"stack-{uuid.uuid4().hex[:8]}"
        async with own_stack(folder, keep=args.keep) as stack:
            print(f"own stack: {stack.description}")
            async with Load(stack.bootstrap_servers, {}, args.skus, args.stock) as load:
                await warm_up(load, args.warm_up, args.timeout)
                await load.set_up()
                run, cost_table = await measured(stack, load, args.orders, args.rate, args.timeout)
                split = await load.hops(run)
    print("\n".join(report(run)))
    print("\n".join(["", "the same, hop by hop, from the times the events carry", *split]))
    print(load_average(), "(after)")
    if cost_table:
        print(f"\ncost per process, from the first PlaceOrder until the last order was mailed\n{cost_table}")
    plot(Path(chart), f"{run.orders:,} orders" + (f" at {args.rate:g}/s" if args.rate else ""), run.sent_at,
         run.allocated_at, run.status_at, run.mailed_at, run.started)
    print(f"\nchart: {chart}")


def arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--orders", type=int, default=5000)
    parser.add_argument("--skus", type=int, default=50)
    parser.add_argument("--stock", type=int, default=60, help="units in stock per SKU before the run")
    parser.add_argument("--rate", type=float, default=0, help="orders/s to offer (0: as fast as possible)")
    parser.add_argument("--timeout", type=float, default=300, help="seconds to wait for every order to be mailed")
    parser.add_argument("--warm-up", type=int, default=1000, help="on a stack of its own: orders sent through it, "
                                                                  "unmeasured, before the measured ones")
    return parser


if __name__ == "__main__":
    parser = arguments(argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter))
    parser.add_argument("--against-running", action="store_true",
                        help="drive the orderflow already running (KAFKA_BOOTSTRAP_SERVERS or 127.0.0.1:9092)")
    parser.add_argument("--bootstrap", help="drive the orderflow on these brokers; TLS and SASL from the KAFKA_* settings")
    parser.add_argument("--sku-prefix", help="with a running orderflow: reuse these SKUs across runs (their queues "
                                             "grow), instead of new ones")
    parser.add_argument("--keep", action="store_true", help="keep the own stack's logs, mails and broker data")
    parser.add_argument("--chart", help="where to write the PNG (default: a new file under .local/bench/)")
    asyncio.run(main(parser.parse_args()))
