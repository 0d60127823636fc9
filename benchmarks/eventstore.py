"""Event-store append, ours against pyeventsourcing, side by side in one run on the same PostgreSQL.

    uv run python -m benchmarks.eventstore [--events 200000] [--repeat 3]

Both store the same shape: aggregates of two events (an order line placed, then reserved), serialised from
objects to rows inside the timed loop. Ours is `services.runtime.eventstore.append` in transactions of 100 to
5,000 events; pyeventsourcing 9.5.6 (`Application.save` of 1 to 1,000 aggregates at a time, psycopg 3 with
its C build) runs in a throwaway environment this script makes under .local/, so it never becomes a dependency
of the project. Each figure is the median of `--repeat` runs in events per second; the last line compares the
best mode of each."""

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from urllib.parse import unquote, urlsplit

import asyncpg

from contracts.commands import OrderLine
from contracts.events import OrderLineReserved, OrderPlaced
from infra import STATE, postgres
from services.runtime import db
from services.runtime.eventstore import NewEvent, append

PYEVENTSOURCING = "eventsourcing[postgres]==9.5.6"
OUR_BATCHES = (100, 500, 1000, 5000)
THEIR_BATCHES = (1, 10, 100, 1000)  # aggregates per save; 2 events each


def their_python() -> str:
    """The Python of a private environment with pyeventsourcing, made once."""
    venv = STATE / "benchmarks" / "pyeventsourcing-9.5.6"
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", PYEVENTSOURCING, "psycopg[binary]"], check=True)
    return str(python)


def theirs(url: str, events: int, per_save: int) -> float:
    parts = urlsplit(url)
    env = os.environ | {
        "POSTGRES_DBNAME": parts.path.lstrip("/"), "POSTGRES_HOST": parts.hostname or "127.0.0.1",
        "POSTGRES_PORT": str(parts.port or 5432), "POSTGRES_USER": unquote(parts.username or ""),
        "POSTGRES_PASSWORD": unquote(parts.password or ""), "POSTGRES_SCHEMA": f"pyes_{uuid.uuid4().hex[:8]}",
        "AGGREGATES": str(events // 2), "EVENTS_PER_AGGREGATE": "2", "PER_SAVE": str(per_save),
    }
    done = subprocess.run([their_python(), "-m", "benchmarks.pyeventsourcing_append"], env=env, check=True,
                          stdout=subprocess.PIPE, text=True)
    result = json.loads(done.stdout.splitlines()[-1])
    return result["events"] / result["seconds"]


async def ours(pool: asyncpg.Pool, events: int, per_transaction: int) -> float:
    await pool.execute("TRUNCATE events")
    run = uuid.uuid4().hex[:6]
    started = time.perf_counter()
    for first in range(0, events // 2, per_transaction // 2):
        rows = []
        for i in range(first, min(first + per_transaction // 2, events // 2)):
            order_id, sku = f"o-{run}-{i}", f"sku-{i % 50}"
            placed = OrderPlaced(order_id=order_id, customer_id="c", customer_email="c@example.com",
                                 lines=[OrderLine(sku=sku, quantity=3)])
            rows.append(NewEvent(order_id, 1, placed, order_id, order_id))
            rows.append(NewEvent(order_id, 2, OrderLineReserved(order_id=order_id, sku=sku, quantity=1), order_id, order_id))
        async with pool.acquire() as conn, conn.transaction():
            await append(conn, rows)
    return events / (time.perf_counter() - started)


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


def median_of(repeat: int, run) -> float:
    return statistics.median(run() for _ in range(repeat))


async def main(events: int, repeat: int) -> None:
    admin_url, where = postgres.ensure_database()
    url = await scratch_database(admin_url)
    print(f"PostgreSQL: {where}; {events:,} events per run, median of {repeat}", flush=True)
    try:
        login = db.local_url(url, "order")
        await db.set_up(url, "order", login)
        pool = await db.connect_pool(login, "order", max_size=1)
        best_ours = 0.0
        for batch in OUR_BATCHES:
            rates = [await ours(pool, events, batch) for _ in range(repeat)]
            rate = statistics.median(rates)
            best_ours = max(best_ours, rate)
            print(f"  orderflow       {batch:>5} events per transaction      {rate:>10,.0f} events/s", flush=True)
        await pool.close()
        best_theirs = 0.0
        for per_save in THEIR_BATCHES:
            rate = median_of(repeat, lambda: theirs(url, events, per_save))
            best_theirs = max(best_theirs, rate)
            print(f"  pyeventsourcing {per_save:>5} aggregates per save ({2 * per_save} events) {rate:>10,.0f} events/s",
                  flush=True)
        print(f"best of each: orderflow {best_ours:,.0f} events/s, pyeventsourcing {best_theirs:,.0f} events/s: "
              f"{best_ours / best_theirs:.1f}x")
    finally:
        await drop_database(admin_url, url)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.events, args.repeat))
