"""Prometheus metrics every service exposes on /metrics, and the gauges whose values are read when it is scraped."""

import contextlib
from collections.abc import Awaitable, Callable

from prometheus_client import Counter, Gauge, Histogram

# Throughput: every message a transaction went through (a redelivered one the inbox dropped included).
MESSAGES = Counter("orderflow_messages_handled_total", "Messages handled", ["service", "topic", "type"])
DLQ_MESSAGES = Counter("orderflow_dlq_messages_total",
                       "Messages sent to <topic>.dlq, by the topic they came from", ["service", "topic"])
# A batch is handled in one transaction with set-based statements, so a message has no time of its own:
# each is observed with the time from its batch reaching the consumer to the commit of the transaction
# that handled it (a batch halved to find a failing message counts the halving).
HANDLER_SECONDS = Histogram("orderflow_handler_seconds",
                            "Per message: seconds from its batch reaching the consumer to its transaction's commit",
                            ["service", "type"],
                            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
BATCH_SECONDS = Histogram("orderflow_batch_seconds", "Time to handle one batch in one transaction", ["service"])
EVENTS_PUBLISHED = Counter("orderflow_events_published_total", "Events the outbox relay published", ["service"])
RELAY_POSITION = Gauge("orderflow_relay_position", "Last event store position published", ["service"])
BATCHES_REDELIVERED = Counter("orderflow_batches_redelivered_total",
                              "Batches that failed on the database or the broker, redelivered after a backoff", ["service"])
SECONDS_SINCE_COMMIT = Gauge("orderflow_consumer_seconds_since_commit",
                             "Seconds since the consumer last committed a batch (a stall when records wait)", ["service"])

# Read when /metrics is scraped (see Scraped), never per message.
CONSUMER_LAG = Gauge("orderflow_consumer_lag",
                     "Records waiting on an assigned partition: its end as the latest fetch saw it, less the "
                     "consumer's position (a batch in hand counts from its first record)",
                     ["service", "topic", "partition"])
OUTBOX_BACKLOG = Gauge("orderflow_outbox_backlog", "Events stored and not yet published by the outbox relay",
                       ["service"])
NOTIFICATIONS_PENDING = Gauge("orderflow_notifications_pending",
                              "Notifications queued and neither sent nor refused, per channel", ["channel"])

Values = dict[tuple[str, ...], float]  # a gauge's value per label set
Read = Callable[[], Awaitable[Values]]


class Scraped:
    """The gauges one service sets when /metrics is scraped. Each scrape replaces the label sets it showed
    before: a partition revoked since, or a value that could not be read this time, is absent rather than stale."""

    def __init__(self) -> None:
        self._shown: dict[Gauge, set[tuple[str, ...]]] = {}

    def show(self, gauge: Gauge, values: Values) -> None:
        for labels in self._shown.get(gauge, set()) - values.keys():
            with contextlib.suppress(KeyError):
                gauge.remove(*labels)
        for labels, value in values.items():
            gauge.labels(*labels).set(value)
        self._shown[gauge] = set(values)

    def forget(self) -> None:
        """Remove every label set shown: the service stops (another may run in this process after it)."""
        for gauge in list(self._shown):
            self.show(gauge, {})
