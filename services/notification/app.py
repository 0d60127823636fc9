"""The notification service: learns contacts from orders, tells customers about their backorders,
cancellations and shipments, records each notification as NotificationSent."""

from functools import partial

from contracts import topics
from services.notification import handlers, outbox
from services.notification.channels import Mailer, Webhook
from services.notification.dispatch import Dispatcher
from services.runtime import metrics
from services.runtime.service import Runtime, Service, serve
from services.runtime.settings import load
from services.runtime.subscriptions import subscriptions_for


SETTINGS = load("notification")


# Dispatchers per process, each with its own connections: a delivery waits on the channel and on the note that
# it was accepted (written before the next is sent), so deliveries go out side by side, not one by one. Eight
# sent no more than four in benchmarks/notification_dispatch.py.
DISPATCHERS = 4


def background(runtime: Runtime):
    settings = runtime.settings
    dispatchers = [
        Dispatcher(runtime.pool, Mailer(settings.smtp_url, settings.mail_from),
                   Webhook(settings.webhook_url, settings.webhook_secret.get_secret_value()) if settings.webhook_url else None,
                   on_recorded=runtime.relay.wake)
        for _ in range(DISPATCHERS)
    ]

    def wake_all() -> None:
        # The consumer gathers (gather_ms below): a commit brings many deliveries at once, for all to share. One
        # woken per commit left the others idle through a backlog (mailed 677-740/s against 764-774 with all).
        for dispatcher in dispatchers:
            dispatcher.wake()

    runtime.after_commit.append(wake_all)
    return [dispatcher.run() for dispatcher in dispatchers]


def gauges(runtime: Runtime):
    async def pending() -> metrics.Values:
        counts = await outbox.pending_by_channel(runtime.pool)
        # A configured channel with nothing waiting shows 0; a channel no longer configured, while rows wait on it.
        return {(channel,): counts.get(channel, 0) for channel in {*runtime.settings.notification_channels, *counts}}

    return {metrics.NOTIFICATIONS_PENDING: pending}


SERVICE = Service(
    name="notification",
    subscriptions=subscriptions_for(handlers.READS),
    handle=partial(handlers.handle, eta_window_s=SETTINGS.eta_update_window_s, channels=SETTINGS.notification_channels),
    inbox_key=handlers.inbox_key,
    events_topic=topics.NOTIFICATIONS_EVENTS,
    key_field="order_id",
    background=background,
    gauges=gauges,
    # Off the way to the allocation: at 50 and 100 orders/s, gathering cut the allocation's p50 by a third or
    # more, and this service's CPU per order by two thirds (README, Benchmark: the third round).
    gather_ms=200,
    # A notification still waiting for its order's contact after the retention is refused, not pruned: its
    # OrderPlaced cannot come any more, as Kafka no longer holds it.
    prunes={"sent notifications": outbox.prune_sent,
            "notifications refused, their OrderPlaced never came": outbox.refuse_contactless},
)

if __name__ == "__main__":
    serve(SERVICE)
