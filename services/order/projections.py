"""The order read model: one row per order and per line, written from the aggregates a batch changed."""

from collections.abc import Iterable
from datetime import date

import asyncpg

from contracts.read_side import OrderLineView, OrderView, Rejection
from services.order.domain.state import Order

# The orders and their lines in one statement: one round trip per batch, not two.
UPSERT = """
WITH upserted_orders AS (
    INSERT INTO orders (order_id, customer_id, status, currency, waiting_since, discount_code)
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::date[], $6::text[])
    ON CONFLICT (order_id) DO UPDATE SET status = EXCLUDED.status, waiting_since = EXCLUDED.waiting_since,
        discount_code = EXCLUDED.discount_code, updated_at = now()
)
INSERT INTO order_lines (order_id, sku, quantity, unit_price, reserved, backordered, fulfilled, cancelled,
                         estimated_ship_date, rejection_reason, rejection_message, shipped)
SELECT * FROM unnest($7::text[], $8::text[], $9::int[], $10::numeric[], $11::int[], $12::int[], $13::int[],
                     $14::int[], $15::date[], $16::text[], $17::text[], $18::int[])
ON CONFLICT (order_id, sku) DO UPDATE SET
    reserved = EXCLUDED.reserved, backordered = EXCLUDED.backordered, fulfilled = EXCLUDED.fulfilled,
    cancelled = EXCLUDED.cancelled, shipped = EXCLUDED.shipped,
    estimated_ship_date = EXCLUDED.estimated_ship_date, rejection_reason = EXCLUDED.rejection_reason,
    rejection_message = EXCLUDED.rejection_message
"""
FIND_ORDER = "SELECT order_id, customer_id, status, currency, updated_at FROM orders WHERE order_id = $1"
LONG_WAITS = """
SELECT order_id FROM orders
WHERE status = 'backordered' AND discount_code IS NULL AND waiting_since <= $1
ORDER BY waiting_since LIMIT $2
"""
FIND_LINES = """
SELECT sku, quantity, unit_price, reserved, backordered, fulfilled, shipped, cancelled, estimated_ship_date,
       rejection_reason, rejection_message
FROM order_lines WHERE order_id = $1 ORDER BY sku
"""


async def project(conn: asyncpg.Connection, orders: Iterable[Order]) -> None:
    orders = list(orders)
    if not orders:
        return
    heads = [(o.order_id, o.customer_id, o.status, o.currency, o.waiting_since, o.discount_code) for o in orders]
    lines = [
        (o.order_id, l.sku, l.quantity, l.unit_price, l.reserved, l.backordered, l.fulfilled, l.cancelled, l.eta,
         l.rejection.reason if l.rejection else None, l.rejection.message if l.rejection else None, l.shipped)
        for o in orders
        for l in o.lines
    ]
    # An order has at least one line (PlaceOrder's contract): both column lists are filled.
    await conn.execute(UPSERT, *zip(*heads), *zip(*lines))


async def long_waits(conn: asyncpg.Connection, waiting_since_at_most: date, limit: int) -> list[str]:
    return [r["order_id"] for r in await conn.fetch(LONG_WAITS, waiting_since_at_most, limit)]


async def rebuild(conn: asyncpg.Connection, orders: Iterable[Order]) -> None:
    async with conn.transaction():
        await conn.execute("TRUNCATE orders, order_lines")
        await project(conn, orders)


async def find(pool: asyncpg.Pool, order_id: str) -> OrderView | None:
    """The order as a storefront sees it, or None."""
    async with pool.acquire() as conn:
        order = await conn.fetchrow(FIND_ORDER, order_id)
        if order is None:
            return None
        lines = await conn.fetch(FIND_LINES, order_id)
    return OrderView(
        order_id=order["order_id"], customer_id=order["customer_id"], status=order["status"],
        currency=order["currency"], updated_at=order["updated_at"],
        lines=[
            OrderLineView(
                sku=l["sku"], quantity=l["quantity"],
                unit_price=str(l["unit_price"]) if l["unit_price"] is not None else None,
                reserved=l["reserved"], backordered=l["backordered"], fulfilled=l["fulfilled"], shipped=l["shipped"],
                cancelled=l["cancelled"], shipping="expedited" if l["fulfilled"] else "standard",
                estimated_ship_date=l["estimated_ship_date"],
                rejection=Rejection(reason=l["rejection_reason"], message=l["rejection_message"])
                if l["rejection_reason"] else None,
            )
            for l in lines
        ],
    )
