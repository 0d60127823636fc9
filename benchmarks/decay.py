"""Does throughput decay as the stores fill? Measures a load on a fresh stack of its own, drives orders through
the services until the stores hold N orders (1,000,000 by default), measures the same load again, and prints both
and their ratio (the issue's target: within 10%).

    make bench-decay                                        # 10,000 measured, 1,000,000 in the stores
    make bench-decay ARGS="--orders-in-store 100000"        # a shorter run

The stores are filled by the services themselves, never by SQL: the measured load (same orders, SKUs and stock)
is sent again and again, each round waiting until every order was mailed, and each round's figures are printed,
which shows any decay as it sets in. Each round and measurement also prints the pages PostgreSQL read in per
order (not found in its shared buffers), and the largest tables and indexes are printed before the second
measurement: whether a working set outgrowing shared_buffers explains a decay."""

import argparse
import asyncio
import logging
import time
import uuid

import asyncpg
import structlog

from benchmarks.stack import own_stack
from benchmarks.throughput import Load, Run, arguments, load_average, measured, report, warm_up
from infra import STATE

ORDERS_IN_STORE = "SELECT count(*) FROM order_service.orders"
# Pages each measured window needed: found in PostgreSQL's shared buffers, or read in (from the OS's cache or
# the disk). A working set outgrowing shared_buffers shows as reads per order rising.
BUFFERS = "SELECT blks_hit, blks_read FROM pg_stat_database WHERE datname = current_database()"
LARGEST = """
SELECT n.nspname || '.' || c.relname AS name, c.relkind::text, pg_relation_size(c.oid) AS bytes
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname LIKE '%_service' AND c.relkind IN ('r', 'i') ORDER BY bytes DESC LIMIT 12
"""
EVENTS_IN_STORES = ("SELECT (SELECT count(*) FROM order_service.events) + (SELECT count(*) FROM inventory_service.events)"
                    " + (SELECT count(*) FROM notification_service.events)")


async def measure(label: str, stack, load: Load, args: argparse.Namespace, books: asyncpg.Connection) -> Run:
    await load.set_up()
    hit, read = await books.fetchrow(BUFFERS)
    run, cost_table = await measured(stack, load, args.orders, args.rate, args.timeout)
    hit_after, read_after = await books.fetchrow(BUFFERS)
    print(f"\n{label} ({load_average()})")
    print("\n".join(f"  {line}" for line in report(run)))
    shared_buffers = await books.fetchval("SHOW shared_buffers")
    print(f"  PostgreSQL pages per order: {(hit_after - hit) / args.orders:.1f} found in shared buffers, "
          f"{(read_after - read) / args.orders:.2f} read in (shared_buffers {shared_buffers})")
    print("\n".join(f"  {line}" for line in cost_table.splitlines()))
    return run


async def main(args: argparse.Namespace) -> None:
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    async with own_stack(STATE / "bench" / f"decay-{uuid.uuid4().hex[:8]}", keep=args.keep) as stack:
        print(f"own stack: {stack.description}")
        books = await asyncpg.connect(stack.admin_url)
        async with Load(stack.bootstrap_servers, {}, args.skus, args.stock) as load:
            await warm_up(load, args.warm_up, args.timeout)
            fresh = await measure("fresh stack", stack, load, args, books)
            began = time.monotonic()
            in_store = await books.fetchval(ORDERS_IN_STORE)
            while in_store < args.orders_in_store:
                await load.set_up()
                _, read = await books.fetchrow(BUFFERS)
                round_ = await load.run(min(args.orders, args.orders_in_store - in_store), 0, args.timeout)
                in_store, (_, read_after) = await books.fetchval(ORDERS_IN_STORE), await books.fetchrow(BUFFERS)
                elapsed = time.monotonic() - began
                print(f"  {in_store:>10,} orders in the store after {elapsed:7.0f} s: this round "
                      f"{round_.rate(round_.allocated_at):,.0f} allocated/s, {round_.rate(round_.status_at):,.0f} "
                      f"to a status/s, {round_.rate(round_.mailed_at):,.0f} mailed/s, "
                      f"{(read_after - read) / round_.orders:.2f} pages read in per order ({load_average()})", flush=True)
            events = await books.fetchval(EVENTS_IN_STORES)
            print(f"\nthe stores now hold {in_store:,} orders and {events:,} events")
            print("the largest tables (r) and indexes (i):")
            for name, kind, size in await books.fetch(LARGEST):
                print(f"  {size / 2**20:8,.1f} MiB  {kind}  {name}")
            filled = await measure(f"with {in_store:,} orders in the stores", stack, load, args, books)
        await books.close()
    print("\nafter / fresh")
    for what, attribute in (("allocated", "allocated_at"), ("to a status", "status_at"), ("mailed", "mailed_at")):
        before, after = fresh.rate(getattr(fresh, attribute)), filled.rate(getattr(filled, attribute))
        print(f"  orders/s {what:<12} {before:8,.0f} -> {after:8,.0f}  ratio {after / before if before else 0:.2f}")


if __name__ == "__main__":
    parser = arguments(argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter))
    parser.set_defaults(orders=10_000)
    parser.add_argument("--orders-in-store", type=int, default=1_000_000,
                        help="orders the stores hold before the second measurement (the first run's included)")
    parser.add_argument("--keep", action="store_true", help="keep the stack's logs, mails and broker data")
    asyncio.run(main(parser.parse_args()))
