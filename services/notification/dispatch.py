"""Sends queued notifications on their channels after their transaction commits. Deliveries are recorded
as sent, with their NotificationSent events, in short transactions of their own every few deliveries
(RECORD_EVERY), never rolled back by a later failure; the notification id travels with each (Message-ID,
Idempotency-Key), so a receiver can drop the few repeats a crash between a channel's answer and that commit
can cause. Rows being sent are leased, so that two dispatchers never send one. A failed delivery is retried
with backoff; a refused one is kept with why."""

import asyncpg
import structlog

from contracts.events import NotificationSent
from services.notification import domain
from services.notification.channels import Outgoing, Permanent, Temporary
from services.runtime.eventstore import NewEvent, append
from services.runtime.loops import Wakeup, drain, run_forever

log = structlog.get_logger()

MAX_ATTEMPTS = 20  # with the backoff below: about an hour of trying
RECORD_EVERY = 20  # deliveries per recording transaction: the most a crash can make a receiver see twice

CLAIM = """
WITH due AS (
    SELECT n.notification_id, n.channel FROM notification_outbox n JOIN order_contacts c USING (order_id)
    WHERE n.sent_at IS NULL AND n.failed_reason IS NULL AND n.send_after <= now()
      AND (n.claimed_until IS NULL OR n.claimed_until < now())
    ORDER BY n.created_at LIMIT $1
    FOR UPDATE OF n SKIP LOCKED
), claimed AS (
    UPDATE notification_outbox n SET claimed_until = now() + interval '5 minutes'
    FROM due WHERE (n.notification_id, n.channel) = (due.notification_id, due.channel)
    RETURNING n.*
)
SELECT claimed.*, c.customer_id, c.customer_email
FROM claimed JOIN order_contacts c USING (order_id) ORDER BY claimed.created_at
"""
ETAS = """
SELECT e.order_id, coalesce(p.name, e.sku) AS name, e.quantity, e.eta
FROM backorder_etas e LEFT JOIN products p USING (sku)
WHERE e.order_id = ANY($1::text[]) AND e.eta IS NOT NULL ORDER BY e.order_id, e.sku
"""
DISCOUNTS = """
SELECT order_id, code, percent FROM discounts
WHERE order_id = ANY($1::text[]) AND NOT mailed AND cause = 'eta_slipped'
"""
MARK_SENT = """
UPDATE notification_outbox SET sent_at = now()
WHERE (notification_id, channel) IN (SELECT * FROM unnest($1::uuid[], $2::text[]))
"""
MARK_DISCOUNTS_MAILED = "UPDATE discounts SET mailed = true WHERE order_id = ANY($1::text[])"
# An ETA update touched while it was in flight: queue a follow-up, so the latest ETA is told too.
FOLLOW_UP = """
INSERT INTO notification_outbox (notification_id, order_id, kind, subject, body, correlation_id, causation_id,
                                 send_after, channel)
SELECT md5(n.notification_id::text || n.touched_at::text)::uuid, n.order_id, n.kind, '', '', n.correlation_id,
       n.causation_id, now(), n.channel
FROM notification_outbox n
JOIN unnest($1::uuid[], $2::text[], $3::timestamptz[]) AS sent(notification_id, channel, touched_at)
    ON (n.notification_id, n.channel) = (sent.notification_id, sent.channel)
WHERE n.touched_at > sent.touched_at
ON CONFLICT DO NOTHING
"""
MARK_FAILED = "UPDATE notification_outbox SET failed_reason = $3 WHERE notification_id = $1 AND channel = $2"
RETRY_LATER = """
UPDATE notification_outbox SET attempts = attempts + 1, claimed_until = NULL,
       send_after = now() + least(300, 0.5 * 2 ^ attempts) * interval '1 second',
       failed_reason = CASE WHEN attempts + 1 >= $3 THEN 'gave up after ' || (attempts + 1) || ' attempts: ' || $4 END
WHERE notification_id = $1 AND channel = $2
"""
RELEASE = """
UPDATE notification_outbox SET claimed_until = NULL
WHERE (notification_id, channel) IN (SELECT * FROM unnest($1::uuid[], $2::text[])) AND sent_at IS NULL
"""


class Dispatcher:
    def __init__(self, pool: asyncpg.Pool, *channels, on_recorded, batch_size: int = 100):
        self._pool = pool
        self._channels = {c.channel: c for c in channels if c is not None}
        self._on_recorded = on_recorded
        self._batch_size = batch_size
        self._wakeup = Wakeup()

    def wake(self) -> None:
        self._wakeup.set()

    async def run(self) -> None:
        await run_forever(self._dispatch_forever, "sending notifications")

    async def _dispatch_forever(self) -> None:
        while True:
            await drain(self.dispatch_once, self._batch_size)
            await self._wakeup.wait()

    async def dispatch_once(self) -> int:
        """Send one batch of due notifications; returns how many were due."""
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(CLAIM, self._batch_size)
            if not rows:
                return 0
            updates = await self._eta_updates(conn, {r["order_id"] for r in rows if r["kind"] == "eta_changed"})
            opened: dict[str, Exception | None] = {}  # channel -> why it could not be opened, if so
            pending = {(r["notification_id"], r["channel"]) for r in rows}
            delivered: list[tuple[asyncpg.Record, bool]] = []
            try:
                for row in rows:
                    if (discount := await self._deliver(conn, row, updates, opened)) is not None:
                        delivered.append((row, discount))
                    pending.discard((row["notification_id"], row["channel"]))
                    if len(delivered) == RECORD_EVERY:
                        await self._record(conn, delivered)
                        delivered = []
            finally:
                await self._record(conn, delivered)
                for name, failure in opened.items():
                    if failure is None:
                        await self._channels[name].close()
                if pending:  # interrupted: due again at once, not after the lease
                    await conn.execute(RELEASE, *zip(*pending))
        return len(rows)

    async def _record(self, conn, delivered: list[tuple[asyncpg.Record, bool]]) -> None:
        """Mark deliveries sent and append their NotificationSent events, in one short transaction."""
        if not delivered:
            return
        events = [
            NewEvent(f"notification-{row['notification_id']}-{row['channel']}", 1,
                     NotificationSent(notification_id=str(row["notification_id"]), order_id=row["order_id"],
                                      customer_id=row["customer_id"], kind=row["kind"], channel=row["channel"]),
                     row["correlation_id"], row["causation_id"])
            for row, _ in delivered
        ]
        async with conn.transaction():
            await conn.execute(MARK_SENT, [r["notification_id"] for r, _ in delivered], [r["channel"] for r, _ in delivered])
            mailed = [row["order_id"] for row, discount in delivered if discount and row["channel"] == "email"]
            if mailed:
                await conn.execute(MARK_DISCOUNTS_MAILED, mailed)
            updates = [(r["notification_id"], r["channel"], r["touched_at"]) for r, _ in delivered if r["kind"] == "eta_changed"]
            if updates:
                await conn.execute(FOLLOW_UP, *zip(*updates))
            await append(conn, events)
        for row, _ in delivered:
            log.info("notification sent", order_id=row["order_id"], kind=row["kind"], channel=row["channel"],
                     notification_id=str(row["notification_id"]), correlation_id=row["correlation_id"])
        self._on_recorded()

    async def _deliver(self, conn, row, updates, opened) -> bool | None:
        """Deliver one; returns whether it carried a goodwill discount, or None if it was not delivered."""
        key = (row["notification_id"], row["channel"])
        channel = self._channels.get(row["channel"])
        if channel is None:
            await conn.execute(MARK_FAILED, *key, f"the {row['channel']} channel is not configured")
            return None
        subject, body, discount = row["subject"], row["body"], row["kind"] == "discount_offered"
        if row["kind"] == "eta_changed":
            if row["order_id"] not in updates:
                await conn.execute(MARK_FAILED, *key, "superseded: no backorder waits any more")
                return None
            subject, body, discount = updates[row["order_id"]]
        try:
            if row["channel"] not in opened:
                opened[row["channel"]] = None
                try:
                    await channel.open()
                except Temporary as error:
                    opened[row["channel"]] = error
            if failure := opened[row["channel"]]:
                raise failure
            await channel.send(Outgoing(str(row["notification_id"]), row["order_id"], row["customer_id"],
                                        row["customer_email"], row["kind"], subject, body))
        except Permanent as refused:
            await conn.execute(MARK_FAILED, *key, str(refused))
            log.error("notification refused", order_id=row["order_id"], channel=row["channel"], error=str(refused))
            return None
        except Temporary as failed:
            await conn.execute(RETRY_LATER, *key, MAX_ATTEMPTS, str(failed))
            log.warning("notification not delivered, will retry", order_id=row["order_id"], channel=row["channel"],
                        attempt=row["attempts"] + 1, error=str(failed))
            return None
        return discount

    async def _eta_updates(self, conn, order_ids: set[str]) -> dict[str, tuple[str, str, bool]]:
        """(subject, body, offers a discount) of the ETA update of each order, written now."""
        if not order_ids:
            return {}
        order_ids = sorted(order_ids)
        waiting: dict[str, list] = {o: [] for o in order_ids}
        for r in await conn.fetch(ETAS, order_ids):
            waiting[r["order_id"]].append((r["name"], r["quantity"], r["eta"]))
        discounts = {r["order_id"]: (r["code"], r["percent"]) for r in await conn.fetch(DISCOUNTS, order_ids)}
        updates = {}
        for order_id in order_ids:
            if written := domain.eta_update(order_id, waiting[order_id], discounts.get(order_id)):
                updates[order_id] = (*written, order_id in discounts)
        return updates
