"""Notification use cases, one transaction per batch: learn each order's contact and the products'
names and availability, and queue the notifications the events call for. Sending is the dispatcher's
job, after commit."""

import json
from collections import defaultdict

import asyncpg

from contracts.events import AvailabilityChanged, BackorderCreated, BackorderFulfilled, OrderPlaced, ProductRegistered
from services.notification import domain
from services.runtime.messages import Message

SAVE_CONTACTS = """
INSERT INTO order_contacts (order_id, customer_id, customer_email)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) ON CONFLICT DO NOTHING
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
# Up to three alternatives of each SKU that are in stock now, in the order the product lists them.
IN_STOCK_ALTERNATIVES = """
SELECT p.sku AS for_sku, alt.sku, coalesce(named.name, alt.sku) AS name
FROM products p
CROSS JOIN LATERAL unnest(p.alternatives) WITH ORDINALITY AS alt(sku, position)
JOIN sku_availability a ON a.sku = alt.sku AND a.status = 'in_stock'
LEFT JOIN products named ON named.sku = alt.sku
WHERE p.sku = ANY($1::text[])
ORDER BY p.sku, alt.position
"""
PRODUCT_NAMES = "SELECT sku, name FROM products WHERE sku = ANY($1::text[])"
QUEUE = """
INSERT INTO mail_outbox (notification_id, order_id, kind, subject, body, correlation_id, causation_id)
SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[])
ON CONFLICT DO NOTHING
"""


def inbox_key(message: Message) -> str:
    return message.envelope.id


async def handle(conn: asyncpg.Connection, messages: list[Message]) -> None:
    # First what the batch teaches about contacts and products, then the notifications it calls for.
    contacts, products, availability = [], {}, {}
    for body in (m.body for m in messages):
        match body:
            case OrderPlaced():
                contacts.append((body.order_id, body.customer_id, body.customer_email))
            case ProductRegistered():
                products[body.sku] = (body.sku, body.name, json.dumps(body.alternatives))
            case AvailabilityChanged():
                availability[body.sku] = (body.sku, body.status, body.available)
    for statement, rows in ((SAVE_CONTACTS, contacts), (SAVE_PRODUCTS, products.values()),
                            (SAVE_AVAILABILITY, availability.values())):
        if rows:
            await conn.execute(statement, *zip(*rows))

    skus = [m.body.sku for m in messages if isinstance(m.body, (BackorderCreated, BackorderFulfilled))]
    names = {r["sku"]: r["name"] for r in await conn.fetch(PRODUCT_NAMES, skus)} if skus else {}
    alternatives: dict[str, list[tuple[str, str]]] = defaultdict(list)
    if skus:
        for row in await conn.fetch(IN_STOCK_ALTERNATIVES, skus):
            alternatives[row["for_sku"]].append((row["sku"], row["name"]))
    queued = []
    for message in messages:
        body, envelope = message.body, message.envelope
        sku = getattr(body, "sku", None)
        if n := domain.decide(body, envelope.id, names.get(sku, sku), alternatives.get(sku, [])[:3]):
            queued.append((n.notification_id, n.order_id, n.kind, n.subject, n.body,
                           envelope.correlationid or envelope.id, envelope.id))
    if queued:
        await conn.execute(QUEUE, *zip(*queued))
