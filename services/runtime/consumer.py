"""Batch consumption: parse a batch of Kafka records, dead-letter what can never be handled, and handle
the rest in one Postgres transaction with the inbox. Offsets are committed (by FastStream, after this
returns) only once that transaction has committed; on a transient failure the batch is redelivered."""

import asyncio
import heapq
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator, Sequence

import asyncpg
import structlog
from aiokafka.structs import ConsumerRecord

from contracts.topics import dead_letter
from services.runtime import inbox, metrics
from services.runtime.eventstore import ConcurrencyError
from services.runtime.messages import Message, Subscription, Unhandleable, parse

log = structlog.get_logger()

Handler = Callable[[asyncpg.Connection, list[Message]], Awaitable[None]]
Publish = Callable[..., Awaitable]

CONCURRENCY_RETRIES = 5
# SQLSTATE classes of a server that is down, restarting, out of resources or read-only, and of conflicts
# that a retry resolves (serialization, deadlock).
TRANSIENT_SQLSTATE_CLASSES = ("08", "40", "53", "57", "58")


def is_transient(error: BaseException) -> bool:
    """A failure of the infrastructure, not of a message: the batch is retried, never dead-lettered."""
    if isinstance(error, (OSError, asyncio.TimeoutError, ConcurrencyError, asyncpg.PostgresConnectionError)):
        return True
    if isinstance(error, asyncpg.InterfaceError):  # a closed connection or pool; not a client-side data error
        return not isinstance(error, asyncpg.DataError)
    sqlstate = getattr(error, "sqlstate", None) or ""
    return sqlstate[:2] in TRANSIENT_SQLSTATE_CLASSES or sqlstate == "25006"


def _skippable(subscription: Subscription, record: ConsumerRecord) -> bool:
    """An event type this service does not read, told by the `ce_type` header our relays set, is passed
    over without decoding its JSON: most of what crosses an events topic is for someone else."""
    if subscription.strict:
        return False
    for key, value in record.headers or ():
        if key == "ce_type":
            return value.decode(errors="replace") not in subscription.models
    return False


def _interleaved(records: Sequence[ConsumerRecord]) -> Iterator[ConsumerRecord]:
    """FastStream hands a batch over partition by partition; across partitions and topics, timestamps
    are the better guess at what happened first. Each partition keeps its own order (a merge, not a sort)."""
    partitions: dict[tuple[str, int], list[ConsumerRecord]] = defaultdict(list)
    for record in records:
        partitions[(record.topic, record.partition)].append(record)
    return heapq.merge(*partitions.values(), key=lambda r: r.timestamp)


class BatchConsumer:
    def __init__(self, service: str, pool: asyncpg.Pool, subscriptions: Sequence[Subscription], handle: Handler,
                 inbox_key: Callable[[Message], str], publish: Publish, after_commit: Callable[[], None]):
        self._service = service
        self._pool = pool
        self._subscriptions = {s.topic: s for s in subscriptions}
        self._handle = handle
        self._inbox_key = inbox_key
        self._publish = publish
        self._after_commit = after_commit

    async def process(self, records: Sequence[ConsumerRecord]) -> None:
        good: list[tuple[ConsumerRecord, Message]] = []
        dead: list[tuple[ConsumerRecord, str]] = []
        for record in _interleaved(records):
            subscription = self._subscriptions[record.topic]
            if _skippable(subscription, record):
                continue
            try:
                message = parse(subscription, record.value)
            except Unhandleable as error:
                dead.append((record, str(error)))
                continue
            if message is not None:
                good.append((record, message))
        if good:
            dead += await self._handle_isolating_poison(good)
        await self._dead_letter(dead)

    async def _handle_isolating_poison(self, batch: list[tuple[ConsumerRecord, Message]]) -> list[tuple[ConsumerRecord, str]]:
        """Handle the batch; if it fails for a reason that is not transient, handle its messages one by one
        so that only the message that fails on its own is dead-lettered."""
        try:
            await self._transaction([m for _, m in batch])
            return []
        except Exception as error:
            if is_transient(error):
                log.warning("batch failed on infrastructure, will be redelivered", error=repr(error))
                await asyncio.sleep(1)  # FastStream seeks back at once: do not spin
                raise
            if len(batch) == 1:
                record, message = batch[0]
                if isinstance(error, Unhandleable):  # the handler's own verdict: a reason, not a crash
                    return [(record, str(error))]
                log.exception("message cannot be handled", type=message.type, message_id=message.envelope.id,
                              order_id=getattr(message.body, "order_id", None))
                return [(record, f"handler failed: {error!r}")]
        dead = []
        for item in batch:
            dead += await self._handle_isolating_poison([item])
        return dead

    async def _transaction(self, messages: list[Message]) -> None:
        for attempt in range(1, CONCURRENCY_RETRIES + 1):
            try:
                with metrics.BATCH_SECONDS.labels(self._service).time():
                    async with self._pool.acquire() as conn, conn.transaction():
                        fresh = await inbox.claim(conn, messages, self._inbox_key)
                        if fresh:
                            await self._handle(conn, fresh)
                break
            except ConcurrencyError:
                if attempt == CONCURRENCY_RETRIES:
                    raise
                log.info("stream written concurrently, retrying batch", attempt=attempt)
        for message in messages:
            metrics.MESSAGES.labels(self._service, message.topic, message.type).inc()
        log.debug("batch handled", messages=len(messages), fresh=len(fresh))
        self._after_commit()

    async def _dead_letter(self, dead: list[tuple[ConsumerRecord, str]]) -> None:
        if not dead:
            return
        pending = []
        for record, reason in dead:
            headers = {k: v.decode(errors="replace") for k, v in record.headers or ()}
            headers |= {
                "dlq.error": reason[:2000],
                "dlq.service": self._service,
                "dlq.original.topic": record.topic,
                "dlq.original.partition": str(record.partition),
                "dlq.original.offset": str(record.offset),
            }
            log.warning("message dead-lettered", topic=record.topic, partition=record.partition,
                        offset=record.offset, error=reason)
            metrics.DEAD_LETTERED.labels(self._service, record.topic).inc()
            pending.append(await self._publish(record.value or b"", dead_letter(record.topic), key=record.key,
                                               headers=headers, no_confirm=True))
        await asyncio.gather(*pending)  # acknowledged before the batch's offsets are committed
