"""`make chaos`: orderflow under a steady mixed load while service instances are SIGKILLed, the broker is
stopped and PostgreSQL restarts; then quiet, then the invariant checker. Prints every violation and a
summary, and exits 1 on any violation.

    make chaos                                   # 4,000 orders at 50/s, 24 kills (about 3 minutes)
    make chaos-long                              # 100,000 orders at 45/s, 60 kills
"""

import argparse
import asyncio
import contextlib
import logging
import random
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field

import asyncpg
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition

from contracts import topics
from infra import STATE, kafka, postgres
from infra.chaos import invariants, observe, stack
from infra.chaos.faults import Done, Injector, plan
from infra.chaos.load import Load
from infra.mailsink import MailSink
from infra.services import SERVICES
from infra.ports import free_port
from infra.topics import create_topics
from services.inventory import handlers as inventory
from services.notification import handlers as notification
from services.order import handlers as order
from services.runtime import db
from services.runtime.subscriptions import subscriptions_for

READS = {"order": order.USE_CASES, "inventory": inventory.USE_CASES, "notification": notification.READS}
QUIET_POLLS = 3  # in a row, a second apart, with nothing to do and nothing new on any topic


@dataclass
class Options:
    orders: int = 4000
    rate: float = 50
    kills: int = 24
    broker_stop_s: float = 30
    skus: int = 40
    stock: int = 40  # per SKU before the load
    seed: int = 0  # 0: a random one (printed)
    quiet_timeout_s: float = 300
    brokers: int = 1  # more: an Apache Kafka cluster, one of whose nodes is also SIGKILLed and restarted


@dataclass
class Outcome:
    violations: list[invariants.Violation]
    faults: Done
    summary: list[str] = field(default_factory=list)
    quiet_after_s: float | None = None  # None: it did not quiet


async def chaos(options: Options, log=print) -> Outcome:
    seed = options.seed or random.randrange(1, 1 << 30)
    rng = random.Random(seed)
    run = stack.run_id()
    folder = STATE / "chaos" / run  # its own: runs may overlap
    folder.mkdir(parents=True)
    log(f"chaos run {run}, seed {seed}: {options.orders:,} orders at {options.rate:g}/s, {options.kills} kills; "
        f"logs, mails and broker data in {folder} (kept if a violation is found)")
    async with contextlib.AsyncExitStack() as cleanup:
        broker = await asyncio.to_thread(kafka.start_broker_on_free_ports, folder / "broker", options.brokers)
        cleanup.callback(broker.stop)
        database = await stack.create_database(run)
        cleanup.push_async_callback(postgres.drop_database, database.admin_url)
        log(f"  broker {broker.kind} on {broker.bootstrap_servers}; database on {database.what}")
        await create_topics(broker.bootstrap_servers)
        logins = {f"{service.upper()}_DATABASE_URL": db.local_url(database.admin_url, service) for service in SERVICES}
        for service in SERVICES:
            await db.set_up(database.admin_url, service, logins[f"{service.upper()}_DATABASE_URL"])
        mail = MailSink(folder / "mail", port=free_port()).start()
        cleanup.callback(mail.stop)
        instances = stack.Instances(
            env={"KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers, **logins, "SMTP_URL": mail.url, "KAFKA_SESSION_TIMEOUT_MS": "2000", "ETA_UPDATE_WINDOW_S": "2",
                 "LOG_LEVEL": "warning"},
            log_dir=folder / "logs")
        cleanup.callback(instances.stop)
        await asyncio.to_thread(instances.start_all)
        log(f"  {len(instances.processes)} instances healthy: {', '.join(instances.processes)}")

        books = await asyncpg.create_pool(database.admin_url, min_size=1, max_size=2)
        cleanup.push_async_callback(books.close)

        async def on_hand(sku: str) -> int:
            try:
                return await books.fetchval("SELECT on_hand FROM inventory_service.skus WHERE sku = $1", sku) or 0
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):  # the database is restarting
                return 20

        async with Load(broker.bootstrap_servers, options.skus, seed, on_hand) as load:
            await load.set_up(options.stock)
            await _wait_for_catalogue(database.admin_url, options.skus)
            duration = options.orders / options.rate
            injector = Injector(instances, broker, database, options.broker_stop_s, rng)
            cleanup.callback(injector.resume_broker)
            faults = plan(duration, options.kills, options.broker_stop_s, rng, options.brokers)
            started = time.monotonic()
            progress = max(options.orders // 10, 1)
            injecting = asyncio.create_task(injector.run(faults, started))
            await load.run(options.orders, options.rate, on_order=lambda i: (i + 1) % progress or log(
                f"  {i + 1:>7,} orders sent at {time.monotonic() - started:6.1f} s, "
                f"{len(injector.done.kills)} kills so far"))
            await injecting
        load_s = time.monotonic() - started
        log(f"  load done in {load_s:.1f} s; waiting for quiet")
        quiet_after, busy = await _wait_quiet(broker.bootstrap_servers, database.admin_url, instances,
                                              options.quiet_timeout_s)
        log(f"  quiet after {quiet_after:.1f} s" if busy is None else f"  not quiet after {quiet_after:.1f} s: {busy}")
        restarts = {name: n - 1 for name, n in instances.started.items()}
        instances.stop()
        observed = await observe.observe(broker.bootstrap_servers, database.admin_url, mail.folder)
        violations = invariants.check(observed)
        if busy is not None:
            violations.insert(0, invariants.Violation("quiet", "the system",
                                                      f"still busy {quiet_after:.0f} s after the load: {busy}"))
    if not violations:
        shutil.rmtree(folder, ignore_errors=True)
    outcome = Outcome(violations, injector.done, quiet_after_s=None if busy else quiet_after)
    outcome.summary = _summary(options, seed, load, observed, injector.done, restarts, load_s, quiet_after, busy,
                               database)
    return outcome


async def _wait_for_catalogue(admin_url: str, skus: int, timeout: float = 60) -> None:
    """Orders wait for the products: an order for a SKU not yet registered would be refused."""
    conn = await asyncpg.connect(admin_url)
    try:
        deadline = time.monotonic() + timeout
        while await conn.fetchval("SELECT count(*) FROM inventory_service.skus WHERE product IS NOT NULL") < skus:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the {skus} products were not registered within {timeout:.0f} s")
            await asyncio.sleep(0.2)
    finally:
        await conn.close()


BACKLOG = "SELECT count(*) FROM {schema}.events WHERE position > (SELECT position FROM {schema}.relay_cursor)"
# Queued and neither sent nor settled: what the dispatchers still have to send (ETA updates wait for their
# window, ETA_UPDATE_WINDOW_S, 2 s here).
NOTIFICATIONS_TO_SEND = """
SELECT count(*) FROM notification_service.notification_outbox WHERE sent_at IS NULL AND failed_reason IS NULL
"""


async def _wait_quiet(bootstrap: str, admin_url: str, instances: stack.Instances, timeout: float
                      ) -> tuple[float, str | None]:
    """Seconds until every instance runs, every relay has published everything, every consumer group has
    committed every record, no notification waits to be sent, and the topics stopped growing; with what
    was still busy if that did not happen within `timeout`."""
    began = time.monotonic()
    calm, last_ends, busy = 0, None, "not looked yet"
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    partitions = await observe.partitions_of(bootstrap, topics.ALL)
    await consumer.start()
    await admin.start()
    try:
        while time.monotonic() - began < timeout:
            try:
                ends = await consumer.end_offsets(partitions)
                reasons = await _busy(admin, admin_url, instances, ends)
            except Exception as error:  # a broker or database still coming back
                reasons = [repr(error)]
                ends = None
            if ends != last_ends:
                reasons.append("records still arriving")
            last_ends = ends
            busy = "; ".join(reasons) or None
            calm = 0 if busy else calm + 1
            if calm == QUIET_POLLS:
                return time.monotonic() - began - QUIET_POLLS + 1, None
            await asyncio.sleep(1)
        return time.monotonic() - began, busy
    finally:
        await admin.close()
        await consumer.stop()


async def _busy(admin: AIOKafkaAdminClient, admin_url: str, instances: stack.Instances,
                ends: dict[TopicPartition, int]) -> list[str]:
    reasons = []
    if down := sorted(set(instances.processes) - set(instances.alive())):
        reasons.append(f"down: {', '.join(down)}")
    conn = await asyncpg.connect(admin_url, timeout=3)
    try:
        for service in SERVICES:
            if backlog := await conn.fetchval(BACKLOG.format(schema=db.schema(service))):
                reasons.append(f"{service} relay: {backlog} events to publish")
        if unsent := await conn.fetchval(NOTIFICATIONS_TO_SEND):
            reasons.append(f"{unsent} notifications to send")
    finally:
        await conn.close()
    for service, reads in READS.items():
        wanted = {s.topic for s in subscriptions_for(reads)}
        committed = await admin.list_consumer_group_offsets(f"orderflow-{service}")
        lag = sum(end - (committed[tp].offset if tp in committed else 0)
                  for tp, end in ends.items() if tp.topic in wanted)
        if lag:
            reasons.append(f"{service} consumers: {lag} records behind")
    return reasons


def _summary(options: Options, seed: int, load: Load, observed: invariants.Observed, done: Done,
             restarts: dict[str, int], load_s: float, quiet_after: float, busy: str | None, database: stack.Database) -> list[str]:
    placed = {r.data["order_id"] for r in observed.stores["order"] if r.type == "OrderPlaced"}
    per_topic = {t: (len({r.id for r in records}), len(records)) for t, records in observed.topics.items()
                 if t in topics.ALL}
    dead = {t: len(records) for t, records in observed.topics.items() if t not in topics.ALL and records}
    statuses: dict[str, int] = {}
    for r in observed.stores["order"]:
        if r.type in ("OrderConfirmed", "OrderBackordered", "OrderRejected"):
            statuses[r.type] = statuses.get(r.type, 0) + 1
    lines = [
        f"seed                 {seed} (--seed {seed}: the same mix of commands and plan of faults, timing aside)",
        f"orders               {len(load.sent.orders):,} offered at {options.rate:g}/s, {len(placed):,} accepted "
        f"(OrderPlaced); status events: " + ", ".join(f"{k} {v:,}" for k, v in sorted(statuses.items())),
        f"commands sent        " + ", ".join(f"{k} {v:,}" for k, v in sorted(load.sent.commands.items()))
        + f"; sends retried {load.sent.retries:,}",
        f"load                 {load_s:.1f} s",
        "events per topic     " + ", ".join(f"{t} {n:,}" + (f" (+{total - n:,} repeats)" if total > n else "")
                                            for t, (n, total) in per_topic.items()),
        "dead letters         " + (", ".join(f"{t} {n:,}" for t, n in dead.items()) or "none"),
        f"mails                {len(observed.mails):,} in the sink; in doubt after a kill (maybe sent, never sent "
        f"again): {len(observed.in_doubt)}",
        f"kills                {len(done.kills)} (SIGKILL); restarts: "
        + ", ".join(f"{name} {n}" for name, n in sorted(restarts.items())),
        *(f"                     {kill}" for kill in done.kills),
        *(f"fault injected       {fault}" for fault in done.injected),
        *(f"fault SKIPPED        {skip}" for skip in done.skipped),
        f"database             {database.what}",
        f"time to quiet        {quiet_after:.1f} s after the load" if busy is None else
        f"time to quiet        NOT QUIET after {quiet_after:.1f} s: {busy}",
    ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    defaults = Options()
    for name, value in vars(defaults).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    options = Options(**vars(parser.parse_args()))
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # refusals while the broker is stopped
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # clean up on SIGTERM as on Ctrl-C
    outcome = asyncio.run(chaos(options))
    print("\nsummary")
    for line in outcome.summary:
        print(f"  {line}")
    if outcome.violations:
        print(f"\n{len(outcome.violations)} VIOLATIONS")
        for violation in outcome.violations:
            print(f"  {violation}")
        sys.exit(1)
    print("\nno violation")


if __name__ == "__main__":
    main()
