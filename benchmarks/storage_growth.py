"""Storage growth per 1,000 orders: runs N orders through the three real services (their own Apache Kafka broker,
a fresh database on the local PostgreSQL, a mail sink) and prints, for every table of every service's schema,
the rows and bytes (pg_total_relation_size: table, indexes and TOAST) added per 1,000 orders, and how much of it
retention prunes once INBOX_RETENTION_HOURS have passed.

    uv run python -m benchmarks.storage_growth [--orders 2000]

The orders are mixed as a store would see them (of every 1,000):
  400 in stock, shipped · 100 in stock, cancelled · 200 backordered, received, shipped ·
  150 backordered, cancelled · 150 backordered and still waiting on a purchase order (an ETA).
Each has one or two lines; every step is a command on the public topics, and the figures are taken once every
status event and mail has gone out and every relay has published everything."""

import argparse
import asyncio
import json
import logging
import random
import tempfile
import time
import uuid
from collections import defaultdict
from datetime import date
from pathlib import Path

import asyncpg
from aiokafka import AIOKafkaProducer

from benchmarks.throughput import STRUCTURED_MODE, consumer_at_end
from contracts import topics
from contracts.commands import (
    CancelOrder,
    ExpectReplenishment,
    OrderLine,
    PlaceOrder,
    ReceiveStock,
    RegisterProduct,
    ShipOrder,
)
from contracts.envelope import Envelope
from infra import kafka, postgres
from infra.mailsink import MailSink
from infra.services import start_services, stop_services, wait_healthy
from infra.topics import create_topics
from services.runtime import db
from infra.ports import free_port

FATES = {"stocked_shipped": 400, "stocked_cancelled": 100, "received_shipped": 200, "backordered_cancelled": 150,
         "waiting": 150}
SKUS_PER_GROUP = 10
SCHEMAS = ("order_service", "inventory_service", "notification_service")
# What retention deletes once its time has passed (services/runtime/retention.py).
PRUNABLE = {"inbox": "NOT kept", "notification_outbox": "sent_at IS NOT NULL"}


async def measure(url: str) -> dict[tuple[str, str], tuple[int, int, int]]:
    """Rows, bytes and prunable rows of every table of the services' schemas."""
    conn = await asyncpg.connect(url)
    try:
        tables = await conn.fetch("SELECT schemaname, tablename FROM pg_tables WHERE schemaname = ANY($1::text[]) "
                                  "AND tablename <> 'schema_migrations' ORDER BY 1, 2", list(SCHEMAS))
        sizes = {}
        for schema, table in tables:
            name = f"{schema}.{table}"
            rows = await conn.fetchval(f"SELECT count(*) FROM {name}")
            size = await conn.fetchval("SELECT pg_total_relation_size($1::regclass)", name)
            prunable = await conn.fetchval(f"SELECT count(*) FROM {name} WHERE {PRUNABLE[table]}") \
                if table in PRUNABLE else 0
            sizes[(schema, table)] = (rows, size, prunable)
        return sizes
    finally:
        await conn.close()


class Watch:
    """Which orders each event type has been seen for, on orders.events."""

    def __init__(self, consumer) -> None:
        self.consumer = consumer
        self.seen: dict[str, set[str]] = defaultdict(set)

    async def until(self, type_: str, order_ids: set[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not order_ids <= self.seen[type_]:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(order_ids - self.seen[type_])} orders without {type_}")
            for records in (await self.consumer.getmany(timeout_ms=200)).values():
                for r in records:
                    event = json.loads(r.value)
                    self.seen[event["type"]].add(event["data"].get("order_id"))


async def drive(bootstrap: str, url: str, orders: int, timeout: float) -> None:
    run = uuid.uuid4().hex[:6]
    rng = random.Random(7)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, enable_idempotence=False)
    await producer.start()

    async def send(topic: str, messages: list[tuple[object, str]]) -> None:
        await asyncio.gather(*[await producer.send(topic, Envelope.wrap(m, source="benchmark").to_bytes(),
                                                   key=key.encode(), headers=STRUCTURED_MODE) for m, key in messages])

    groups = {g: [f"{g}-{run}-{i}" for i in range(SKUS_PER_GROUP)] for g in ("stocked", "received", "cancelled", "waiting")}
    watch = Watch(await consumer_at_end(bootstrap, topics.ORDERS_EVENTS))
    await send(topics.INVENTORY_COMMANDS, [(RegisterProduct(sku=s, name=s, lead_time_days=14), s)
                                           for skus in groups.values() for s in skus])
    await send(topics.INVENTORY_COMMANDS, [(ReceiveStock(receipt_id=f"r-{s}", sku=s, quantity=1_000_000), s)
                                           for s in groups["stocked"]])
    await send(topics.INVENTORY_COMMANDS, [(ExpectReplenishment(po_id=f"po-{s}", sku=s, quantity=1_000_000,
                                                                expected_on=date(2099, 1, 1)), s)
                                           for s in groups["waiting"]])

    fates = [fate for fate, per_1000 in FATES.items() for _ in range(per_1000 * orders // 1000)]
    plan: dict[str, tuple[str, list[OrderLine]]] = {}
    for i, fate in enumerate(fates):
        group = {"stocked_shipped": "stocked", "stocked_cancelled": "stocked", "received_shipped": "received",
                 "backordered_cancelled": "cancelled", "waiting": "waiting"}[fate]
        skus = rng.sample(groups[group], rng.choice((1, 2)))
        plan[f"o-{run}-{i}"] = fate, [OrderLine(sku=s, quantity=rng.randint(1, 3), unit_price="9.90") for s in skus]
    by_fate = defaultdict(set)
    for order_id, (fate, _) in plan.items():
        by_fate[fate].add(order_id)

    started = time.monotonic()
    await send(topics.ORDERS_COMMANDS, [(PlaceOrder(order_id=o, customer_id=f"c-{o}", customer_email=f"{o}@example.com",
                                                    lines=lines, currency="EUR"), o) for o, (_, lines) in plan.items()])
    await watch.until("OrderConfirmed", by_fate["stocked_shipped"] | by_fate["stocked_cancelled"], timeout)
    await watch.until("OrderBackordered", by_fate["received_shipped"] | by_fate["backordered_cancelled"]
                      | by_fate["waiting"], timeout)

    waiting_units = defaultdict(int)
    for order_id in by_fate["received_shipped"]:
        for line in plan[order_id][1]:
            waiting_units[line.sku] += line.quantity
    await send(topics.INVENTORY_COMMANDS, [(ReceiveStock(receipt_id=f"r2-{s}", sku=s, quantity=q), s)
                                           for s, q in waiting_units.items()])
    await send(topics.ORDERS_COMMANDS, [(CancelOrder(order_id=o, reason="changed my mind"), o)
                                        for o in by_fate["stocked_cancelled"] | by_fate["backordered_cancelled"]])
    await watch.until("OrderReadyToShip", by_fate["received_shipped"], timeout)
    await watch.until("OrderCancelled", by_fate["stocked_cancelled"] | by_fate["backordered_cancelled"], timeout)
    await send(topics.ORDERS_COMMANDS, [(ShipOrder(order_id=o, shipment_id=f"s-{o}", carrier="DHL",
                                                   tracking_number=f"T-{o}"), o)
                                        for o in by_fate["stocked_shipped"] | by_fate["received_shipped"]])
    await watch.until("OrderShipped", by_fate["stocked_shipped"] | by_fate["received_shipped"], timeout)
    await settled(url, timeout)
    print(f"{len(plan)} orders through the services in {time.monotonic() - started:.0f} s")
    await watch.consumer.stop()
    await producer.stop()


async def settled(url: str, timeout: float) -> None:
    """Until every notification is sent and every relay has published all its events."""
    conn = await asyncpg.connect(url)
    deadline = time.monotonic() + timeout
    try:
        while True:
            waiting = await conn.fetchval(
                "SELECT (SELECT count(*) FROM notification_service.notification_outbox WHERE sent_at IS NULL)"
                + "".join(f" + (SELECT count(*) FROM {s}.events WHERE position > (SELECT position FROM {s}.relay_cursor))"
                          for s in SCHEMAS))
            if waiting == 0:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{waiting} notifications or events still waiting")
            await asyncio.sleep(0.5)
    finally:
        await conn.close()


def report(before: dict, after: dict, orders: int) -> None:
    per = 1000 / orders
    print(f"\nper 1,000 orders (of {orders} run)           {'rows':>9}{'bytes':>12}{'bytes/row':>11}  rows retention prunes")
    total = 0
    for schema in SCHEMAS:
        for (s, table), (rows, size, prunable) in sorted(after.items()):
            if s != schema:
                continue
            rows0, size0, prunable0 = before.get((s, table), (0, 0, 0))
            added_rows, added = (rows - rows0) * per, (size - size0) * per
            total += added
            per_row = f"{(size - size0) / (rows - rows0):,.0f}" if rows > rows0 else "-"
            print(f"  {f'{s}.{table}':<42}{added_rows:>9,.0f}{added:>12,.0f}{per_row:>11}  "
                  + (f"{(prunable - prunable0) * per:,.0f}" if table in PRUNABLE else ""))
    print(f"  {'total':<42}{'':>9}{total:>12,.0f}  ({total / 1000:,.0f} bytes per order)")


async def main(orders: int, timeout: float) -> None:
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    admin_url, where = postgres.ensure_database()
    name = f"orderflow_growth_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(admin_url)
    await admin.execute(f"CREATE DATABASE {name}")
    url = db.with_database(admin_url, name)
    with tempfile.TemporaryDirectory() as folder:
        broker = kafka.start_apache_kafka(free_port(also=(1,)), Path(folder) / "kafka")
        mail = MailSink(Path(folder) / "mail", port=free_port()).start()
        processes = {}
        try:
            await create_topics(broker.bootstrap_servers)
            logins = {service: db.local_url(url, service) for service in ("order", "inventory", "notification")}
            for service, login in logins.items():
                await db.set_up(url, service, login)
            before = await measure(url)
            ports = {service: free_port() for service in ("order", "inventory", "notification")}
            env = {"KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers, "SMTP_URL": mail.url,
                   "KAFKA_SESSION_TIMEOUT_MS": "2000", "LOG_LEVEL": "warning"} \
                | {f"{service.upper()}_DATABASE_URL": login for service, login in logins.items()} \
                | {f"{service.upper()}_HTTP_PORT": str(port) for service, port in ports.items()}
            processes = start_services(env, log_dir=Path(folder))
            await asyncio.to_thread(wait_healthy, env, processes)
            print(f"services up on Apache Kafka and {where}, database {name}")
            await drive(broker.bootstrap_servers, url, orders, timeout)
            report(before, await measure(url), orders)
        finally:
            stop_services(processes)
            mail.stop()
            broker.stop()
            await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            await admin.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=2000)
    parser.add_argument("--timeout", type=float, default=600, help="seconds each step may take")
    args = parser.parse_args()
    asyncio.run(main(args.orders, args.timeout))
