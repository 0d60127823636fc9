"""Sends queued notifications by email after their transaction commits. Each mail is recorded as sent,
with its NotificationSent event, in a short transaction of its own the moment the mail server accepts it;
the mail's Message-ID is the notification id, so a receiver can drop the rare resend after a crash between
the server's reply and that commit. Rows being sent are leased, so that two dispatchers never send one."""

import asyncio
from email.message import EmailMessage
from urllib.parse import urlsplit

import aiosmtplib
import asyncpg
import structlog

from contracts.events import NotificationSent
from services.notification import domain
from services.runtime.eventstore import NewEvent, append

log = structlog.get_logger()

CLAIM = """
WITH due AS (
    SELECT m.notification_id FROM mail_outbox m JOIN order_contacts c USING (order_id)
    WHERE m.sent_at IS NULL AND m.failed_reason IS NULL AND m.send_after <= now()
      AND (m.claimed_until IS NULL OR m.claimed_until < now())
    ORDER BY m.created_at LIMIT $1
    FOR UPDATE OF m SKIP LOCKED
), claimed AS (
    UPDATE mail_outbox m SET claimed_until = now() + interval '30 seconds'
    FROM due WHERE m.notification_id = due.notification_id
    RETURNING m.*
)
SELECT claimed.*, c.customer_id, c.customer_email
FROM claimed JOIN order_contacts c USING (order_id) ORDER BY claimed.created_at
"""
ETAS = """
SELECT e.order_id, coalesce(p.name, e.sku) AS name, e.quantity, e.eta
FROM backorder_etas e LEFT JOIN products p USING (sku)
WHERE e.order_id = ANY($1::text[]) AND e.eta IS NOT NULL ORDER BY e.order_id, e.sku
"""
DISCOUNTS = "SELECT order_id, code, percent FROM discounts WHERE order_id = ANY($1::text[]) AND NOT mailed"
MARK_SENT = "UPDATE mail_outbox SET sent_at = now() WHERE notification_id = $1"
MARK_DISCOUNT_MAILED = "UPDATE discounts SET mailed = true WHERE order_id = $1"
MARK_FAILED = "UPDATE mail_outbox SET failed_reason = $2 WHERE notification_id = $1"
RELEASE = "UPDATE mail_outbox SET claimed_until = NULL WHERE notification_id = ANY($1::uuid[]) AND sent_at IS NULL"


class Dispatcher:
    def __init__(self, pool: asyncpg.Pool, smtp_url: str, mail_from: str, on_recorded, batch_size: int = 100):
        url = urlsplit(smtp_url)
        self._host, self._port = url.hostname or "127.0.0.1", url.port or 25
        self._pool = pool
        self._mail_from = mail_from
        self._on_recorded = on_recorded
        self._batch_size = batch_size
        self._wakeup = asyncio.Event()

    def wake(self) -> None:
        self._wakeup.set()

    async def run(self) -> None:
        backoff = 0.5
        while True:
            try:
                while await self.dispatch_once() == self._batch_size:
                    pass
                backoff = 0.5
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the mail server or the database: try again, never die
                log.warning("sending notifications failed, will retry", error=repr(error), retry_in_s=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30)
                continue
            try:
                await asyncio.wait_for(self._wakeup.wait(), timeout=1.0)
            except TimeoutError:
                pass
            self._wakeup.clear()

    async def dispatch_once(self) -> int:
        """Send one batch of due notifications; returns how many were due."""
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(CLAIM, self._batch_size)
            if not rows:
                return 0
            updates = await self._eta_updates(conn, [r["order_id"] for r in rows if r["kind"] == "eta_changed"])
            unsent = {row["notification_id"] for row in rows}
            try:
                async with aiosmtplib.SMTP(hostname=self._host, port=self._port, start_tls=False) as smtp:
                    for row in rows:
                        await self._send_one(conn, smtp, row, updates)
                        unsent.discard(row["notification_id"])
            finally:
                if unsent:  # not sent because the server failed: due again at once, not after the lease
                    await conn.execute(RELEASE, list(unsent))
        return len(rows)

    async def _send_one(self, conn, smtp, row, updates) -> None:
        subject, body, discount = row["subject"], row["body"], False
        if row["kind"] == "eta_changed":
            update = updates.get(row["order_id"])
            if update is None:
                await conn.execute(MARK_FAILED, row["notification_id"], "superseded: no backorder waits any more")
                return
            subject, body, discount = update
        try:
            await smtp.send_message(self._mail(row, subject, body))
        except aiosmtplib.SMTPResponseException as refused:
            if refused.code < 500:
                raise  # temporary: the batch stops and is tried again
            await conn.execute(MARK_FAILED, row["notification_id"], f"{refused.code} {refused.message}")
            log.error("notification refused by the mail server", order_id=row["order_id"], error=str(refused))
            return
        async with conn.transaction():
            await conn.execute(MARK_SENT, row["notification_id"])
            if discount:
                await conn.execute(MARK_DISCOUNT_MAILED, row["order_id"])
            event = NotificationSent(notification_id=str(row["notification_id"]), order_id=row["order_id"],
                                     customer_id=row["customer_id"], kind=row["kind"], channel="email")
            await append(conn, [NewEvent(f"notification-{row['notification_id']}", 1, event,
                                         row["correlation_id"], row["causation_id"])])
        log.info("notification sent", order_id=row["order_id"], kind=row["kind"],
                 notification_id=str(row["notification_id"]), correlation_id=row["correlation_id"])
        self._on_recorded()

    async def _eta_updates(self, conn, order_ids: list[str]) -> dict[str, tuple[str, str, bool]]:
        """(subject, body, offers a discount) of the ETA update of each order, written now."""
        if not order_ids:
            return {}
        waiting: dict[str, list] = {o: [] for o in order_ids}
        for r in await conn.fetch(ETAS, order_ids):
            waiting[r["order_id"]].append((r["name"], r["quantity"], r["eta"]))
        discounts = {r["order_id"]: (r["code"], r["percent"]) for r in await conn.fetch(DISCOUNTS, order_ids)}
        updates = {}
        for order_id in order_ids:
            if written := domain.eta_update(order_id, waiting[order_id], discounts.get(order_id)):
                updates[order_id] = (*written, order_id in discounts)
        return updates

    def _mail(self, row: asyncpg.Record, subject: str, body: str) -> EmailMessage:
        mail = EmailMessage()
        mail["From"] = self._mail_from
        mail["To"] = row["customer_email"]
        mail["Subject"] = subject
        mail["Message-ID"] = f"<{row['notification_id']}@orderflow>"
        mail["X-Orderflow-Order-Id"] = row["order_id"]
        mail["X-Orderflow-Kind"] = row["kind"]
        mail.set_content(body)
        return mail
