"""Inventory state that stays small: times the inventory's handler (one transaction on PostgreSQL, loading
and saving what it touches) for four operations on a SKU with a short and with a 100,000-long backorder
queue, and prints each and their ratio.

    uv run python -m benchmarks.inventory_state [--waiting 100000] [--repeat 15]

Every backorder is 1 unit; a purchase order of 1,000 units covers the head of each queue. A receipt that
fills 500 needs 500 waiting and a reschedule that moves 1,000 ETAs needs 1,000 covered, so those two are
compared with the smallest queue on which they do the same work (1,100 waiting)."""

import argparse
import asyncio
import statistics
import time
import uuid
from datetime import date

import asyncpg

from contracts.commands import ExpectReplenishment, OrderLine, ReceiveStock, RegisterProduct, RescheduleReplenishment
from contracts.events import CancellationRequested, OrderPlaced
from contracts.topics import INVENTORY_COMMANDS, ORDERS_EVENTS
from infra import postgres
from services.inventory import handlers
from services.runtime import db
from services.runtime import logging as logs
from services.runtime.messages import Message
from contracts.envelope import Envelope

TODAY = date(2026, 11, 25)
PO_DATES = (date(2026, 12, 20), date(2026, 12, 27))


def message(topic: str, body) -> Message:
    return Message(Envelope.wrap(body, source="benchmark"), body, topic)


def placed(sku: str, order_id: str) -> Message:
    return message(ORDERS_EVENTS, OrderPlaced(order_id=order_id, customer_id="c", customer_email="c@example.com",
                                              lines=[OrderLine(sku=sku, quantity=1)]))


async def timed(pool: asyncpg.Pool, messages: list[Message]) -> float:
    started = time.perf_counter()
    async with pool.acquire() as conn, conn.transaction():
        await handlers.handle(conn, messages, TODAY)
    return time.perf_counter() - started


async def queue_of(pool: asyncpg.Pool, sku: str, waiting: int) -> list[float]:
    """A product with `waiting` backorders of 1 unit, the first 1,000 covered by a purchase order; returns
    the seconds each batch of 1,000 placements took."""
    await timed(pool, [message(INVENTORY_COMMANDS, RegisterProduct(sku=sku, name=sku, lead_time_days=30)),
                       message(INVENTORY_COMMANDS, ExpectReplenishment(po_id=f"{sku}-po", sku=sku, quantity=1000,
                                                                       expected_on=PO_DATES[0]))])
    batches = [await timed(pool, [placed(sku, f"{sku}-{i}") for i in range(start, min(start + 1000, waiting))])
               for start in range(0, waiting, 1000)]
    await pool.execute("ANALYZE")  # as autovacuum would have by now on a live system
    return batches


async def measure(pool: asyncpg.Pool, waiting: int, repeat: int) -> dict[str, tuple[float, int]]:
    """Median seconds of each operation on a queue of `waiting`, and the work it did (ETAs moved, fills)."""
    sku = f"Q{waiting}-{uuid.uuid4().hex[:6]}"
    batches = await queue_of(pool, sku, waiting)
    if len(batches) >= 20:
        first, last = sum(batches[:10]), sum(batches[-10:])
        print(f"placing backorders in batches of 1,000: {10_000 / first:,.0f} orders/s for the first 10,000, "
              f"{10_000 / last:,.0f} orders/s for the last 10,000 ({first / last:.2f} of the first)")
    results = {}
    times = [await timed(pool, [placed(sku, f"{sku}-new-{r}")]) for r in range(repeat)]
    results["place an order"] = (statistics.median(times), 1)
    times = [await timed(pool, [message(ORDERS_EVENTS, CancellationRequested(
        order_id=f"{sku}-{waiting // 2 + r}", skus=[sku]))]) for r in range(repeat)]
    results["cancel one mid-queue"] = (statistics.median(times), 1)
    times = []
    for r in range(repeat):
        times.append(await timed(pool, [message(INVENTORY_COMMANDS, RescheduleReplenishment(
            po_id=f"{sku}-po", sku=sku, expected_on=PO_DATES[(r + 1) % 2]))]))
    moved = await pool.fetchval("SELECT count(*) FROM events WHERE stream_id = $1 AND type = 'BackorderEtaChanged'", sku)
    results["reschedule the purchase order"] = (statistics.median(times), moved // repeat)
    times = []
    for r in range(repeat):
        times.append(await timed(pool, [message(INVENTORY_COMMANDS, ReceiveStock(receipt_id=f"{sku}-r{r}", sku=sku,
                                                                                  quantity=500))]))
        await timed(pool, [placed(sku, f"{sku}-refill-{r}-{i}") for i in range(500)])  # keep the queue's length
    fills = await pool.fetchval("SELECT count(*) FROM events WHERE stream_id = $1 AND type = 'BackorderFulfilled'", sku)
    results["receive 500"] = (statistics.median(times), fills // repeat)
    return results


async def main(waiting: int, repeat: int) -> None:
    logs.configure("benchmark", "warning")
    admin_url, _ = postgres.ensure_database()
    name = f"orderflow_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(admin_url)
    await admin.execute(f"CREATE DATABASE {name}")
    try:
        bench_admin_url = db.with_database(admin_url, name)
        url = db.local_url(bench_admin_url, "inventory")
        await db.set_up(bench_admin_url, "inventory", url)
        pool = await db.connect_pool(url, "inventory", max_size=2)
        sizes = (100, 1100, waiting)
        runs = {}
        for size in sizes:
            started = time.perf_counter()
            runs[size] = await measure(pool, size, repeat)
            print(f"queue of {size:>7,}: measured in {time.perf_counter() - started:.0f} s")
        await pool.close()
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()
    print(f"\nmedian of {repeat}, ms per operation (its own transaction), work done in brackets")
    print(f"{'operation':<32}" + "".join(f"{f'{s:,} waiting':>22}" for s in sizes) + f"{'ratio':>8}")
    for op in runs[sizes[0]]:
        baseline = 100 if op in ("place an order", "cancel one mid-queue") else 1100
        cells = "".join(f"{runs[s][op][0] * 1000:>13.2f} ({runs[s][op][1]:>5})" for s in sizes)
        print(f"{op:<32}{cells}{runs[waiting][op][0] / runs[baseline][op][0]:>7.2f}x  (vs {baseline:,})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--waiting", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    asyncio.run(main(args.waiting, args.repeat))
