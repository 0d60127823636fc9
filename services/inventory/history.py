"""What planning learns from and what it found, in PostgreSQL: daily demand and purchase orders recorded
from the events of each batch (in its transaction), and the plan of each SKU with what was already told."""

import json
from collections import defaultdict
from collections.abc import Iterable
from datetime import date, timedelta

import asyncpg

from contracts.events import (
    BackorderCreated,
    Event,
    OutOfStock,
    ReplenishmentCancelled,
    ReplenishmentExpected,
    StockReceived,
    StockReserved,
)
from services.inventory.planning.forecast import Forecast
from services.inventory.planning.lead_times import Delivery
from services.inventory.planning.policy import Memory, OpenOrder, Plan

ADD_DEMAND = """
INSERT INTO demand_daily (sku, day, quantity) SELECT * FROM unnest($1::text[], $2::date[], $3::bigint[])
ON CONFLICT (sku, day) DO UPDATE SET quantity = demand_daily.quantity + EXCLUDED.quantity
"""
OPEN_ORDERS = """
INSERT INTO supplier_orders (sku, po_id, ordered_on, expected_on) SELECT * FROM unnest($1::text[], $2::text[], $3::date[], $4::date[])
ON CONFLICT (sku, po_id, ordered_on) DO NOTHING
"""
CANCEL_ORDERS = """
DELETE FROM supplier_orders s USING unnest($1::text[], $2::text[]) AS c(sku, po_id)
WHERE (s.sku, s.po_id) = (c.sku, c.po_id) AND s.received_on IS NULL
"""
# A purchase order is received when it is no longer expected after a receipt: closed by name, or used up by
# receipts that named none.
CLOSE_RECEIVED = """
UPDATE supplier_orders s SET received_on = $2
WHERE s.received_on IS NULL AND s.sku = ANY($1::text[])
  AND NOT EXISTS (SELECT 1 FROM replenishments r WHERE (r.sku, r.po_id) = (s.sku, s.po_id))
"""
DEMAND = "SELECT sku, day, quantity FROM demand_daily WHERE day >= $1 AND day < $2"
DEMAND_OF = DEMAND + " AND sku = $3"
ORDERS = "SELECT sku, po_id, ordered_on, expected_on, received_on FROM supplier_orders WHERE sku = ANY($1::text[])"
MEMORY = "SELECT sku, suggested, orders_seen, overstocked, delays_told FROM planning WHERE sku = ANY($1::text[])"
SAVE_PLANS = """
INSERT INTO planning (sku, name, available, on_order, backordered, daily_demand, days_of_cover, lead_time_days,
                      safety_stock, reorder_point, status, method, forecast, planned_on, suggested, orders_seen,
                      overstocked, delays_told)
SELECT s.sku, s.name, s.available, s.on_order, s.backordered, s.daily_demand, s.days_of_cover, s.lead_time_days,
       s.safety_stock, s.reorder_point, s.status, s.method, string_to_array(s.forecast, ',')::real[], s.planned_on,
       s.suggested, ARRAY(SELECT jsonb_array_elements_text(s.orders_seen::jsonb)), s.overstocked,
       ARRAY(SELECT jsonb_array_elements_text(s.delays_told::jsonb))
FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[], $6::real[], $7::real[], $8::real[],
            $9::bigint[], $10::bigint[], $11::text[], $12::text[], $13::text[], $14::date[], $15::bigint[],
            $16::text[], $17::bool[], $18::text[])
     AS s(sku, name, available, on_order, backordered, daily_demand, days_of_cover, lead_time_days, safety_stock,
          reorder_point, status, method, forecast, planned_on, suggested, orders_seen, overstocked, delays_told)
ON CONFLICT (sku) DO UPDATE SET name = EXCLUDED.name, available = EXCLUDED.available, on_order = EXCLUDED.on_order,
    backordered = EXCLUDED.backordered, daily_demand = EXCLUDED.daily_demand, days_of_cover = EXCLUDED.days_of_cover,
    lead_time_days = EXCLUDED.lead_time_days, safety_stock = EXCLUDED.safety_stock,
    reorder_point = EXCLUDED.reorder_point, status = EXCLUDED.status, method = EXCLUDED.method,
    forecast = EXCLUDED.forecast, planned_on = EXCLUDED.planned_on, suggested = EXCLUDED.suggested,
    orders_seen = EXCLUDED.orders_seen, overstocked = EXCLUDED.overstocked, delays_told = EXCLUDED.delays_told
"""
PLANS = "SELECT * FROM planning ORDER BY sku"
# Discontinuing cannot be undone: what was told of those SKUs will not be needed again.
DISCONTINUED = """
DELETE FROM planning p USING skus s WHERE s.sku = p.sku AND (s.product->>'discontinued')::boolean
"""
ARRIVALS = "SELECT expected_on, quantity FROM replenishments WHERE sku = $1"


async def record(conn: asyncpg.Connection, events: Iterable[tuple[str, Event]], today: date) -> None:
    """Record the demand and purchase orders a batch's events tell; after its rows are saved."""
    demand: dict[str, int] = defaultdict(int)
    opened, cancelled, received = [], [], set()
    for sku, event in events:
        match event:
            case StockReserved() | BackorderCreated():
                demand[sku] += event.quantity
            case OutOfStock(reason="not_backorderable" | "backorders_not_allowed"):
                demand[sku] += event.quantity  # wanted, and lost: demand all the same
            case ReplenishmentExpected():
                opened.append((sku, event.po_id, today, event.expected_on))
            case ReplenishmentCancelled():
                cancelled.append((sku, event.po_id))
            case StockReceived():
                received.add(sku)
    if demand:
        await conn.execute(ADD_DEMAND, list(demand), [today] * len(demand), list(demand.values()))
    if opened:
        await conn.execute(OPEN_ORDERS, *zip(*opened))
    if cancelled:
        await conn.execute(CANCEL_ORDERS, *zip(*cancelled))
    if received:
        await conn.execute(CLOSE_RECEIVED, sorted(received), today)


async def demand(conn: asyncpg.Connection, days: int, today: date, sku: str | None = None) -> dict[str, list[int]]:
    """Each SKU's daily demand (or only `sku`'s) over the `days` days before today (today is not over yet)."""
    start = today - timedelta(days=days)
    by_sku: dict[str, dict[date, int]] = defaultdict(dict)
    for r in await (conn.fetch(DEMAND_OF, start, today, sku) if sku else conn.fetch(DEMAND, start, today)):
        by_sku[r["sku"]][r["day"]] = r["quantity"]
    first = {sku: min(days_) for sku, days_ in by_sku.items()}  # a SKU's history starts with its first demand
    return {sku: [by_day.get(first[sku] + timedelta(days=n), 0) for n in range((today - first[sku]).days)]
            for sku, by_day in by_sku.items()}


async def supplier_orders(conn: asyncpg.Connection, skus: list[str]
                          ) -> tuple[dict[str, list[Delivery]], dict[str, list[OpenOrder]]]:
    """Per SKU of `skus`: the purchase orders received (the lead times), and those still open."""
    delivered: dict[str, list[Delivery]] = defaultdict(list)
    still_open: dict[str, list[OpenOrder]] = defaultdict(list)
    for r in await conn.fetch(ORDERS, skus):
        if r["received_on"]:
            delivered[r["sku"]].append(Delivery(r["po_id"], r["ordered_on"], r["expected_on"], r["received_on"]))
        else:
            still_open[r["sku"]].append(OpenOrder(r["po_id"], r["ordered_on"], r["expected_on"]))
    return delivered, still_open


async def memories(conn: asyncpg.Connection, skus: list[str]) -> dict[str, Memory]:
    """What planning already told about each SKU of `skus`."""
    return {r["sku"]: Memory(r["suggested"], frozenset(r["orders_seen"]), r["overstocked"], frozenset(r["delays_told"]))
            for r in await conn.fetch(MEMORY, skus)}


async def save_plans(conn: asyncpg.Connection, plans: list[tuple[str, Plan, Forecast, Memory]], today: date) -> None:
    if not plans:
        return
    join = ",".join
    await conn.execute(SAVE_PLANS, *zip(*(
        (p.sku, name, p.available, p.on_order, p.backordered, p.daily_demand,
         None if p.days_of_cover == float("inf") else p.days_of_cover, p.lead_time_days, p.safety_stock,
         p.reorder_point, p.status, f.method, join(f"{q:.3f}" for q in f.daily), today, m.suggested,
         _json(m.orders_seen), m.overstocked, _json(m.delays))
        for name, p, f, m in plans)))


def _json(po_ids: frozenset[str]) -> str:
    """Purchase order ids as a JSON array: an id may hold a comma, so they are not joined with one."""
    return json.dumps(sorted(po_ids))


async def forget_discontinued(conn: asyncpg.Connection) -> None:
    """Forget the plans of discontinued products, which planning no longer looks at: nobody is to reorder them."""
    await conn.execute(DISCONTINUED)


async def plans(conn: asyncpg.Connection | asyncpg.Pool) -> list[asyncpg.Record]:
    return await conn.fetch(PLANS)


async def arrivals(conn: asyncpg.Connection | asyncpg.Pool, sku: str) -> list[tuple[date, int]]:
    """The open purchase orders of a SKU: when they are expected, and how many."""
    return [(r["expected_on"], r["quantity"]) for r in await conn.fetch(ARRIVALS, sku)]
