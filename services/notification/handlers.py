"""Notification use cases, one transaction per batch: learn each order's contact, and queue the
notifications inventory events call for. Sending is the dispatcher's job, after commit."""

import asyncpg

from contracts.events import OrderPlaced
from services.notification import domain
from services.runtime.messages import Message

SAVE_CONTACTS = """
INSERT INTO order_contacts (order_id, customer_id, customer_email)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) ON CONFLICT DO NOTHING
"""
QUEUE = """
INSERT INTO mail_outbox (notification_id, order_id, kind, subject, body, correlation_id, causation_id)
SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[])
ON CONFLICT DO NOTHING
"""


def inbox_key(message: Message) -> str:
    return message.envelope.id


async def handle(conn: asyncpg.Connection, messages: list[Message]) -> None:
    contacts = []
    queued = []
    for message in messages:
        body, envelope = message.body, message.envelope
        if isinstance(body, OrderPlaced):
            contacts.append((body.order_id, body.customer_id, body.customer_email))
        elif n := domain.decide(body, envelope.id):
            queued.append((n.notification_id, n.order_id, n.kind, n.subject, n.body,
                           envelope.correlationid or envelope.id, envelope.id))
    if contacts:
        await conn.execute(SAVE_CONTACTS, *zip(*contacts))
    if queued:
        await conn.execute(QUEUE, *zip(*queued))
