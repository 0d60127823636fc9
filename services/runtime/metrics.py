"""Prometheus metrics every service exposes on /metrics."""

from prometheus_client import Counter, Gauge, Histogram

MESSAGES = Counter("orderflow_messages_handled_total", "Messages handled", ["service", "topic", "type"])
DEAD_LETTERED = Counter("orderflow_messages_dead_lettered_total", "Messages sent to a DLQ", ["service", "topic"])
BATCH_SECONDS = Histogram("orderflow_batch_seconds", "Time to handle one batch in one transaction", ["service"])
EVENTS_PUBLISHED = Counter("orderflow_events_published_total", "Events the outbox relay published", ["service"])
RELAY_POSITION = Gauge("orderflow_relay_position", "Last event store position published", ["service"])
BATCHES_REDELIVERED = Counter("orderflow_batches_redelivered_total",
                              "Batches that failed on the database or the broker, redelivered after a backoff", ["service"])
SECONDS_SINCE_COMMIT = Gauge("orderflow_consumer_seconds_since_commit",
                             "Seconds since the consumer last committed a batch (a stall when records wait)", ["service"])
