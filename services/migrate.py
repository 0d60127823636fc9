"""Sets up the services' databases as the admin (DATABASE_URL): each service's login role, with the
name and password of its own URL (ORDER_DATABASE_URL, ...), its schema and grants, then its migrations.
`python -m services.migrate` for all three, or name the services whose server DATABASE_URL is:
`python -m services.migrate order`. Run it before the services start, and again on each upgrade."""

import argparse
import asyncio

from services.runtime import db
from services.runtime.settings import DEFAULT_ADMIN_DATABASE_URL, admin_database_url, load

SERVICES = ("order", "inventory", "notification")


async def main(services: list[str]) -> None:
    admin_url = admin_database_url() or DEFAULT_ADMIN_DATABASE_URL
    for service in services:
        applied = await db.set_up(admin_url, service, load(service).database_url.get_secret_value())
        print(f"{service}: set up, {len(applied)} migrations applied")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("services", nargs="*", metavar="service", help=f"{', '.join(SERVICES)}; all when none is named")
    services = parser.parse_args().services or list(SERVICES)
    if unknown := sorted(set(services) - set(SERVICES)):
        parser.error(f"no such service: {', '.join(unknown)}")
    asyncio.run(main(services))
