"""Event-store append, ours against pyeventsourcing, side by side in one run on the same PostgreSQL.

    uv run python -m benchmarks.eventstore [--events 200000] [--repeat 3]

The same work on both sides, timed from objects to committed rows: aggregates of two events (an order line
placed, then reserved) are built, serialised and appended in transactions of 100 to 5,000 events, committed with
the server's `synchronous_commit` (what the services run with; printed). Ours is
`services.runtime.eventstore.append`. pyeventsourcing 9.5.6 (`Application.save` of 50 to 2,500 aggregates, psycopg
3 with its C build) is tried in both of its insert modes, an executemany in a pipeline and its insert function
(`POSTGRES_ENABLE_DB_FUNCTIONS`); it runs in a throwaway environment this script makes under .local/, so it never
becomes a dependency of the project. Smaller saves only lose it more to commits (one aggregate per save: under
1,000 events/s).

The ceiling: the same rows serialised before the clock starts and appended with the store's own statement (a
binary COPY, whose insert takes the append lock) is what PostgreSQL itself takes on this machine; no store can
go faster.

`--fill N` instead appends N events into one store that is never emptied, 500 per transaction, and prints the
rate of each tenth of them: whether appends slow down as the store grows.

Each figure is the median of `--repeat` runs in events per second, with the CPU microseconds per event of the
Python process and of the PostgreSQL server processes serving it (read from /proc, so for a local server: less
distorted than wall time when the machine is shared). The last lines compare the best mode of each."""

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import time
import uuid
from urllib.parse import unquote, urlsplit

import asyncpg

from benchmarks.throwaway import python_with
from contracts.commands import OrderLine
from contracts.events import OrderLineReserved, OrderPlaced
from infra import postgres
from services.runtime import db
from services.runtime.eventstore import COLUMNS, NewEvent, append, new_event_ids

PYEVENTSOURCING = "eventsourcing[postgres]==9.5.6"
BATCHES = (100, 500, 1000, 5000)  # events per transaction, on both sides
THEIR_MODES = {"pipeline": "n", "insert function": "y"}  # POSTGRES_ENABLE_DB_FUNCTIONS


class Run:
    """One timed run: events per second, CPU microseconds per event of Python and of the server backend."""

    def __init__(self, events: int, seconds: float, python_cpu_s: float, backend_cpu_s: float | None = None):
        self.rate = events / seconds
        self.python_us = python_cpu_s * 1e6 / events
        self.backend_us = None if backend_cpu_s is None else backend_cpu_s * 1e6 / events


def theirs(url: str, events: int, per_transaction: int, db_functions: str) -> tuple[Run, str]:
    """One run of pyeventsourcing, and the synchronous_commit its connection ran with."""
    parts = urlsplit(url)
    env = os.environ | {
        "POSTGRES_DBNAME": parts.path.lstrip("/"), "POSTGRES_HOST": parts.hostname or "127.0.0.1",
        "POSTGRES_PORT": str(parts.port or 5432), "POSTGRES_USER": unquote(parts.username or ""),
        "POSTGRES_PASSWORD": unquote(parts.password or ""), "POSTGRES_SCHEMA": f"pyes_{uuid.uuid4().hex[:8]}",
        "POSTGRES_ENABLE_DB_FUNCTIONS": db_functions,
        "AGGREGATES": str(events // 2), "EVENTS_PER_AGGREGATE": "2", "PER_SAVE": str(per_transaction // 2),
    }
    done = subprocess.run([python_with("pyeventsourcing-9.5.6", PYEVENTSOURCING, "psycopg[binary]"), "-m",
                           "benchmarks.pyeventsourcing_append"], env=env, check=True,
                          stdout=subprocess.PIPE, text=True)
    result = json.loads(done.stdout.splitlines()[-1])
    return (Run(result["events"], result["seconds"], result["python_cpu_seconds"], result["backend_cpu_seconds"]),
            result["synchronous_commit"])


def line_events(run: str, first: int, last: int) -> list[NewEvent]:
    """The events of aggregates first..last-1: a line placed, then reserved."""
    events = []
    for i in range(first, last):
        order_id, sku = f"o-{run}-{i}", f"sku-{i % 50}"
        placed = OrderPlaced(order_id=order_id, customer_id="c", customer_email="c@example.com",
                             lines=[OrderLine(sku=sku, quantity=3)])
        events.append(NewEvent(order_id, 1, placed, order_id, order_id))
        events.append(NewEvent(order_id, 2, OrderLineReserved(order_id=order_id, sku=sku, quantity=1), order_id,
                               order_id))
    return events


async def ours(conn: asyncpg.Connection, backend: int, events: int, per_transaction: int) -> Run:
    await conn.execute("TRUNCATE events")
    run, per_aggregate = uuid.uuid4().hex[:6], per_transaction // 2
    started, cpu, backend_cpu = time.perf_counter(), time.process_time(), cpu_seconds(backend)
    for first in range(0, events // 2, per_aggregate):
        batch = line_events(run, first, min(first + per_aggregate, events // 2))
        async with conn.transaction():
            await append(conn, batch)
    return Run(events, time.perf_counter() - started, time.process_time() - cpu, cpu_seconds(backend) - backend_cpu)


async def ceiling(conn: asyncpg.Connection, backend: int, events: int, per_transaction: int) -> Run:
    """The store's statements alone, on rows serialised before the clock starts."""
    await conn.execute("TRUNCATE events")
    rows = [(e.stream_id, e.version, event_id, type(e.event).__name__, e.event.model_dump_json(), e.correlation_id,
             e.causation_id, e.traceparent)
            for e, event_id in zip(line_events(uuid.uuid4().hex[:6], 0, events // 2), new_event_ids(events))]
    started, cpu, backend_cpu = time.perf_counter(), time.process_time(), cpu_seconds(backend)
    for first in range(0, events, per_transaction):
        async with conn.transaction():
            await conn.copy_records_to_table("events", records=rows[first:first + per_transaction], columns=COLUMNS)
    return Run(events, time.perf_counter() - started, time.process_time() - cpu, cpu_seconds(backend) - backend_cpu)


async def fill(conn: asyncpg.Connection, backend: int, events: int, per_transaction: int = 500) -> None:
    await conn.execute("TRUNCATE events")
    run, per_aggregate, tenth = uuid.uuid4().hex[:6], per_transaction // 2, events // 10
    started, cpu, backend_cpu, done = time.perf_counter(), time.process_time(), cpu_seconds(backend), 0
    for first in range(0, events // 2, per_aggregate):
        batch = line_events(run, first, min(first + per_aggregate, events // 2))
        async with conn.transaction():
            await append(conn, batch)
        done += len(batch)
        if done % tenth < len(batch):
            report(f"{done:>10,} events in the store",
                   [Run(tenth, time.perf_counter() - started, time.process_time() - cpu,
                        cpu_seconds(backend) - backend_cpu)])
            started, cpu, backend_cpu = time.perf_counter(), time.process_time(), cpu_seconds(backend)


def cpu_seconds(pid: int) -> float | None:
    """User and system CPU of a local process so far, None when it cannot be read (a remote server)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def report(label: str, runs: list[Run]) -> float:
    rate = statistics.median(r.rate for r in runs)
    cpu = f"python {statistics.median(r.python_us for r in runs):5.1f}"
    if all(r.backend_us is not None for r in runs):
        cpu += f", postgres {statistics.median(r.backend_us for r in runs):5.1f}"
    print(f"  {label:<48} {rate:>9,.0f} events/s   CPU us/event: {cpu}", flush=True)
    return rate


async def scratch_database(admin_url: str) -> str:
    name = f"orderflow_bench_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(admin_url)
    await conn.execute(f"CREATE DATABASE {name}")
    await conn.close()
    return db.with_database(admin_url, name)


async def drop_database(admin_url: str, url: str) -> None:
    conn = await asyncpg.connect(admin_url)
    await conn.execute(f"DROP DATABASE IF EXISTS {urlsplit(url).path.lstrip('/')} WITH (FORCE)")
    await conn.close()


async def main(events: int, repeat: int, filled: int | None) -> None:
    admin_url, where = postgres.ensure_database()
    url = await scratch_database(admin_url)
    print(f"PostgreSQL: {where}; {events:,} events per run, median of {repeat}; "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)
    try:
        login = db.local_url(url, "order")
        await db.set_up(url, "order", login)
        conn = await asyncpg.connect(login, server_settings=db.session_settings("order"))
        backend = await conn.fetchval("SELECT pg_backend_pid()")
        print(f"orderflow (synchronous_commit {await conn.fetchval('SHOW synchronous_commit')})", flush=True)
        if filled:
            return await fill(conn, backend, filled)
        best_ours, best_ceiling = 0.0, 0.0
        for batch in BATCHES:
            rate = report(f"{batch:>5} events per transaction",
                          [await ours(conn, backend, events, batch) for _ in range(repeat)])
            best_ours = max(best_ours, rate)
        print("PostgreSQL alone: the same rows serialised before the clock, binary COPY", flush=True)
        for batch in BATCHES:
            rate = report(f"{batch:>5} events per transaction",
                          [await ceiling(conn, backend, events, batch) for _ in range(repeat)])
            best_ceiling = max(best_ceiling, rate)
        await conn.close()
        best_theirs, best_mode = 0.0, ""
        for mode, db_functions in THEIR_MODES.items():
            runs = [theirs(url, events, batch, db_functions) for batch in BATCHES for _ in range(repeat)]
            print(f"pyeventsourcing 9.5.6, {mode} (synchronous_commit {runs[0][1]})", flush=True)
            for i, batch in enumerate(BATCHES):
                rate = report(f"{batch:>5} events per save ({batch // 2} aggregates)",
                              [run for run, _ in runs[i * repeat:(i + 1) * repeat]])
                if rate > best_theirs:
                    best_theirs, best_mode = rate, f"{mode}, {batch} events per save"
        print(f"best of each: orderflow {best_ours:,.0f} events/s, pyeventsourcing {best_theirs:,.0f} events/s "
              f"({best_mode}): {best_ours / best_theirs:.1f}x")
        print(f"the ceiling, PostgreSQL alone: {best_ceiling:,.0f} events/s, {best_ceiling / best_theirs:.1f}x "
              f"pyeventsourcing; load average {os.getloadavg()[0]:.2f}")
    finally:
        await drop_database(admin_url, url)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--fill", type=int, help="append this many events into one store, the rate per tenth")
    args = parser.parse_args()
    asyncio.run(main(args.events, args.repeat, args.fill))
