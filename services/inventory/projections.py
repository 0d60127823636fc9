"""The availability read model: one row per SKU, written from the aggregates a batch changed."""

from collections.abc import Iterable
from datetime import date

import asyncpg

from contracts.read_side import AvailabilityView
from services.inventory.domain.availability import availability, low_stock
from services.inventory.domain.state import Sku

UPSERT = """
INSERT INTO availability (sku, name, status, on_hand, reserved, available, backordered, backorder_eta, low_stock)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[], $8::date[],
                     $9::bool[])
ON CONFLICT (sku) DO UPDATE SET
    name = EXCLUDED.name, status = EXCLUDED.status, on_hand = EXCLUDED.on_hand, reserved = EXCLUDED.reserved,
    available = EXCLUDED.available, backordered = EXCLUDED.backordered,
    backorder_eta = EXCLUDED.backorder_eta, low_stock = EXCLUDED.low_stock, updated_at = now()
"""
# Low stock is at or below the safety stock in effect: the product's when set by hand (the row's low_stock),
# else the one the last planning run computed, while the product is planned (not discontinued: its plan is
# forgotten at the next run).
FIND = """
SELECT a.sku, a.name, a.status, a.on_hand, a.reserved, a.available, a.backordered, a.backorder_eta, a.updated_at,
       CASE WHEN coalesce((s.product->>'safety_stock')::bigint, 0) > 0 THEN a.low_stock
            WHEN coalesce((s.product->>'discontinued')::boolean, false) THEN false
            ELSE coalesce(p.safety_stock > 0 AND a.available <= p.safety_stock, false) END AS low_stock
FROM availability a LEFT JOIN skus s USING (sku) LEFT JOIN planning p USING (sku) WHERE a.sku = $1
"""


async def project(conn: asyncpg.Connection, skus: Iterable[Sku], today: date) -> None:
    rows = [(s.sku, s.product.name if s.product else None, *_shown(s, today)) for s in skus]
    if rows:
        await conn.execute(UPSERT, *zip(*rows))


def _shown(s: Sku, today: date) -> tuple:
    shown = availability(s, today)
    return shown.status, s.on_hand, s.reserved, s.available, s.backordered, shown.estimated_ship_date, low_stock(s)


async def rebuild(conn: asyncpg.Connection, skus: Iterable[Sku], today: date) -> None:
    await conn.execute("TRUNCATE availability")
    await project(conn, skus, today)


async def find(pool: asyncpg.Pool, sku: str) -> AvailabilityView | None:
    row = await pool.fetchrow(FIND, sku)
    if row is None:
        return None
    return AvailabilityView(**{k: v for k, v in row.items() if k != "backorder_eta"},
                            estimated_ship_date=row["backorder_eta"])
