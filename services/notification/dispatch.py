"""Sends queued notifications on their channels after their transaction commits, at most once each. Every
delivery is marked as being sent before its channel gets it, and noted as accepted the moment the channel
accepts it, in one statement with the mark of the delivery after it; a batch's accepted deliveries are
recorded as sent, with their NotificationSent events, in one transaction. A dispatcher killed between
handing a delivery to its channel and noting it accepted leaves that one delivery in doubt: it may have been
sent, so it is kept as failed with why, never sent again (the notification id travels with it, as
Message-ID and Idempotency-Key); what it had noted accepted and not yet recorded, the next dispatcher
records. Deliveries being sent are leased, so that two dispatchers never send one; the lease of a
dispatcher that died ends with its database session, and another takes over what it had not started at
once. A failed delivery is retried with backoff; a refused one is kept with why."""

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

Ready = tuple[Delivery, Outgoing, bool]  # a delivery, what to send, whether that tells a goodwill discount
RECORD_LIMIT = 1000  # deliveries recorded in one transaction: more than all dispatchers have in hand
# How often a dispatcher looks for deliveries left in doubt by one that stopped: a rare event, and the look
# reads every backend's pid, which before each batch cost more than the batch at low rates.
SETTLE_EVERY_S = 1.0


class Dispatcher:
    def __init__(self, pool: asyncpg.Pool, *channels, on_recorded, batch_size: int = 100):
        self._pool = pool
        self._channels = {c.channel: c for c in channels if c is not None}
        self._on_recorded = on_recorded
        self._batch_size = batch_size
        self._wakeup = Wakeup()
        self._busy = False  # something was due since the dispatcher last looked
        self._settled_at = -SETTLE_EVERY_S

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
            if time.monotonic() - self._settled_at >= SETTLE_EVERY_S:
                self._settled_at = time.monotonic()
                settled, unrecorded = await outbox.settle_in_doubt(conn)
                if settled:
                    log.warning("notifications left in doubt by a dispatcher that stopped, not sent again",
                                count=settled)
                if unrecorded:
                    await self._record(conn)  # what a dispatcher that stopped had sent and not recorded
            due = await outbox.claim(conn, self._batch_size)
            if not due:
                return 0
            self._busy = True
            updates = await self._eta_updates(conn, {d.order_id for d in due if d.kind == domain.ETA_UPDATE})
            ready = [r for d in due if (r := await self._ready(conn, d, updates)) is not None]
            opened: dict[str, Exception | None] = {}  # channel -> why it could not be opened this batch, if so
            pending = {d.key for d, _, _ in ready}
            marked = None  # the delivery marked as being sent by the previous one's acceptance
            handed = None  # the delivery its channel may have taken: never given back
            accepted = 0
            try:
                for i, (delivery, outgoing, discount) in enumerate(ready):
                    following = ready[i + 1][0] if i + 1 < len(ready) else None
                    handed = delivery.key
                    took = await self._deliver(conn, delivery, outgoing, discount, following,
                                               marked == delivery.key, opened)
                    handed, marked = None, following.key if took and following else None
                    accepted += took
                    pending.discard(delivery.key)
            finally:
                # Interrupted: due again at once, not after the lease; one that was marked but not handed
                # to its channel is not in doubt.
                await outbox.release(conn, pending, handed)
            if accepted:
                await self._record(conn)
        return len(due)

    async def _ready(self, conn, delivery: Delivery, updates) -> Ready | None:
        """The delivery with what to send and whether that tells a goodwill discount; None if it is refused."""
        if delivery.channel not in self._channels:
            await outbox.refuse(conn, delivery, f"the {delivery.channel} channel is not configured")
            return None
        subject, body, discount = delivery.subject, delivery.body, delivery.kind == "discount_offered"
        if delivery.kind == domain.ETA_UPDATE:
            if delivery.order_id not in updates:
                await outbox.refuse(conn, delivery, "superseded: no backorder waits any more")
                return None
            subject, body, discount = updates[delivery.order_id]
        return delivery, Outgoing(str(delivery.notification_id), delivery.order_id, delivery.customer_id,
                                  delivery.customer_email, delivery.kind, subject, body), discount

    async def _deliver(self, conn, delivery: Delivery, outgoing: Outgoing, discount: bool,
                       following: Delivery | None, marked: bool, opened) -> bool:
        """Hand one delivery to its channel; once it is accepted, note that in the same statement that marks
        the following one as being sent. Returns whether it was accepted."""
        channel = self._channels[delivery.channel]
        try:
            if delivery.channel not in opened:
                opened[delivery.channel] = None
                try:
                    await channel.open()
                except Temporary as error:
                    opened[delivery.channel] = error
            if failure := opened[delivery.channel]:
                raise failure
            if not marked:
                await outbox.sending(conn, delivery)
            # A child of the span that queued it: the mail ends the trace of the command that caused it. A
            # failure is recorded on the span as it leaves it.
            with tracing.tracer.start_as_current_span(
                    f"notification send {delivery.kind} by {delivery.channel}", tracing.parent(delivery.traceparent),
                    SpanKind.CLIENT, {"orderflow.service": "notification", "orderflow.channel": delivery.channel,
                                      "orderflow.order_id": delivery.order_id}) as span:
                await channel.send(outgoing)
        except Permanent as refused:
            await outbox.refuse(conn, delivery, str(refused))
            log.error("notification refused", order_id=delivery.order_id, channel=delivery.channel,
                      error=str(refused))
            return False
        except Temporary as failed:
            await channel.close()  # its session may be broken: the next delivery opens a new one
            opened.pop(delivery.channel, None)
            await outbox.retry_later(conn, delivery, str(failed), MAX_ATTEMPTS)
            log.warning("notification not delivered, will retry", order_id=delivery.order_id,
                        channel=delivery.channel, attempt=delivery.attempts + 1, error=str(failed))
            return False
        await outbox.accepted(conn, delivery, tracing.traceparent(span), discount, following)
        return True

    async def _record(self, conn) -> None:
        """Record the deliveries their channels accepted as sent, with their NotificationSent events, in one
        transaction: this dispatcher's batch, and any another one left."""
        async with conn.transaction():
            sent = await outbox.record_sent(conn, RECORD_LIMIT)
            if not sent:
                return
            # Only the mail takes the discount off the list: a webhook sent first must not drop it from the mail.
            await projections.mark_discounts_mailed(
                conn, [s.order_id for s in sent if s.discount and s.channel == "email"])
            await append(conn, [
                NewEvent(f"notification-{s.notification_id}-{s.channel}", 1,
                         NotificationSent(notification_id=str(s.notification_id), order_id=s.order_id,
                                          customer_id=s.customer_id, kind=s.kind, channel=s.channel),
                         s.correlation_id, s.causation_id, s.traceparent)
                for s in sent])
        self._on_recorded()  # the relay publishes the batch's NotificationSent events in one pass
        for s in sent:
            log.debug("notification sent", order_id=s.order_id, kind=s.kind, channel=s.channel,
                      notification_id=str(s.notification_id), correlation_id=s.correlation_id)
        log.info("notifications sent", count=len(sent))

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
