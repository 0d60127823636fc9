"""The notification outbox: notifications queued in the handler's transaction, one row per channel; leased,
marked sent, retried or refused by the dispatcher."""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

import asyncpg
import structlog

from services.notification import domain
from services.notification.domain import EtaUpdate, Notification

log = structlog.get_logger()

# A notification can overtake the OrderPlaced that says whom to send it to: queued while its order's contact
# is not known, it waits for it (migration 010), out of the claim's way.
QUEUE = """
INSERT INTO notification_outbox (notification_id, order_id, kind, subject, body, correlation_id, causation_id,
                                 send_after, traceparent, channel, waiting_for_contact)
SELECT n.*, channel, NOT EXISTS (SELECT FROM order_contacts c WHERE c.order_id = n.order_id)
FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
            $8::timestamptz[], $9::text[])
    AS n(notification_id, order_id, kind, subject, body, correlation_id, causation_id, send_after, traceparent)
CROSS JOIN unnest($10::text[]) AS channel
ON CONFLICT DO NOTHING
"""
# The coalescing rule (see domain): one waiting ETA update (kind domain.ETA_UPDATE, as the partial unique
# index of migration 004 names it) per order and channel, its text written at send time. A change that
# finds one waiting touches it; if that one is being sent, FOLLOW_UP queues another after it.
QUEUE_ETA_UPDATES = """
INSERT INTO notification_outbox (notification_id, order_id, kind, subject, body, correlation_id, causation_id,
                                 send_after, channel, waiting_for_contact)
SELECT n.notification_id, n.order_id, 'eta_changed', '', '', n.correlation_id, n.causation_id, n.send_after, channel,
       NOT EXISTS (SELECT FROM order_contacts c WHERE c.order_id = n.order_id)
FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::timestamptz[])
    AS n(notification_id, order_id, correlation_id, causation_id, send_after)
CROSS JOIN unnest($6::text[]) AS channel
ON CONFLICT (order_id, channel) WHERE kind = 'eta_changed' AND sent_at IS NULL AND failed_reason IS NULL
DO UPDATE SET touched_at = clock_timestamp()
"""
# Rows waiting for their order's contact are not read (notification_outbox_to_send leaves them out). A lease
# whose dispatcher's session is gone (the process died) is over: a dispatcher leases through one session.
CLAIM = """
WITH live AS (SELECT array_agg(pid) AS pids FROM pg_stat_activity), due AS (
    SELECT n.notification_id, n.channel FROM notification_outbox n JOIN order_contacts c USING (order_id), live
    WHERE n.sent_at IS NULL AND n.failed_reason IS NULL AND NOT n.waiting_for_contact AND n.sending_since IS NULL
      AND n.send_after <= now()
      AND (n.claimed_until IS NULL OR n.claimed_until < now() OR n.claimed_by <> ALL (live.pids))
    ORDER BY n.created_at LIMIT $1
    FOR UPDATE OF n SKIP LOCKED
), claimed AS (
    UPDATE notification_outbox n SET claimed_until = now() + interval '5 minutes', claimed_by = pg_backend_pid()
    FROM due WHERE (n.notification_id, n.channel) = (due.notification_id, due.channel)
    RETURNING n.*
)
SELECT claimed.*, c.customer_id, c.customer_email
FROM claimed JOIN order_contacts c USING (order_id) ORDER BY claimed.created_at
"""
# Committed before the channel is given a delivery: if the dispatcher dies before noting it accepted (ACCEPTED),
# the channel may have taken it, and it is settled as in doubt rather than sent a second time.
SENDING = "UPDATE notification_outbox SET sending_since = now() WHERE notification_id = $1 AND channel = $2"
# Also tells whether accepted deliveries wait to be recorded: in one round trip, as it runs before every batch.
IN_DOUBT = """
WITH live AS (SELECT array_agg(pid) AS pids FROM pg_stat_activity), settled AS (
    UPDATE notification_outbox n
    SET failed_reason = 'its dispatcher stopped while sending it: it may have been sent, so it is not sent again'
    FROM live
    WHERE n.sent_at IS NULL AND n.failed_reason IS NULL AND n.sending_since IS NOT NULL
      AND (n.claimed_until IS NULL OR n.claimed_until < now() OR n.claimed_by <> ALL (live.pids))
      AND NOT EXISTS (SELECT FROM notifications_to_record r
                      WHERE (r.notification_id, r.channel) = (n.notification_id, n.channel))
    RETURNING 1
)
SELECT (SELECT count(*) FROM settled) AS settled, EXISTS (SELECT FROM notifications_to_record) AS unrecorded
"""
# The channel took a delivery: it waits to be recorded with its batch (migration 009). The same statement
# marks the delivery to be sent next, which saves it a round trip of its own (SENDING).
ACCEPTED = """
WITH accepted AS (
    INSERT INTO notifications_to_record (notification_id, channel, traceparent, discount, touched_at)
    VALUES ($1, $2, $3, $4, $5)
)
UPDATE notification_outbox SET sending_since = now() WHERE notification_id = $6 AND channel = $7
"""
# Deliveries accepted and not yet recorded, whichever dispatcher sent them, marked sent; SKIP LOCKED: two
# dispatchers recording at once take different ones.
RECORD_SENT = """
WITH taken AS (
    DELETE FROM notifications_to_record WHERE (notification_id, channel) IN (
        SELECT notification_id, channel FROM notifications_to_record LIMIT $1 FOR UPDATE SKIP LOCKED)
    RETURNING *
), sent AS (
    UPDATE notification_outbox n SET sent_at = now() FROM taken
    WHERE (n.notification_id, n.channel) = (taken.notification_id, taken.channel)
    RETURNING n.notification_id, n.channel, n.order_id, n.kind, n.correlation_id, n.causation_id, n.created_at,
              taken.traceparent, taken.discount, taken.touched_at
)
SELECT sent.*, c.customer_id FROM sent JOIN order_contacts c USING (order_id) ORDER BY sent.created_at
"""
# An ETA update touched while it was in flight: queue a follow-up, so the latest ETA is told too.
FOLLOW_UP = """
INSERT INTO notification_outbox (notification_id, order_id, kind, subject, body, correlation_id, causation_id,
                                 send_after, traceparent, channel)
SELECT md5(n.notification_id::text || n.touched_at::text)::uuid, n.order_id, n.kind, '', '', n.correlation_id,
       n.causation_id, now(), n.traceparent, n.channel
FROM notification_outbox n
JOIN unnest($1::uuid[], $2::text[], $3::timestamptz[]) AS sent(notification_id, channel, touched_at)
    ON (n.notification_id, n.channel) = (sent.notification_id, sent.channel)
WHERE n.touched_at > sent.touched_at
ON CONFLICT DO NOTHING
"""
REFUSE = "UPDATE notification_outbox SET failed_reason = $3 WHERE notification_id = $1 AND channel = $2"
RETRY_LATER = """
UPDATE notification_outbox SET attempts = attempts + 1, claimed_until = NULL, sending_since = NULL,
       send_after = now() + least(300, 0.5 * 2 ^ attempts) * interval '1 second',
       failed_reason = CASE WHEN attempts + 1 >= $3 THEN 'gave up after ' || (attempts + 1) || ' attempts: ' || $4 END
WHERE notification_id = $1 AND channel = $2
"""
# A delivery marked as being sent is given back unmarked, unless its channel may have taken it ($3, $4).
RELEASE = """
UPDATE notification_outbox
SET claimed_until = NULL,
    sending_since = CASE WHEN (notification_id, channel) = ($3::uuid, $4::text) THEN sending_since END
WHERE (notification_id, channel) IN (SELECT * FROM unnest($1::uuid[], $2::text[])) AND sent_at IS NULL
"""
# Whether a row waits for its contact is decided when it is queued, and undone when the contact is learnt: two
# transactions doing one each (two instances, one handling the OrderPlaced, the other what overtook it) must not
# miss each other, or the row would wait for good. So both lock the order first, in one statement per batch
# before the outbox is touched: a batch that learns the contact shares the lock, one that may queue for an order
# whose contact it cannot see takes it alone. The later of the two waits for the earlier to commit, and then
# sees its row (and releases it) or its contact (and does not queue the row waiting). Locks taken at once in one
# order cannot deadlock. Orders are hashed to 1,024 keys, so a batch takes at most that many locks however large
# it is (the server's lock table is bounded); two orders sharing a key cost at most a wait for the other batch's
# commit, and only where one batch queues for an order whose contact it has not seen.
LOCK_CONTACTS = """
SELECT count(CASE WHEN alone THEN pg_advisory_xact_lock(hashtext(current_schema() || '.contacts'), key)
                  ELSE pg_advisory_xact_lock_shared(hashtext(current_schema() || '.contacts'), key) END)
FROM (SELECT hashtext(order_id) & 1023 AS key, bool_or(alone) AS alone
      FROM (SELECT learnt, false FROM unnest($1::text[]) AS learnt
            UNION ALL
            SELECT told, true FROM unnest($2::text[]) AS told
            WHERE NOT EXISTS (SELECT FROM order_contacts c WHERE c.order_id = told)) AS orders(order_id, alone)
      GROUP BY key ORDER BY key) AS keys
"""
RELEASE_WAITING = """
UPDATE notification_outbox SET waiting_for_contact = false WHERE waiting_for_contact AND order_id = ANY($1::text[])
"""
# Far longer than any overtaking explains: kept as refused, with why, where an operator reads refusals.
REFUSE_CONTACTLESS = """
UPDATE notification_outbox n
SET waiting_for_contact = false, failed_reason = 'no OrderPlaced for order ' || n.order_id || ' arrived within '
                                                 || $3::int || ' hours'
WHERE (n.notification_id, n.channel) IN (
    SELECT notification_id, channel FROM notification_outbox WHERE waiting_for_contact AND created_at < $1
    LIMIT $2 FOR UPDATE SKIP LOCKED)
RETURNING n.order_id
"""
# For /metrics at every scrape: the partial index of rows not sent (mail_outbox_pending, migration 001)
# keeps it from reading the sent ones, which pile up.
PENDING_BY_CHANNEL = """
SELECT channel, count(*) AS pending FROM notification_outbox
WHERE sent_at IS NULL AND failed_reason IS NULL GROUP BY channel
"""
# Sent rows only keep their cause from being told twice, which the inbox does too: pruned as its message ids
# are (retention.py), in bounded batches. A refused one stays: it is what an operator acts on.
PRUNE_SENT = """
DELETE FROM notification_outbox WHERE (notification_id, channel) IN (
    SELECT notification_id, channel FROM notification_outbox WHERE sent_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)
"""


@dataclass(frozen=True)
class Queued:
    """A notification to queue, with the message that caused it."""

    notification: Notification
    correlation_id: str
    causation_id: str
    traceparent: str | None = None  # of the span that handled the cause: the sending span's parent


@dataclass(frozen=True)
class Delivery:
    """One notification on one channel, leased to a dispatcher, with whom it goes to."""

    notification_id: UUID
    channel: str
    order_id: str
    kind: str
    subject: str
    body: str
    correlation_id: str | None
    causation_id: str
    attempts: int
    touched_at: datetime
    customer_id: str
    customer_email: str
    traceparent: str | None

    @property
    def key(self) -> tuple[UUID, str]:
        return self.notification_id, self.channel


async def queue(conn: asyncpg.Connection, queued: Sequence[Queued], now: datetime, channels: Sequence[str]) -> None:
    """Queue each notification on every channel, due now; one already queued (sent or not) stays as it is."""
    if not queued:
        return
    rows = [(q.notification.notification_id, q.notification.order_id, q.notification.kind, q.notification.subject,
             q.notification.body, q.correlation_id, q.causation_id, now, q.traceparent) for q in queued]
    await conn.execute(QUEUE, *zip(*rows), list(channels))


async def queue_eta_updates(conn: asyncpg.Connection, updates: Sequence[EtaUpdate], channels: Sequence[str]) -> None:
    """Queue each order's ETA update on every channel, or touch the one waiting."""
    if not updates:
        return
    rows = [(u.notification_id, u.order_id, u.correlation_id, u.causation_id, u.send_after) for u in updates]
    await conn.execute(QUEUE_ETA_UPDATES, *zip(*rows), list(channels))


async def lock_contacts(conn: asyncpg.Connection, learnt: Sequence[str], told: Iterable[str]) -> None:
    """Lock the orders whose contacts a batch `learnt` and those it may queue notifications for (`told`), before
    it touches the outbox: see LOCK_CONTACTS."""
    told = sorted(set(told))
    if learnt or told:
        await conn.execute(LOCK_CONTACTS, list(learnt), told)


async def release_waiting(conn: asyncpg.Connection, learnt: Sequence[str]) -> None:
    """The contacts of the orders `learnt` are known now: their waiting notifications are due."""
    if learnt:
        await conn.execute(RELEASE_WAITING, list(learnt))


async def claim(conn: asyncpg.Connection, limit: int) -> list[Delivery]:
    """Lease up to `limit` due deliveries, oldest first."""
    return [Delivery(**{f: r[f] for f in Delivery.__dataclass_fields__}) for r in await conn.fetch(CLAIM, limit)]


async def sending(conn: asyncpg.Connection, delivery: Delivery) -> None:
    """The delivery goes to its channel now (committed first: see SENDING)."""
    await conn.execute(SENDING, *delivery.key)


async def settle_in_doubt(conn: asyncpg.Connection) -> tuple[int, bool]:
    """Deliveries whose dispatcher died between handing them to the channel and noting them accepted: kept as
    failed with why, never sent again (at most once). Returns how many, and whether accepted deliveries wait
    to be recorded (as a dispatcher that stopped leaves them)."""
    row = await conn.fetchrow(IN_DOUBT)
    return row["settled"], row["unrecorded"]


async def accepted(conn: asyncpg.Connection, delivery: Delivery, traceparent: str | None, discount: bool,
                   following: Delivery | None) -> None:
    """Its channel accepted the delivery (sent by the span of `traceparent`, telling a goodwill discount or
    not): to be recorded with its batch. `following` is marked as being sent next (see SENDING)."""
    await conn.execute(ACCEPTED, *delivery.key, traceparent, discount, delivery.touched_at,
                       *(following.key if following else (None, None)))


@dataclass(frozen=True)
class Sent:
    """A delivery recorded as sent: its NotificationSent event is to be appended."""

    notification_id: UUID
    channel: str
    order_id: str
    kind: str
    customer_id: str
    correlation_id: str | None
    causation_id: str
    traceparent: str | None  # of the span that sent it
    discount: bool


async def record_sent(conn: asyncpg.Connection, limit: int) -> list[Sent]:
    """Mark up to `limit` accepted deliveries sent (in the caller's transaction); an ETA update touched since
    its text was written gets its follow-up."""
    rows = await conn.fetch(RECORD_SENT, limit)
    updates = [(r["notification_id"], r["channel"], r["touched_at"]) for r in rows if r["kind"] == domain.ETA_UPDATE]
    if updates:
        await conn.execute(FOLLOW_UP, *zip(*updates))
    return [Sent(**{f: r[f] for f in Sent.__dataclass_fields__}) for r in rows]


async def refuse(conn: asyncpg.Connection, delivery: Delivery, reason: str) -> None:
    """Never to be sent as it is; kept with why."""
    await conn.execute(REFUSE, *delivery.key, reason)


async def retry_later(conn: asyncpg.Connection, delivery: Delivery, error: str, max_attempts: int) -> None:
    """Due again after a backoff that doubles per attempt; given up (with why) after `max_attempts`."""
    await conn.execute(RETRY_LATER, *delivery.key, max_attempts, error)


async def release(conn: asyncpg.Connection, keys: Iterable[tuple[UUID, str]],
                  handed: tuple[UUID, str] | None) -> None:
    """Give back leased deliveries not sent: due again at once, not after the lease. The one `handed` to its
    channel stays marked as being sent: it is in doubt."""
    if keys := list(keys):
        await conn.execute(RELEASE, *zip(*keys), *(handed or (None, None)))


async def pending_by_channel(pool: asyncpg.Pool) -> dict[str, int]:
    """How many notifications wait to be sent (due or not, leased or not) on each channel that has any."""
    return {r["channel"]: r["pending"] for r in await pool.fetch(PENDING_BY_CHANNEL)}


async def refuse_contactless(pool: asyncpg.Pool, older_than: datetime, batch_size: int) -> int:
    """Refuse up to `batch_size` notifications queued before `older_than` that still wait for their order's
    contact (the retention loop runs it as it prunes); returns how many."""
    hours = round((datetime.now(UTC) - older_than) / timedelta(hours=1))
    order_ids = [r["order_id"] for r in await pool.fetch(REFUSE_CONTACTLESS, older_than, batch_size, hours)]
    if order_ids:
        log.warning("notifications refused: their order's OrderPlaced never arrived", count=len(order_ids),
                    waited_hours=hours, order_ids=sorted(set(order_ids)))
    return len(order_ids)


async def prune_sent(pool: asyncpg.Pool, older_than: datetime, batch_size: int) -> int:
    """Delete up to `batch_size` notifications sent before `older_than`; returns how many."""
    return int((await pool.execute(PRUNE_SENT, older_than, batch_size)).split()[-1])
