"""The simulated world: products, a year of daily demand per SKU (trend, weekly seasonality, noise, some
intermittent SKUs, a demand shock), and suppliers that deliver late at random and sometimes in part."""

import math
import random
from dataclasses import dataclass

HISTORY_DAYS = 120  # demand known before the simulated year starts: what the first forecast learns from
WEEKLY = (1.0, 1.05, 1.0, 1.1, 1.35, 0.8, 0.7)  # Monday first


@dataclass(frozen=True, slots=True)
class Product:
    sku: str
    lead_time_days: int  # what the product setting says
    supplier_bias: float  # the supplier's real lead time is the setting times this, on average
    intermittent: bool
    demand: tuple[int, ...]  # HISTORY_DAYS of history, then the simulated days

    @property
    def history_mean(self) -> float:
        return sum(self.demand[:HISTORY_DAYS]) / HISTORY_DAYS


@dataclass(frozen=True, slots=True)
class Shipment:
    """How a supplier delivers one purchase order: `first` units after `days`, the rest `rest_after` later."""

    days: int
    first_share: float
    rest_after: int


def products(count: int, days: int, seed: int) -> list[Product]:
    rnd = random.Random(seed)
    shocked = set(rnd.sample(range(count), 3))
    shock_start = HISTORY_DAYS + days // 2
    made = []
    for n in range(count):
        intermittent = n % 5 == 4  # one SKU in five
        base = rnd.uniform(0.3, 1.2) if intermittent else rnd.uniform(3, 25)
        trend = rnd.uniform(-0.3, 0.8) / 365  # relative change per day
        amplitude = rnd.uniform(0.3, 1.0)
        series = []
        for day in range(HISTORY_DAYS + days):
            rate = base * (1 + trend * day) * (1 + amplitude * (WEEKLY[day % 7] - 1))
            if n in shocked and shock_start <= day < shock_start + 28:
                rate *= 2.5  # a promotion elsewhere, a viral post: demand jumps for four weeks
            if intermittent:
                series.append(rnd.randint(1, 6) if rnd.random() < rate / 3.5 else 0)
            else:
                series.append(_poisson(rnd, max(rate, 0.0)))
        made.append(Product(f"SKU-{n:02d}", rnd.choice([5, 7, 10, 14, 21]), rnd.uniform(0.9, 1.4), intermittent,
                            tuple(series)))
    return made


def shipment(rnd: random.Random, product: Product) -> Shipment:
    """Most deliveries come near the supplier's usual lead time; one in five is late by up to half again;
    one in six comes in two parts."""
    days = product.lead_time_days * product.supplier_bias * rnd.uniform(0.85, 1.15)
    if rnd.random() < 0.2:
        days *= rnd.uniform(1.1, 1.5)
    split = rnd.random() < 1 / 6
    return Shipment(max(1, round(days)), rnd.uniform(0.5, 0.9) if split else 1.0, rnd.randint(2, 7) if split else 0)


def _poisson(rnd: random.Random, rate: float) -> int:
    if rate > 30:
        return max(0, round(rnd.gauss(rate, math.sqrt(rate))))
    limit, k, p = math.exp(-rate), 0, 1.0
    while True:
        p *= rnd.random()
        if p <= limit:
            return k
        k += 1
