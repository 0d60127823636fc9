"""The availability read model: one row per SKU, written from the aggregates a batch changed."""

from collections.abc import Iterable
from datetime import date

import asyncpg

from services.inventory.domain import Sku, availability

UPSERT = """
INSERT INTO availability (sku, name, status, on_hand, reserved, available, backordered, backorder_eta)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::int[], $6::int[], $7::int[], $8::date[])
ON CONFLICT (sku) DO UPDATE SET
    name = EXCLUDED.name, status = EXCLUDED.status, on_hand = EXCLUDED.on_hand, reserved = EXCLUDED.reserved,
    available = EXCLUDED.available, backordered = EXCLUDED.backordered,
    backorder_eta = EXCLUDED.backorder_eta, updated_at = now()
"""
FIND = """
SELECT sku, name, status, on_hand, reserved, available, backordered, backorder_eta, updated_at
FROM availability WHERE sku = $1
"""


async def project(conn: asyncpg.Connection, skus: Iterable[Sku], today: date) -> None:
    rows = []
    for s in skus:
        status, _, eta = availability(s, today)
        rows.append((s.sku, s.product.name if s.product else None, status, s.on_hand, s.reserved, s.available,
                     s.backordered, eta))
    if rows:
        await conn.execute(UPSERT, *zip(*rows))


async def rebuild(conn: asyncpg.Connection, skus: Iterable[Sku], today: date) -> None:
    async with conn.transaction():
        await conn.execute("TRUNCATE availability")
        await project(conn, skus, today)


async def find(pool: asyncpg.Pool, sku: str) -> dict | None:
    row = await pool.fetchrow(FIND, sku)
    if row is None:
        return None
    return {
        "sku": row["sku"],
        "name": row["name"],
        "status": row["status"],
        "available": row["available"],
        "on_hand": row["on_hand"],
        "reserved": row["reserved"],
        "backordered": row["backordered"],
        "estimated_ship_date": row["backorder_eta"].isoformat() if row["backorder_eta"] else None,
        "updated_at": row["updated_at"].isoformat(),
    }
