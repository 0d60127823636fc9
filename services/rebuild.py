"""Drops and rebuilds a service's read models (and the inventory's SKU rows) from its event store:
`make rebuild SERVICE=order` (or `inventory`). Safe while the service runs: its appends wait for the
rebuild's transaction. The notification service's read models are built from other services' events and
are not rebuilt here."""

import argparse
import asyncio
import sys

from services.inventory import handlers as inventory
from services.order import handlers as order
from services.runtime import clock, db
from services.runtime.settings import load

REBUILDERS = {
    "order": order.rebuild,
    "inventory": lambda conn, progress: inventory.rebuild(conn, clock.today(), progress),
}


def progress_bar(done: int, total: int, width: int = 30) -> None:
    filled = width * done // total if total else width
    print(f"\r  [{'#' * filled}{'.' * (width - filled)}] {done:,} / {total:,} events", end="", file=sys.stderr,
          flush=True)


async def main(service: str) -> None:
    # As the service itself: its read models are its own tables.
    pool = await db.connect_pool(load(service).database_url.get_secret_value(), service, max_size=1)
    async with pool.acquire() as conn:
        await REBUILDERS[service](conn, progress_bar)
    await pool.close()
    print(f"\nrebuilt the {service} read models from its event store")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("service", choices=sorted(REBUILDERS))
    asyncio.run(main(parser.parse_args().service))
