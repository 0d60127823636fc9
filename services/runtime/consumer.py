"""Batch consumption: handle a batch of Kafka records in one transaction; what cannot be handled goes to the
dead letters (dead_letters.py)."""

import asyncio
import heapq
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterator, Sequence

import asyncpg
import structlog
from aiokafka.structs import ConsumerRecord, TopicPartition

from contracts.envelope import TYPE_HEADER
from services.runtime import inbox, metrics, tracing
from services.runtime.dead_letters import DeadLetter, DeadLetters, Publish
from services.runtime.eventstore import ConcurrencyError
from services.runtime.messages import (
    InfrastructureDown,
    Message,
    Subscription,
    Unhandleable,
    is_binary_mode,
    parse,
)

log = structlog.get_logger()

Handler = Callable[[asyncpg.Connection, list[Message]], Awaitable[None]]
Item = tuple[ConsumerRecord, Message]

CONCURRENCY_RETRIES = 5
# SQLSTATE classes of a server that is down, restarting, out of resources or read-only, and of conflicts
# that a retry resolves (serialization, deadlock).
TRANSIENT_SQLSTATE_CLASSES = ("08", "40", "53", "57", "58")
DATABASE_CHECK_TIMEOUT_S = 5
BACKOFF_MAX_S = 30


def is_transient(error: BaseException) -> bool:
    """An error that may pass on a retry: the database's, or a conflict; whether the message caused it is
    for `BatchConsumer` to find out."""
    if isinstance(error, (OSError, asyncio.TimeoutError, ConcurrencyError, asyncpg.PostgresConnectionError)):
        return True
    if isinstance(error, asyncpg.InterfaceError):  # a closed connection or pool; not a client-side data error
        return not isinstance(error, asyncpg.DataError)
    sqlstate = getattr(error, "sqlstate", None) or ""
    return sqlstate[:2] in TRANSIENT_SQLSTATE_CLASSES or sqlstate == "25006"


def backoff(failures: int, first_s: float, max_s: float) -> float:
    return min(first_s * 2 ** (failures - 1), max_s)


class BatchConsumer:
    """Handles a batch in one transaction, the inbox dropping what was handled before. No message can hold
    its partition for long: when a batch fails and the database answers, the batch is halved until the
    message that fails alone is found; it is dead-lettered with the reason at once when the error is its
    own (bad data, a handler bug), or after `message_attempts` tries when the error might have passed (a
    deadlock, a timeout, a resource limit). Until then its partition waits and the others move on. A
    database or broker that does not answer fails the whole batch, which FastStream redelivers: after a
    backoff, never dead-lettered. Offsets are committed (by FastStream, after `process` returns) only
    once the transactions have committed and the dead letters are acknowledged."""

    def __init__(self, service: str, pool: asyncpg.Pool, subscriptions: Sequence[Subscription], handle: Handler,
                 inbox_key: Callable[[Message], str], publish: Publish, after_commit: Callable[[], None], *,
                 message_attempts: int):
        self._service = service
        self._pool = pool
        self._subscriptions = {s.topic: s for s in subscriptions}
        self._handle = handle
        self._inbox_key = inbox_key
        self._dead_letters = DeadLetters(service, publish)
        self._after_commit = after_commit
        self._message_attempts = message_attempts
        # The record each partition is held at, and how often it failed; one per partition at most.
        self._failures: dict[TopicPartition, tuple[int, int]] = {}
        self._failed_batches = 0  # in a row
        self.committed_at = time.monotonic()  # for /health: when a batch last went through
        self.in_hand: dict[TopicPartition, int] = {}  # the first offset per partition of the batch not yet through
        self.last_failure: str | None = None
        self._batch_started = time.monotonic()  # when the batch in hand reached the consumer
        metrics.SECONDS_SINCE_COMMIT.labels(service).set_function(lambda: time.monotonic() - self.committed_at)
        # Shown from the start at 0: Prometheus sees the first message, dead letter or redelivery as an
        # increase only from a series it has already scraped.
        metrics.BATCHES_REDELIVERED.labels(service)
        metrics.BATCH_SECONDS.labels(service)
        for subscription in subscriptions:
            metrics.DLQ_MESSAGES.labels(service, subscription.topic)
            for message_type in subscription.models:
                metrics.MESSAGES.labels(service, subscription.topic, message_type)
                metrics.HANDLER_SECONDS.labels(service, message_type)

    async def process(self, records: Sequence[ConsumerRecord]) -> dict[TopicPartition, int]:
        """Handle the batch. Returns the partitions to resume at a record the batch could not finish, for its
        next attempt: the caller seeks there, so the offsets committed stop before it. Raises, after a
        backoff, when the database or the broker fails, for FastStream to redeliver the batch."""
        self.in_hand = _first_offsets(records)
        self._batch_started = time.monotonic()
        try:
            held = await self._process(records)
        except Exception as error:
            self._failed_batches += 1
            self.last_failure = repr(error)
            metrics.BATCHES_REDELIVERED.labels(self._service).inc()
            wait = backoff(self._failed_batches, 0.5, BACKOFF_MAX_S)
            log.warning("batch failed, redelivering it after a backoff", error=repr(error), retry_in_s=wait)
            await asyncio.sleep(wait)  # FastStream seeks back at once: do not spin
            raise
        if held:
            worst = max(self._failures.get(partition, (0, 1))[1] for partition in held)
            await asyncio.sleep(backoff(worst, 0.1, 2))  # give what may pass the time to pass
        self._failed_batches = 0
        self.last_failure = None
        self.in_hand = {}
        self.committed_at = time.monotonic()
        return held

    async def _process(self, records: Sequence[ConsumerRecord]) -> dict[TopicPartition, int]:
        good: list[Item] = []
        dead: list[DeadLetter] = []
        for record in _interleaved(records):
            subscription = self._subscriptions[record.topic]
            if _skippable(subscription, record):
                continue
            try:
                message = parse(subscription, record.value, record.headers or ())
            except Unhandleable as error:
                dead.append((record, str(error), error.envelope))
                continue
            if message is not None:
                good.append((record, message))
        held: dict[TopicPartition, int] = {}
        if good:
            dead += await self._handle_isolating_poison(good, held)
        # What follows a held record comes again with it: dead-lettered then, not twice.
        dead = [d for d in dead if d[0].offset < held.get(_partition(d[0]), d[0].offset + 1)]
        await self._dead_letters.send(sorted(dead, key=lambda d: (d[0].topic, d[0].partition, d[0].offset)))
        return held

    async def _handle_isolating_poison(self, batch: list[Item], held: dict[TopicPartition, int]) -> list[DeadLetter]:
        """Handle the batch, less the partitions held; if it fails, halve it until the message that fails
        alone is found. Adds to `held` the partitions that must wait for a message to be tried again."""
        batch = [item for item in batch if _partition(item[0]) not in held]
        if not batch:
            return []
        try:
            await self._transaction([m for _, m in batch])
        except Exception as error:
            await self._require_database(error)
            if len(batch) == 1:
                return self._judge(batch[0], error, held)
        else:
            self._forget_failures(batch)
            return []
        half = len(batch) // 2
        dead = await self._handle_isolating_poison(batch[:half], held)
        return dead + await self._handle_isolating_poison(batch[half:], held)

    def _judge(self, item: Item, error: Exception, held: dict[TopicPartition, int]) -> list[DeadLetter]:
        """A message failed alone while the database answers: its dead letter, or none while it may yet pass."""
        record, message = item
        partition = _partition(record)
        offset, failures = self._failures.pop(partition, (record.offset, 0))
        failures = failures + 1 if offset == record.offset else 1
        if isinstance(error, Unhandleable):  # the handler's own verdict: a reason, not a crash
            return [(record, str(error), message.envelope)]
        context = dict(type=message.type, message_id=message.envelope.id, topic=record.topic,
                       partition=record.partition, offset=record.offset,
                       order_id=getattr(message.body, "order_id", None))
        if not is_transient(error):
            log.error("message cannot be handled", **context, exc_info=error)
            return [(record, f"handler failed: {error!r}", message.envelope)]
        if failures >= self._message_attempts:
            log.error("message keeps failing while the database answers", **context, attempts=failures,
                      exc_info=error)
            return [(record, f"handler failed {failures} times: {error!r}", message.envelope)]
        self._failures[partition] = (record.offset, failures)
        held[partition] = record.offset
        log.warning("message failed, its partition waits to try it again", **context, attempt=failures,
                    error=repr(error))
        return []

    def _forget_failures(self, batch: list[Item]) -> None:
        """A held record went through: its partition starts counting afresh."""
        if self._failures:
            for record, _ in batch:
                if self._failures.get(_partition(record), (None,))[0] == record.offset:
                    del self._failures[_partition(record)]

    async def _require_database(self, failure: Exception) -> None:
        """A batch failed: unless the database answers, the infrastructure is to blame, not a message."""
        try:
            await asyncio.wait_for(self._pool.fetchval("SELECT 1"), DATABASE_CHECK_TIMEOUT_S)
        except Exception as error:
            raise InfrastructureDown(f"the database does not answer ({error!r}) after {failure!r}") from failure

    async def _transaction(self, messages: list[Message]) -> None:
        for attempt in range(1, CONCURRENCY_RETRIES + 1):
            try:
                with metrics.BATCH_SECONDS.labels(self._service).time(), tracing.handling(self._service, messages) as traced:
                    async with self._pool.acquire() as conn, conn.transaction():
                        fresh = await inbox.claim(conn, traced, self._inbox_key)
                        if fresh:
                            await self._handle(conn, fresh)
                break
            except ConcurrencyError:
                if attempt == CONCURRENCY_RETRIES:
                    raise
                log.info("stream written concurrently, retrying batch", attempt=attempt)
        took = time.monotonic() - self._batch_started
        # Each series looked up once per batch, not once per message.
        for (topic, message_type), count in Counter((m.topic, m.type) for m in messages).items():
            metrics.MESSAGES.labels(self._service, topic, message_type).inc(count)
            handler_seconds = metrics.HANDLER_SECONDS.labels(self._service, message_type)
            for _ in range(count):
                handler_seconds.observe(took)
        # One line per batch at info (each event's own line is at debug): a line per event cost the order
        # service a third of its time. The order ids keep `grep <order_id>` finding every order's batch.
        log.info("batch handled", messages=len(messages), fresh=len(fresh),
                 order_ids=list(dict.fromkeys(o for m in fresh if (o := getattr(m.body, "order_id", None)))))
        self._after_commit()



def _partition(record: ConsumerRecord) -> TopicPartition:
    return TopicPartition(record.topic, record.partition)


def _first_offsets(records: Sequence[ConsumerRecord]) -> dict[TopicPartition, int]:
    first: dict[TopicPartition, int] = {}
    for record in records:
        first.setdefault(_partition(record), record.offset)
    return first


def _skippable(subscription: Subscription, record: ConsumerRecord) -> bool:
    """An event type this service does not read, told by a header, is passed over without decoding its
    JSON: most of what crosses an events topic is for someone else. The header is ours (`TYPE_HEADER`,
    which our relays set), or `ce_type` on a record in binary mode, where it is the type itself."""
    if subscription.strict:
        return False
    headers = record.headers or ()
    told = next((value for key, value in headers if key == TYPE_HEADER), None)
    if told is None and is_binary_mode(headers):
        told = next((value for key, value in headers if key.lower() == "ce_type"), None)
    return told is not None and told.decode(errors="replace") not in subscription.models


def _interleaved(records: Sequence[ConsumerRecord]) -> Iterator[ConsumerRecord]:
    """FastStream hands a batch over partition by partition; across partitions and topics, timestamps
    are the better guess at what happened first. Each partition keeps its own order (a merge, not a sort)."""
    partitions: dict[tuple[str, int], list[ConsumerRecord]] = defaultdict(list)
    for record in records:
        partitions[(record.topic, record.partition)].append(record)
    return heapq.merge(*partitions.values(), key=lambda r: r.timestamp)
