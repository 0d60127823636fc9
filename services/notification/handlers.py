"""Notification use cases, one transaction per batch: learn from the events, queue the notifications they
call for, and coalesce ETA changes into one update per order. Sending is the dispatcher's job, after commit."""

from collections.abc import Sequence
from datetime import UTC, datetime
from uuid import UUID

import asyncpg

from contracts.events import (
    AvailabilityChanged,
    BackorderCancelled,
    BackorderCreated,
    BackorderEtaChanged,
    BackorderFulfilled,
    DiscountOffered,
    OrderBackordered,
    OrderCancelled,
    OrderConfirmed,
    OrderPlaced,
    OrderReadyToShip,
    OrderRejected,
    OrderShipped,
    OrderStatusChanged,
    ProductRegistered,
    ProductUpdated,
    ReservationRevoked,
)
from services.notification import domain, outbox, projections
from services.runtime.messages import Message

# The events the service reads (its subscriptions follow from them). Each batch runs three use cases over
# them in this order: `projections.learn` from every one (the notifications waiting for a contact it learnt
# are released); then `tell_customers` for those that call for a notification now, and `coalesce_eta_changes`
# for those that call for an ETA update (domain decides which).
READS = (OrderPlaced, OrderConfirmed, OrderBackordered, OrderReadyToShip, OrderRejected, OrderCancelled, OrderShipped,
         OrderStatusChanged, DiscountOffered, BackorderCreated, BackorderEtaChanged, BackorderFulfilled,
         BackorderCancelled, ReservationRevoked, ProductRegistered, ProductUpdated, AvailabilityChanged)


def inbox_key(message: Message) -> str:
    return message.envelope.id


async def handle(conn: asyncpg.Connection, messages: list[Message], eta_window_s: float,
                 channels: Sequence[str] = ("email",)) -> None:
    learnt = await projections.learn(conn, [m.body for m in messages])
    # Before the outbox is touched: see outbox.LOCK_CONTACTS.
    await outbox.lock_contacts(conn, learnt, {o for m in messages if (o := getattr(m.body, "order_id", None))})
    await outbox.release_waiting(conn, learnt)
    now = datetime.now(UTC)
    await tell_customers(conn, [m for m in messages if not domain.calls_for_eta_update(m.body)], now, channels)
    await coalesce_eta_changes(conn, [m for m in messages if domain.calls_for_eta_update(m.body)], now,
                               eta_window_s, channels)


async def tell_customers(conn: asyncpg.Connection, messages: Sequence[Message], now: datetime,
                         channels: Sequence[str]) -> None:
    """Queue the notification each event calls for, due now, named after its cause; each refused line is told
    by the first that carries it, and remembered."""
    names = await projections.product_names(conn, {sku for m in messages for sku in domain.named_skus(m.body)})
    alternatives = await projections.in_stock_alternatives(
        conn, {m.body.sku for m in messages if isinstance(m.body, BackorderCreated)})
    told = await projections.refusals_told(conn, {m.body.order_id for m in messages if domain.refused(m.body)})
    notifications, newly_told = domain.decide_each([(m.body, m.envelope.id) for m in messages], told, names,
                                                   alternatives)
    queued: dict[UUID, outbox.Queued] = {}  # one cause told twice in a batch is queued once
    for message, notification in zip(messages, notifications):
        envelope = message.envelope
        if notification:
            queued.setdefault(notification.notification_id, outbox.Queued(
                notification, envelope.correlationid or envelope.id, envelope.id, envelope.traceparent))
    await outbox.queue(conn, list(queued.values()), now, channels)
    await projections.remember_refusals_told(conn, newly_told)


async def coalesce_eta_changes(conn: asyncpg.Connection, messages: Sequence[Message], now: datetime,
                               window_s: float, channels: Sequence[str]) -> None:
    """Queue each order's ETA update, or join the one waiting (the rule is domain's)."""
    changes = [(m.body.order_id, m.envelope.id, m.envelope.correlationid or m.envelope.id) for m in messages]
    await outbox.queue_eta_updates(conn, domain.eta_updates(changes, now, window_s), channels)
