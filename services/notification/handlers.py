"""Notification use cases, one transaction per batch: learn each order's contact, the products' names
and availability, the backorders' ETAs and any goodwill discount, and queue the notifications the events
call for. Sending is the dispatcher's job, after commit."""

import json
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import asyncpg

from contracts.events import (
    AvailabilityChanged,
    BackorderCancelled,
    BackorderCreated,
    BackorderEtaChanged,
    BackorderFulfilled,
    DiscountOffered,
    OrderPlaced,
    ProductRegistered,
    ProductUpdated,
    ReservationRevoked,
)
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
SAVE_DISCOUNTS = """
INSERT INTO discounts (order_id, code, percent, cause)
SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::text[])
ON CONFLICT DO NOTHING
"""
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
INSERT INTO notification_outbox (notification_id, order_id, kind, subject, body, correlation_id, causation_id,
                                 send_after, channel)
SELECT n.*, channel
FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
            $8::timestamptz[]) AS n
CROSS JOIN unnest($9::text[]) AS channel
ON CONFLICT DO NOTHING
"""
# One pending ETA update per order and channel, written at send time so that it tells the latest. A change
# that finds one pending touches it: if that one is already being sent, a follow-up is queued after it.
QUEUE_ETA_UPDATES = """
INSERT INTO notification_outbox (notification_id, order_id, kind, subject, body, correlation_id, causation_id,
                                 send_after, channel)
SELECT n.notification_id, n.order_id, 'eta_changed', '', '', n.correlation_id, n.causation_id, n.send_after, channel
FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::timestamptz[])
    AS n(notification_id, order_id, correlation_id, causation_id, send_after)
CROSS JOIN unnest($6::text[]) AS channel
ON CONFLICT (order_id, channel) WHERE kind = 'eta_changed' AND sent_at IS NULL AND failed_reason IS NULL
DO UPDATE SET touched_at = clock_timestamp()
"""


def inbox_key(message: Message) -> str:
    return message.envelope.id


async def handle(conn: asyncpg.Connection, messages: list[Message], eta_window_s: float,
                 channels: tuple[str, ...] = ("email",)) -> None:
    await _learn(conn, messages)
    skus = [m.body.sku for m in messages
            if isinstance(m.body, (BackorderCreated, BackorderFulfilled, ReservationRevoked))]
    names = {r["sku"]: r["name"] for r in await conn.fetch(PRODUCT_NAMES, skus)} if skus else {}
    alternatives: dict[str, list[tuple[str, str]]] = defaultdict(list)
    if skus:
        for row in await conn.fetch(IN_STOCK_ALTERNATIVES, skus):
            alternatives[row["for_sku"]].append((row["sku"], row["name"]))
    now = datetime.now(UTC)
    queued, eta_updates = [], {}
    for message in messages:
        body, envelope = message.body, message.envelope
        correlation = envelope.correlationid or envelope.id
        # An ETA change, or goodwill for a slip (which the update carries), calls for an ETA update.
        if isinstance(body, BackorderEtaChanged) or (isinstance(body, DiscountOffered) and body.cause == "eta_slipped"):
            eta_updates.setdefault(body.order_id, (domain.notification_id("eta_changed", envelope.id), body.order_id,
                                                   correlation, envelope.id, now + timedelta(seconds=eta_window_s)))
            continue
        sku = getattr(body, "sku", None)
        if n := domain.decide(body, envelope.id, names.get(sku, sku), alternatives.get(sku, [])[:3]):
            queued.append((n.notification_id, n.order_id, n.kind, n.subject, n.body, correlation, envelope.id, now))
    if queued:
        await conn.execute(QUEUE, *zip(*queued), list(channels))
    if eta_updates:
        await conn.execute(QUEUE_ETA_UPDATES, *zip(*eta_updates.values()), list(channels))


async def _learn(conn: asyncpg.Connection, messages: list[Message]) -> None:
    """Update the projections from the batch, folding it in order first: one statement per table."""
    contacts, products, availability, discounts = [], {}, {}, []
    etas: dict[tuple[str, str], tuple[int, object] | None] = {}  # None: no longer waiting
    for body in (m.body for m in messages):
        match body:
            case OrderPlaced():
                contacts.append((body.order_id, body.customer_id, body.customer_email))
            case ProductRegistered() | ProductUpdated():
                products[body.sku] = (body.sku, body.name, json.dumps(body.alternatives))
            case AvailabilityChanged():
                availability[body.sku] = (body.sku, body.status, body.available)
            case DiscountOffered():
                discounts.append((body.order_id, body.code, body.percent, body.cause))
            case BackorderCreated() | BackorderEtaChanged():
                etas[(body.order_id, body.sku)] = (body.quantity, body.estimated_ship_date)
            case ReservationRevoked():
                etas[(body.order_id, body.sku)] = (body.waiting, body.estimated_ship_date)
            case BackorderFulfilled():
                etas[(body.order_id, body.sku)] = (body.remaining, None) if body.remaining else None
            case BackorderCancelled():
                etas[(body.order_id, body.sku)] = None
    waiting = [(o, s, v[0], v[1]) for (o, s), v in etas.items() if v is not None]
    gone = [(o, s) for (o, s), v in etas.items() if v is None]
    for statement, rows in ((SAVE_CONTACTS, contacts), (SAVE_PRODUCTS, list(products.values())),
                            (SAVE_AVAILABILITY, list(availability.values())), (SAVE_DISCOUNTS, discounts),
                            (SAVE_ETAS, waiting), (DROP_ETAS, gone)):
        if rows:
            await conn.execute(statement, *zip(*rows))
