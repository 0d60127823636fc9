"""Sends queued notifications on their channels after their transaction commits, at most once each. Every
delivery is marked as being sent before its channel gets it, and recorded as sent, with its NotificationSent
event, in a short transaction of its own the moment the channel accepts it. A dispatcher killed in between
leaves that one delivery in doubt: it may have been sent, so it is kept as failed with why, never sent
again (the notification id travels with it, as Message-ID and Idempotency-Key). Deliveries being sent are
leased, so that two dispatchers never send one; the lease of a dispatcher that died ends with its database
session, and another takes over what it had not started at once. A failed delivery is retried with backoff;
a refused one is kept with why."""

import time

import asyncpg
import structlog
from opentelemetry.trace import SpanKind

from contracts.events import NotificationSent
from services.notification import domain, outbox, projections
from services.notification.channels import Outgoing, Permanent, Temporary
from services.notification.outbox import Delivery
from services.runtime import tracing
from services.runtime.eventstore import NewEvent, append
from services.runtime.loops import Wakeup, drain, run_forever

log = structlog.get_logger()

MAX_ATTEMPTS = 20  # with the outbox's backoff (doubling to 5 minutes): about an hour of trying
# Channels stay open (an SMTP session, the webhook's kept-alive connections) across batches, and are closed
# once nothing was sent for this long: well within the 5 minutes a mail server waits on an idle client.
IDLE_CLOSE_S = 30

Sent = tuple[Delivery, bool, str | None]  # a delivery, whether it carried a discount, the traceparent of its span


class Dispatcher:
    def __init__(self, pool: asyncpg.Pool, *channels, on_recorded, batch_size: int = 100):
        self._pool = pool
        self._channels = {c.channel: c for c in channels if c is not None}
        self._on_recorded = on_recorded
        self._batch_size = batch_size
        self._wakeup = Wakeup()
        self._busy = False  # something was due since the dispatcher last looked

    def wake(self) -> None:
        self._wakeup.set()

    async def run(self) -> None:
        await run_forever(self._dispatch_forever, "sending notifications")

    async def _dispatch_forever(self) -> None:
        try:
            idle_since = time.monotonic()
            while True:
                await drain(self.dispatch_once, self._batch_size)
                if self._busy:
                    idle_since, self._busy = time.monotonic(), False
                elif time.monotonic() - idle_since > IDLE_CLOSE_S:
                    await self.close()
                await self._wakeup.wait()
        finally:
            await self.close()

    async def close(self) -> None:
        """Close the channels; a delivery opens its channel again."""
        for channel in self._channels.values():
            await channel.close()

    async def dispatch_once(self) -> int:
        """Send one batch of due notifications; returns how many were due."""
        async with self._pool.acquire() as conn:
            if settled := await outbox.settle_in_doubt(conn):
                log.warning("notifications left in doubt by a dispatcher that stopped, not sent again", count=settled)
            due = await outbox.claim(conn, self._batch_size)
            if not due:
                return 0
            self._busy = True
            updates = await self._eta_updates(conn, {d.order_id for d in due if d.kind == domain.ETA_UPDATE})
            opened: dict[str, Exception | None] = {}  # channel -> why it could not be opened this batch, if so
            pending = {d.key for d in due}
            recorded = 0
            try:
                for delivery in due:
                    if (sent := await self._deliver(conn, delivery, updates, opened)) is not None:
                        await self._record(conn, [sent])
                        recorded += 1
                    pending.discard(delivery.key)
            finally:
                if recorded:
                    self._on_recorded()  # the relay publishes the batch's NotificationSent events in one pass
                await outbox.release(conn, pending)  # interrupted: due again at once, not after the lease
        return len(due)

    async def _record(self, conn, delivered: list[Sent]) -> None:
        """Mark deliveries sent and append their NotificationSent events, in one short transaction."""
        if not delivered:
            return
        events = [
            NewEvent(f"notification-{d.notification_id}-{d.channel}", 1,
                     NotificationSent(notification_id=str(d.notification_id), order_id=d.order_id,
                                      customer_id=d.customer_id, kind=d.kind, channel=d.channel),
                     d.correlation_id, d.causation_id, traceparent)
            for d, _, traceparent in delivered
        ]
        async with conn.transaction():
            await outbox.mark_sent(conn, [d for d, _, _ in delivered])
            # Only the mail takes the discount off the list: a webhook sent first must not drop it from the mail.
            await projections.mark_discounts_mailed(
                conn, [d.order_id for d, discount, _ in delivered if discount and d.channel == "email"])
            await append(conn, events)
        for d, _, _ in delivered:
            log.info("notification sent", order_id=d.order_id, kind=d.kind, channel=d.channel,
                     notification_id=str(d.notification_id), correlation_id=d.correlation_id)

    async def _deliver(self, conn, delivery: Delivery, updates, opened) -> Sent | None:
        """Deliver one; returns it with whether it carried a goodwill discount and the traceparent of the span
        that sent it, or None if it was not delivered."""
        channel = self._channels.get(delivery.channel)
        if channel is None:
            await outbox.refuse(conn, delivery, f"the {delivery.channel} channel is not configured")
            return None
        subject, body, discount = delivery.subject, delivery.body, delivery.kind == "discount_offered"
        if delivery.kind == domain.ETA_UPDATE:
            if delivery.order_id not in updates:
                await outbox.refuse(conn, delivery, "superseded: no backorder waits any more")
                return None
            subject, body, discount = updates[delivery.order_id]
        try:
            if delivery.channel not in opened:
                opened[delivery.channel] = None
                try:
                    await channel.open()
                except Temporary as error:
                    opened[delivery.channel] = error
            if failure := opened[delivery.channel]:
                raise failure
            # A child of the span that queued it: the mail ends the trace of the command that caused it. A
            # failure is recorded on the span as it leaves it.
            await outbox.sending(conn, delivery)
            with tracing.tracer.start_as_current_span(
                    f"notification send {delivery.kind} by {delivery.channel}", tracing.parent(delivery.traceparent),
                    SpanKind.CLIENT, {"orderflow.service": "notification", "orderflow.channel": delivery.channel,
                                      "orderflow.order_id": delivery.order_id}) as span:
                await channel.send(Outgoing(str(delivery.notification_id), delivery.order_id, delivery.customer_id,
                                            delivery.customer_email, delivery.kind, subject, body))
        except Permanent as refused:
            await outbox.refuse(conn, delivery, str(refused))
            log.error("notification refused", order_id=delivery.order_id, channel=delivery.channel,
                      error=str(refused))
            return None
        except Temporary as failed:
            await channel.close()  # its session may be broken: the next delivery opens a new one
            opened.pop(delivery.channel, None)
            await outbox.retry_later(conn, delivery, str(failed), MAX_ATTEMPTS)
            log.warning("notification not delivered, will retry", order_id=delivery.order_id,
                        channel=delivery.channel, attempt=delivery.attempts + 1, error=str(failed))
            return None
        return delivery, discount, tracing.traceparent(span)

    async def _eta_updates(self, conn, order_ids: set[str]) -> dict[str, tuple[str, str, bool]]:
        """(subject, body, offers a discount) of the ETA update of each order, written now from the
        latest ETAs: the coalescing rule's "written at send time"."""
        if not order_ids:
            return {}
        order_ids = sorted(order_ids)
        waiting = await projections.waiting(conn, order_ids)
        discounts = await projections.slip_discounts_to_mail(conn, order_ids)
        updates = {}
        for order_id in order_ids:
            if written := domain.eta_update(order_id, waiting[order_id], discounts.get(order_id)):
                updates[order_id] = (*written, order_id in discounts)
        return updates
