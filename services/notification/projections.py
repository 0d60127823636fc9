"""The notification service's read tables, learnt from the other services' events: who to tell about each
order, the products' names, alternatives and availability, the waiting backorders' ETAs, goodwill discounts;
and which refused lines each customer was told."""

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import date
from uuid import UUID

import asyncpg

from contracts.events import AvailabilityChanged, DiscountOffered, Event, OrderPlaced, ProductRegistered, ProductUpdated
from services.notification import domain
from services.runtime.eventstore import ConcurrencyError

# Returns the orders whose contact is new: notifications may wait for it (outbox.release_waiting).
SAVE_CONTACTS = """
INSERT INTO order_contacts (order_id, customer_id, customer_email)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) ON CONFLICT DO NOTHING
RETURNING order_id
"""
SAVE_PRODUCTS = """
INSERT INTO products (sku, name, alternatives)
SELECT sku, name, array(SELECT jsonb_array_elements_text(alternatives))
FROM unnest($1::text[], $2::text[], $3::jsonb[]) AS p(sku, name, alternatives)
ON CONFLICT (sku) DO UPDATE SET name = EXCLUDED.name, alternatives = EXCLUDED.alternatives
"""
SAVE_AVAILABILITY = """
INSERT INTO sku_availability (sku, status, available)
SELECT * FROM unnest($1::text[], $2::text[], $3::int[])
ON CONFLICT (sku) DO UPDATE SET status = EXCLUDED.status, available = EXCLUDED.available
"""
SAVE_DISCOUNTS = """
INSERT INTO discounts (order_id, code, percent, cause)
SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::text[])
ON CONFLICT DO NOTHING
"""
# A NULL ETA (units left by a fill or a cancellation) keeps the ETA the row had.
SAVE_ETAS = """
INSERT INTO backorder_etas (order_id, sku, quantity, eta)
SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::date[])
ON CONFLICT (order_id, sku) DO UPDATE
SET quantity = EXCLUDED.quantity, eta = coalesce(EXCLUDED.eta, backorder_etas.eta)
"""
DROP_ETAS = """
DELETE FROM backorder_etas e USING unnest($1::text[], $2::text[]) AS gone(order_id, sku)
WHERE e.order_id = gone.order_id AND e.sku = gone.sku
"""
PRODUCT_NAMES = "SELECT sku, name FROM products WHERE sku = ANY($1::text[])"
# The alternatives of each SKU that are in stock now, in the order the product lists them.
IN_STOCK_ALTERNATIVES = """
SELECT p.sku AS for_sku, alt.sku, coalesce(named.name, alt.sku) AS name
FROM products p
CROSS JOIN LATERAL unnest(p.alternatives) WITH ORDINALITY AS alt(sku, position)
JOIN sku_availability a ON a.sku = alt.sku AND a.status = 'in_stock'
LEFT JOIN products named ON named.sku = alt.sku
WHERE p.sku = ANY($1::text[])
ORDER BY p.sku, alt.position
"""
WAITING = """
SELECT e.order_id, coalesce(p.name, e.sku) AS name, e.quantity, e.eta
FROM backorder_etas e LEFT JOIN products p USING (sku)
WHERE e.order_id = ANY($1::text[]) AND e.eta IS NOT NULL ORDER BY e.order_id, e.sku
"""
# A long wait's discount is mailed on its own; a slip's rides on the ETA update.
SLIP_DISCOUNTS_TO_MAIL = """
SELECT order_id, code, percent FROM discounts
WHERE order_id = ANY($1::text[]) AND NOT mailed AND cause = 'eta_slipped'
"""
# A join, not `order_id = ANY($1)`: as a prepared statement's generic plan, that compares every row of a table
# never analysed with every id of the batch (benchmarks/notification_refusals.py: 48 ms a batch at 10,000 rows).
REFUSALS_TOLD = "SELECT order_id, sku FROM unnest($1::text[]) AS batch(order_id) JOIN refusals_told USING (order_id)"
# A row another transaction wrote since REFUSALS_TOLD read (two consumers of one partition across a rebalance)
# is not returned: its line was told there, so this batch is retried, and reads it.
REMEMBER_REFUSALS_TOLD = """
INSERT INTO refusals_told (order_id, sku, notification_id)
SELECT * FROM unnest($1::text[], $2::text[], $3::uuid[]) ON CONFLICT DO NOTHING
RETURNING 1
"""
MARK_DISCOUNTS_MAILED = "UPDATE discounts SET mailed = true WHERE order_id = ANY($1::text[])"


async def learn(conn: asyncpg.Connection, events: Sequence[Event]) -> list[str]:
    """Update the read tables from a batch of events, folded in order first: one statement per table. Returns
    the orders whose contact it learnt."""
    contacts, products, availability, discounts = [], {}, {}, []
    for event in events:
        match event:
            case OrderPlaced():
                contacts.append((event.order_id, event.customer_id, event.customer_email))
            case ProductRegistered() | ProductUpdated():
                products[event.sku] = (event.sku, event.name, json.dumps(event.alternatives))
            case AvailabilityChanged():
                availability[event.sku] = (event.sku, event.status, event.available)
            case DiscountOffered():
                discounts.append((event.order_id, event.code, event.percent, event.cause))
    waits = domain.still_waiting(events)
    waiting = [(o, s, w.quantity, w.eta) for (o, s), w in waits.items() if w is not None]
    gone = [(o, s) for (o, s), w in waits.items() if w is None]
    learnt = [r["order_id"] for r in await conn.fetch(SAVE_CONTACTS, *zip(*contacts))] if contacts else []
    for statement, rows in ((SAVE_PRODUCTS, list(products.values())), (SAVE_AVAILABILITY, list(availability.values())),
                            (SAVE_DISCOUNTS, discounts), (SAVE_ETAS, waiting), (DROP_ETAS, gone)):
        if rows:
            await conn.execute(statement, *zip(*rows))
    return learnt


async def product_names(conn: asyncpg.Connection, skus: Iterable[str]) -> dict[str, str]:
    """Names of the products known among `skus`."""
    skus = sorted(set(skus))
    return {r["sku"]: r["name"] for r in await conn.fetch(PRODUCT_NAMES, skus)} if skus else {}


async def in_stock_alternatives(conn: asyncpg.Connection, skus: Iterable[str]) -> dict[str, list[tuple[str, str]]]:
    """(sku, name) of each SKU's alternatives that are in stock now, in the product's order."""
    skus = sorted(set(skus))
    found: dict[str, list[tuple[str, str]]] = defaultdict(list)
    if skus:
        for row in await conn.fetch(IN_STOCK_ALTERNATIVES, skus):
            found[row["for_sku"]].append((row["sku"], row["name"]))
    return found


async def waiting(conn: asyncpg.Connection, order_ids: Sequence[str]) -> dict[str, list[tuple[str, int, date]]]:
    """(product name, quantity, ETA) of each order's waiting backorder lines, by SKU."""
    lines: dict[str, list[tuple[str, int, date]]] = {o: [] for o in order_ids}
    for r in await conn.fetch(WAITING, list(order_ids)):
        lines[r["order_id"]].append((r["name"], r["quantity"], r["eta"]))
    return lines


async def slip_discounts_to_mail(conn: asyncpg.Connection, order_ids: Sequence[str]) -> dict[str, tuple[str, int]]:
    """(code, percent) of the goodwill for a slipped ETA not yet mailed, by order."""
    return {r["order_id"]: (r["code"], r["percent"]) for r in await conn.fetch(SLIP_DISCOUNTS_TO_MAIL, list(order_ids))}


async def mark_discounts_mailed(conn: asyncpg.Connection, order_ids: Sequence[str]) -> None:
    if order_ids:
        await conn.execute(MARK_DISCOUNTS_MAILED, list(order_ids))


async def refusals_told(conn: asyncpg.Connection, order_ids: Iterable[str]) -> dict[str, set[str]]:
    """The SKUs of each order's refused lines its customer was told, for the orders that have any."""
    told: dict[str, set[str]] = defaultdict(set)
    if order_ids := sorted(set(order_ids)):
        for row in await conn.fetch(REFUSALS_TOLD, order_ids):
            told[row["order_id"]].add(row["sku"])
    return told


async def remember_refusals_told(conn: asyncpg.Connection, told: Sequence[tuple[str, str, UUID]]) -> None:
    """Note the refused lines told now, (order, SKU, notification id) each; ConcurrencyError if another batch
    told one of them since `refusals_told` read."""
    # Sorted: two batches racing on the same rows take them in one order and cannot deadlock.
    if told and len(await conn.fetch(REMEMBER_REFUSALS_TOLD, *zip(*sorted(told)))) < len(told):
        raise ConcurrencyError("refused lines told by another batch meanwhile")
