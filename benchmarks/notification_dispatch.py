"""Notification dispatch on its own: how many mails a second the notification service's dispatchers hand to
an SMTP server, and what each mail costs in CPU, without Kafka or the other services.

It makes a fresh database on the local PostgreSQL (as the other benchmarks do), queues N order
confirmations through the notification handler as its consumer would (OrderPlaced, then OrderConfirmed),
then starts two processes: the mail sink (infra/mailsink.py) on a free port, and the service's dispatchers
(as services/notification/app.py runs them, logging as the service does, to a file). Once every mail is
sent it prints mails/s and CPU seconds per 10,000 mails of the dispatcher process, the sink and the
dispatchers' PostgreSQL sessions (utime + stime from /proc), and checks that every notification went out
once: N mails in the sink with N distinct Message-IDs, N NotificationSent events.

With `--orphans M` it first queues M confirmations of orders whose OrderPlaced never comes (they wait for a
contact for good), and prints what one claim of the dispatchers costs PostgreSQL (EXPLAIN ANALYZE of the
CLAIM statement, rolled back: its time and the shared buffers it read) with every mail still due and again
once all are sent, and the PostgreSQL CPU of 1,000 claims with nothing due: the claim a dispatcher runs after
a commit of the handler.

    uv run python -m benchmarks.notification_dispatch --mails 10000
    uv run python -m benchmarks.notification_dispatch --mails 5000 --orphans 5000
"""

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from email import message_from_bytes, policy
from pathlib import Path

import asyncpg

from contracts.envelope import Envelope
from contracts.events import OrderConfirmed, OrderPlaced
from contracts.commands import OrderLine
from contracts.topics import ORDERS_EVENTS
from infra import postgres
from infra.mailsink import start_sink_process
from infra.ports import free_port
from services.runtime import db
from services.runtime.messages import Message

FILL_BATCH = 500  # messages per handler transaction, as the consumer's BATCH_SIZE
CLAIM_BATCH = 100  # deliveries a dispatcher claims at once (its default batch_size)
IDLE_CLAIMS = 1000
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> tuple[float, float]:
    """utime and stime of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / TICKS, int(fields[12]) / TICKS


async def fill(url: str, mails: int, orphans: int = 0) -> None:
    """Queue `mails` order confirmations the way the notification handler does, after `orphans` of orders
    whose OrderPlaced the service never sees."""
    from services.notification import handlers

    conn = await asyncpg.connect(url, server_settings=db.session_settings("notification"))
    try:
        for start in range(0, orphans, FILL_BATCH):
            events = [OrderConfirmed(order_id=f"orphan-{i}") for i in range(start, min(start + FILL_BATCH, orphans))]
            messages = [Message(Envelope.wrap(e, source="benchmark"), e, ORDERS_EVENTS) for e in events]
            async with conn.transaction():
                await handlers.handle(conn, messages, eta_window_s=0)
        for start in range(0, mails, FILL_BATCH):
            order_ids = [f"bench-{i}" for i in range(start, min(start + FILL_BATCH, mails))]
            events = [OrderPlaced(order_id=o, customer_id=f"c-{o}", customer_email=f"{o}@example.com",
                                  lines=[OrderLine(sku="ANVIL", quantity=1)]) for o in order_ids]
            events += [OrderConfirmed(order_id=o) for o in order_ids]
            messages = [Message(Envelope.wrap(e, source="benchmark"), e, ORDERS_EVENTS) for e in events]
            async with conn.transaction():
                await handlers.handle(conn, messages, eta_window_s=0)
    finally:
        await conn.close()


async def claim_cost(url: str) -> str:
    """What one claim of a batch costs PostgreSQL: EXPLAIN ANALYZE of the dispatcher's CLAIM, rolled back."""
    from services.notification import outbox

    conn = await asyncpg.connect(url, server_settings=db.session_settings("notification"))
    transaction = conn.transaction()
    await transaction.start()
    try:
        # The JSON plan comes back as text: asyncpg has no codec of its own for the json type.
        plan = json.loads(await conn.fetchval(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {outbox.CLAIM}", CLAIM_BATCH))
    finally:
        await transaction.rollback()  # the leases it took are not kept
        await conn.close()
    top = plan[0]["Plan"]
    return (f"{plan[0]['Execution Time']:.2f} ms, {top['Shared Hit Blocks'] + top['Shared Read Blocks']} shared "
            f"buffers, {top['Actual Rows']} rows claimed")


async def idle_claims_cpu(url: str, claims: int) -> str:
    """PostgreSQL CPU of `claims` claims in a row when nothing is due, as a dispatcher runs after a commit of
    the handler: utime + stime of the session's backend."""
    from services.notification import outbox

    conn = await asyncpg.connect(url, server_settings=db.session_settings("notification"))
    try:
        pid = conn.get_server_pid()
        before = sum(cpu_seconds(pid))
        for _ in range(claims):
            await outbox.claim(conn, CLAIM_BATCH)
        used = sum(cpu_seconds(pid)) - before
    finally:
        await conn.close()
    return f"{used:.2f} s of PostgreSQL CPU for {claims:,} claims with nothing due ({used / claims * 1000:.2f} ms each)"


async def run_dispatchers(url: str, smtp_url: str, dispatchers: int) -> None:
    """The notification process, its dispatchers only: they start when stdin says go."""
    from services.notification.channels import Mailer
    from services.notification.dispatch import Dispatcher
    from services.runtime import logging as logs

    logs.configure("notification", os.environ.get("LOG_LEVEL", "info"))
    pool = await db.connect_pool(url, "notification")
    held = [await pool.acquire() for _ in range(dispatchers)]  # the sessions open before the clock starts
    for conn in held:
        await pool.release(conn)
    running = [Dispatcher(pool, Mailer(smtp_url, "orders@orderflow.example"), on_recorded=lambda: None)
               for _ in range(dispatchers)]
    print("ready", file=sys.stderr, flush=True)  # stdout is the service's log
    await asyncio.to_thread(sys.stdin.readline)
    tasks = [asyncio.create_task(d.run()) for d in running]
    await asyncio.to_thread(sys.stdin.read)
    for task in tasks:
        task.cancel()
    await pool.close()


def start(role: list[str], stdout, ready_on) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-m", "benchmarks.notification_dispatch", *role],
                               stdin=subprocess.PIPE, stdout=stdout, stderr=subprocess.PIPE, text=True)
    while (line := getattr(process, ready_on).readline()) != "ready\n":
        if not line:
            raise RuntimeError(f"{role[1]} did not start: {process.stderr.read()}")
    return process


async def measure(mails: int, dispatchers: int, timeout: float, orphans: int) -> None:
    admin_url, where = postgres.ensure_database()
    name = f"orderflow_dispatch_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(admin_url)
    await admin.execute(f"CREATE DATABASE {name}")
    url = db.with_database(admin_url, name)
    processes: list[subprocess.Popen] = []
    sink: subprocess.Popen | None = None
    try:
        login = db.local_url(url, "notification")
        await db.set_up(url, "notification", login)
        watcher = await asyncpg.connect(url)  # the admin, on the benchmark's database
        began = time.perf_counter()
        await fill(login, mails, orphans)
        print(f"{mails} notifications queued in {time.perf_counter() - began:.1f} s ({where}, database {name})"
              + (f", after {orphans} of orders whose OrderPlaced never comes" if orphans else ""))
        if orphans:
            await watcher.execute(f"VACUUM ANALYZE {db.schema('notification')}.notification_outbox")
            print(f"  a claim with every mail due: {await claim_cost(login)}")
        with tempfile.TemporaryDirectory() as folder, open(Path(folder) / "notification.log", "w") as log:
            port = free_port()
            sink = start_sink_process(Path(folder) / "mail", port)
            notification = start(["--role", "dispatch", "--url", login, "--smtp", f"smtp://127.0.0.1:{port}",
                                  "--dispatchers", str(dispatchers)], log, "stderr")
            processes.append(notification)
            started = {"notification": [notification.pid], "sink": [sink.pid]}
            before = {pid: cpu_seconds(pid) for pid in [notification.pid, sink.pid, *await sessions(admin, name)]}
            load_before = os.getloadavg()[0]
            began = time.perf_counter()
            notification.stdin.write("go\n")
            notification.stdin.flush()
            done = 0
            while done < mails and time.perf_counter() - began < timeout:
                await asyncio.sleep(0.05)
                done = await watcher.fetchval(
                    f"SELECT count(*) FROM {db.schema('notification')}.notification_outbox "
                    "WHERE sent_at IS NOT NULL OR failed_reason IS NOT NULL")
            elapsed = time.perf_counter() - began
            # A session the pool opened meanwhile counts from its start.
            used = {}
            for what, pids in (started | {"postgres": await sessions(admin, name)}).items():
                user = system = 0.0
                for p in pids:
                    (u, s), (u0, s0) = cpu_seconds(p), before.get(p, (0.0, 0.0))
                    user, system = user + u - u0, system + s - s0
                used[what] = (user, system)
            for process in processes:
                process.stdin.close()
                process.wait(timeout=30)
            sink.terminate()
            sink.wait(timeout=30)
            report(mails, done, elapsed, used, load_before)
            if orphans:
                print(f"  a claim with nothing due: {await claim_cost(login)}")
                print(f"  {await idle_claims_cpu(login, IDLE_CLAIMS)}")
            await check(watcher, Path(folder) / "mail", mails)
            await watcher.close()
    finally:
        for process in processes + ([sink] if sink else []):
            if process.poll() is None:
                process.kill()
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()


async def sessions(admin: asyncpg.Connection, name: str) -> list[int]:
    """The backend pids of the notification service's sessions on the database."""
    return [r["pid"] for r in await admin.fetch(
        "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND usename = $2", name, db.role("notification"))]


def report(mails: int, done: int, elapsed: float, used: dict[str, tuple[float, float]], load_before: float) -> None:
    print(f"{done} of {mails} settled in {elapsed:.2f} s: {done / elapsed:,.0f} mails/s "
          f"(load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after)")
    for what, (user, system) in used.items():
        print(f"  CPU {what:<13} {user + system:6.2f} s = {(user + system) / done * 10_000:6.2f} s per 10,000 mails "
              f"({user / done * 10_000:.2f} user, {system / done * 10_000:.2f} system)")


async def check(watcher: asyncpg.Connection, mail_folder: Path, mails: int) -> None:
    schema = db.schema("notification")
    message_ids = [message_from_bytes(p.read_bytes(), policy=policy.default)["Message-ID"]
                   for p in mail_folder.glob("*.eml")]
    events = await watcher.fetchval(f"SELECT count(*) FROM {schema}.events WHERE type = 'NotificationSent'")
    failed = await watcher.fetchval(f"SELECT count(*) FROM {schema}.notification_outbox WHERE failed_reason IS NOT NULL")
    ok = len(message_ids) == len(set(message_ids)) == events == mails and not failed
    print(f"  {'ok' if ok else 'NOT OK'}: {len(message_ids)} mails, {len(set(message_ids))} distinct Message-IDs, "
          f"{events} NotificationSent, {failed} failed")
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mails", type=int, default=10_000)
    parser.add_argument("--dispatchers", type=int, help="per process; the service's own number if not given")
    parser.add_argument("--timeout", type=float, default=600, help="seconds the sending may take")
    parser.add_argument("--orphans", type=int, default=0,
                        help="notifications of orders whose OrderPlaced never comes, queued first")
    parser.add_argument("--role", choices=("measure", "dispatch"), default="measure", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--smtp", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "dispatch":
        asyncio.run(run_dispatchers(args.url, args.smtp, args.dispatchers))
    else:
        from services.notification.app import DISPATCHERS

        asyncio.run(measure(args.mails, args.dispatchers or DISPATCHERS, args.timeout, args.orphans))
