"""Sends queued notifications by email after their transaction commits, and records each as
NotificationSent. A notification is marked sent in the same transaction that records the event; the
mail carries the notification id as its Message-ID, so a receiver can drop the rare resend after a crash
between the SMTP reply and that commit."""

import asyncio
from email.message import EmailMessage
from urllib.parse import urlsplit
from uuid import uuid4

import aiosmtplib
import asyncpg
import structlog

from contracts.events import NotificationSent
from services.runtime.eventstore import append

log = structlog.get_logger()

PENDING = """
SELECT m.notification_id, m.order_id, m.kind, m.subject, m.body, m.correlation_id, m.causation_id,
       c.customer_id, c.customer_email
FROM mail_outbox m JOIN order_contacts c USING (order_id)
WHERE m.sent_at IS NULL AND m.failed_reason IS NULL
ORDER BY m.created_at LIMIT $1
FOR UPDATE OF m SKIP LOCKED
"""
MARK_SENT = "UPDATE mail_outbox SET sent_at = now() WHERE notification_id = ANY($1::uuid[])"
MARK_FAILED = "UPDATE mail_outbox SET failed_reason = $2 WHERE notification_id = $1"


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
            except (OSError, aiosmtplib.SMTPException) as error:
                log.warning("mail server unavailable, will retry", error=str(error), retry_in_s=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30)
                continue
            try:
                await asyncio.wait_for(self._wakeup.wait(), timeout=1.0)
            except TimeoutError:
                pass
            self._wakeup.clear()

    async def dispatch_once(self) -> int:
        """Send one batch of pending notifications; returns how many were pending."""
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(PENDING, self._batch_size)
            if not rows:
                return 0
            sent = []
            try:
                async with aiosmtplib.SMTP(hostname=self._host, port=self._port, start_tls=False) as smtp:
                    for row in rows:
                        try:
                            await smtp.send_message(self._mail(row))
                            sent.append(row)
                        except aiosmtplib.SMTPRecipientsRefused as refused:
                            await conn.execute(MARK_FAILED, row["notification_id"], str(refused))
                            log.error("notification refused by the mail server", order_id=row["order_id"],
                                      notification_id=str(row["notification_id"]), error=str(refused))
            finally:
                # Whatever went out is recorded, even when the server failed part way.
                await self._record(conn, sent)
        if sent:
            self._on_recorded()
        return len(rows)

    def _mail(self, row: asyncpg.Record) -> EmailMessage:
        mail = EmailMessage()
        mail["From"] = self._mail_from
        mail["To"] = row["customer_email"]
        mail["Subject"] = row["subject"]
        mail["Message-ID"] = f"<{row['notification_id']}@orderflow>"
        mail["X-Orderflow-Order-Id"] = row["order_id"]
        mail["X-Orderflow-Kind"] = row["kind"]
        mail.set_content(row["body"])
        return mail

    async def _record(self, conn: asyncpg.Connection, sent: list[asyncpg.Record]) -> None:
        if not sent:
            return
        await conn.execute(MARK_SENT, [row["notification_id"] for row in sent])
        columns: tuple[list, ...] = ([], [], [], [], [], [], [])
        for row in sent:
            event = NotificationSent(
                notification_id=str(row["notification_id"]),
                order_id=row["order_id"],
                customer_id=row["customer_id"],
                kind=row["kind"],
                channel="email",
            )
            values = (f"notification-{row['notification_id']}", 1, uuid4(), "NotificationSent",
                      event.model_dump_json(), row["correlation_id"], row["causation_id"])
            for column, value in zip(columns, values, strict=True):
                column.append(value)
            log.info("notification sent", order_id=row["order_id"], kind=row["kind"],
                     notification_id=str(row["notification_id"]), correlation_id=row["correlation_id"])
        await append(conn, columns)
