"""Daily demand per SKU: what was ordered, backordered units included (sales alone under-count demand
while a SKU is out of stock), one number per day, days without orders as zeros."""

from collections.abc import Mapping, Sequence
from datetime import date, timedelta

# Syntetos & Boylan: demand arriving on average less often than every 1.32 days is intermittent, and is
# better forecast by size and interval separately (Croston) than by smoothing the zeros away.
INTERMITTENT_INTERVAL = 1.32


def daily_series(demand: Mapping[date, int], start: date, end: date) -> list[int]:
    """Demand on each day from `start` to `end` inclusive."""
    return [demand.get(start + timedelta(days=n), 0) for n in range((end - start).days + 1)]


def is_intermittent(series: Sequence[float]) -> bool:
    days_with_demand = sum(1 for q in series if q > 0)
    return days_with_demand == 0 or len(series) / days_with_demand > INTERMITTENT_INTERVAL
