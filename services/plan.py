"""`make plan`: a planning run now (the job the inventory service runs every PLANNING_S; what it finds is
told once, as from the service), then a table per SKU and a PNG chart of one SKU's demand history,
forecast and stock: `make plan ARGS="--sku ANVIL --chart anvil.png"`."""

import argparse
import asyncio
from pathlib import Path

from services.inventory import planner
from services.inventory.planning import policy, report
from services.runtime import clock, db
from services.runtime.settings import load


async def main(sku: str | None, chart: Path | None) -> None:
    settings = load("inventory")
    database_url = settings.database_url.get_secret_value()
    pool = await db.connect_pool(database_url, "inventory", max_size=2)
    try:
        if await planner.run(pool, clock.today(), planner.in_process,
                             policy.Settings(overstock_days=settings.overstock_days)) is None:
            print("an inventory instance is planning now: the plans of its last run")
        rows, chart_sku, png = await planner.view(pool, sku)
    finally:
        await pool.close()
    if not rows:
        print("no products to plan yet")
        return
    print(report.table(rows))
    if png:
        path = chart or Path(f"plan-{chart_sku}.png")
        path.write_bytes(png)
        print(f"\nchart of {chart_sku}: {path}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="make plan", description=__doc__)
    parser.add_argument("--sku", help="the SKU to chart (default: the most urgent)")
    parser.add_argument("--chart", type=Path, help="where to write the PNG (default: plan-<sku>.png)")
    args = parser.parse_args()
    asyncio.run(main(args.sku, args.chart))
