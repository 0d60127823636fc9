"""`make simulate ARGS="--slice"`, short: days of the simulated world through the real order and inventory
services on a broker of their own (on a simulated clock), and what inventory publishes equals what the
in-process simulation of those days decided, day by day and SKU by SKU."""

import pytest

from simulation.slice import on_a_stack
from simulation.world import products

pytestmark = pytest.mark.timeout(600)


async def test_the_services_publish_what_the_simulation_decides_on_the_same_days(postgres_url):
    # Seed 3 and 8 SKUs: lead times learned from the history, suggestions turned into purchase orders by the
    # buyer, and one SKU that runs short before its purchase order comes, within 6 days.
    outcome = await on_a_stack(products(8, 6, seed=3), 6, 3, postgres_url)

    totals = outcome.totals()
    print(totals)
    assert outcome.differences() == []
    assert totals["lead time learned (days, delay)"] == (8, 8)
    assert totals["suggested (quantity, position, reorder point, expected)"][1] >= 5
    assert totals["backordered, ETA"][1] >= 1
