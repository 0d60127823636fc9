"""Wires one service: its FastStream batch subscriber, outbox relay, Postgres pool and HTTP routes
(with /health and /metrics) into a Starlette app that uvicorn runs."""

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from itertools import chain

import asyncpg
import structlog
import uvicorn
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import IllegalStateError
from aiokafka.structs import ConsumerRecord, TopicPartition
from faststream.kafka import KafkaBroker, KafkaMessage
from faststream.middlewares import AckPolicy
from prometheus_client import CONTENT_TYPE_LATEST, Gauge, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from services.runtime import db, docs, inbox, metrics, tracing
from services.runtime import logging as logs
from services.runtime.consumer import BatchConsumer, Handler
from services.runtime.dead_letters import DEAD_LETTER_MAX_BYTES
from services.runtime.http import ReadEndpoint
from services.runtime.messages import Message, Subscription
from services.runtime.offsets import OffsetCommits
from services.runtime.relay import OutboxRelay, unpublished
from services.runtime.retention import Prune, prune_forever
from services.runtime.settings import Settings, load

log = structlog.get_logger()
# How long a stopping service may take to finish and commit the batch in hand (compose gives it longer).
GRACEFUL_TIMEOUT_S = 15

# How long a poll waits for records before FastStream's loop looks whether the subscriber still runs.
POLL_TIMEOUT_MS = 1000

# What a gathering service's fetch waits for (or for its `gather_ms`): more than a batch of our events.
GATHER_BYTES = 64 << 10

# How long the broker holds a fetch that finds nothing, for a service that does not gather. It bounds a wait that
# the partitions with records can get stuck in: aiokafka sends one fetch per broker at a time, and once records
# have waited 0.1 s for a slow batch to end, it fetches the other partitions alone; when those are quiet, the
# records that come meanwhile for the busy ones wait until the broker gives up on that fetch. At 500 ms, a record
# after a slow batch could wait 0.5 s; at 100 ms an idle service sends 10 empty fetches a second.
EMPTY_FETCH_WAIT_MS = 100

# A gauge that cannot be read within this when /metrics is scraped is left out of that scrape, which answers.
SCRAPE_TIMEOUT_S = 2


@dataclass
class Service:
    """What makes one service: what it reads, how it handles a batch, where its events go."""

    name: str
    subscriptions: Sequence[Subscription]
    handle: Handler
    inbox_key: Callable[[Message], str]
    events_topic: str
    key_field: str  # the data field that is the Kafka key of its events
    reads: Sequence[ReadEndpoint] = ()  # its HTTP read side
    # Pages for people (HTML), given the runtime: not part of the documented read side.
    pages: Callable[["Runtime"], Sequence[Route]] = lambda runtime: []
    # Extra loops that run beside the consumer, given the runtime (e.g. the mail dispatcher).
    background: Callable[["Runtime"], Sequence[Awaitable]] = lambda runtime: []
    # Gauges of its own read when /metrics is scraped (beside the runtime's: consumer lag, outbox backlog),
    # each with what reads its values.
    gauges: Callable[["Runtime"], dict[Gauge, metrics.Read]] = lambda runtime: {}
    # Tables of its own pruned beside the inbox, by name (see retention.py).
    prunes: dict[str, Prune] = field(default_factory=dict)
    # How long the broker may hold its records back to hand them over in one larger batch. 0 on the way from
    # PlaceOrder to the allocation, where every millisecond counts; a service off it trades a moment of its own
    # latency for fewer batches, each costing about the same whatever its size, which leaves the CPU to the others.
    gather_ms: int = 0


@dataclass
class Runtime:
    settings: Settings
    broker: KafkaBroker
    pool: asyncpg.Pool | None = None
    relay: OutboxRelay | None = None
    after_commit: list[Callable[[], None]] = field(default_factory=list)
    loops: list[asyncio.Task] = field(default_factory=list)  # the relay and the service's background loops
    scraped: metrics.Scraped = field(default_factory=metrics.Scraped)


async def _message_as_body(message: KafkaMessage) -> KafkaMessage:
    # The handler takes the message whole and reads its raw records itself: no JSON guessing by FastStream
    # (a malformed value must reach us to be dead-lettered), and no work on values the handler may skip.
    return message


async def _raw_batch(records, original_parser):
    """FastStream's parser decodes every header of every record, and fails on a value that is not UTF-8
    before any handler could dead-letter it. Let it build its message from the first record alone, without
    headers (the handler reads the raw records), and hand the untouched records on."""
    message = await original_parser((dataclasses.replace(records[0], headers=()),))
    message.raw_message = records
    return message


def _seek(kafka: AIOKafkaConsumer, offsets: dict[TopicPartition, int]) -> None:
    for partition, offset in offsets.items():
        with contextlib.suppress(IllegalStateError):  # revoked meanwhile: its next owner starts before it
            kafka.seek(partition, offset)


async def _stall(kafka: AIOKafkaConsumer | None, consumer: BatchConsumer, stall_s: float) -> dict | None:
    """Why the consumer counts as stalled: records wait on an assigned partition, and no batch has been
    committed for `stall_s`. None while it keeps up, or has nothing to do."""
    quiet_s = time.monotonic() - consumer.committed_at
    if kafka is None or quiet_s < stall_s:
        return None
    lag = {f"{p.topic}/{p.partition}": waiting for p, waiting in (await _lag(kafka, consumer.in_hand)).items()
           if waiting > 0}
    if not lag:
        return None
    return {"seconds_since_commit": round(quiet_s, 1), "lag": lag, "last_failure": consumer.last_failure}


async def _lag(kafka: AIOKafkaConsumer, in_hand: dict[TopicPartition, int]) -> dict[TopicPartition, int]:
    """Records beyond what the consumer got through, per assigned partition, up to the end of the log as
    its latest fetch saw it; a batch in hand counts from its first record. A partition whose position or
    end is not known (revoked meanwhile, its position being reset, nothing fetched yet) is left out."""
    partitions = list(kafka.assignment())
    positions = await asyncio.gather(*(_position(kafka, partition) for partition in partitions))
    lag = {}
    for partition, position in zip(partitions, positions, strict=True):
        try:
            end = kafka.highwater(partition)
        except (IllegalStateError, AssertionError):  # revoked meanwhile
            continue
        if position is not None and end is not None:
            lag[partition] = max(end - min(position, in_hand.get(partition, position)), 0)
    return lag


async def _position(kafka: AIOKafkaConsumer, partition: TopicPartition) -> int | None:
    try:
        return await asyncio.wait_for(kafka.position(partition), 1)
    except (IllegalStateError, AssertionError, TimeoutError):  # revoked meanwhile, or its position is being reset
        return None


async def _show(scraped: metrics.Scraped, gauge: Gauge, read: metrics.Read) -> None:
    """Read a gauge's values for this scrape; one that cannot be read is left out of it, not shown stale."""
    try:
        values = await asyncio.wait_for(read(), SCRAPE_TIMEOUT_S)
    except Exception as error:  # the scrape answers with what could be read
        log.warning("metric not read", metric=gauge.describe()[0].name, error=repr(error))
        values = {}
    scraped.show(gauge, values)


def build_app(service: Service, settings: Settings) -> Starlette:
    logs.configure(service.name, settings.log_level, settings.log_format)
    tracing.configure(service.name, settings.otel_exporter_otlp_endpoint)
    broker = KafkaBroker(
        settings.kafka_bootstrap_servers.split(","),  # FastStream takes a string as one host, a list as several
        security=settings.broker_security(),  # the relay and the dead letters publish through it too
        acks="all",  # the relay's events and the dead letters alike: on every in-sync replica
        enable_idempotence=settings.kafka_enable_idempotence,
        # No linger: the relay hands a whole pass to the producer before it yields, and while one request is
        # in flight to a broker the next batch fills anyway; lingering only added its time to every pass.
        linger_ms=0,
        ack_policy=AckPolicy.MANUAL,  # offsets committed by OffsetCommits; on error the handler seeks back
        allow_auto_create_topics=False,
        logger=logging.getLogger(logs.FASTSTREAM),  # through our formatter, not FastStream's coloured one
        log_level=logging.DEBUG,  # FastStream's per-message lines; ours carry order ids
        graceful_timeout=GRACEFUL_TIMEOUT_S,
        client_id=f"orderflow-{service.name}",
        max_request_size=DEAD_LETTER_MAX_BYTES,  # a dead letter is a whole record plus our headers
        # Nothing to inject into the one handler, which takes the message whole: FastStream's injection
        # resolved the message in a worker thread, a thread hop per batch.
        apply_types=False,
    )
    runtime = Runtime(settings, broker)
    consumer: BatchConsumer | None = None
    commits = OffsetCommits(lambda: subscriber.consumer)

    subscriber = broker.subscriber(
        *[s.topic for s in service.subscriptions],
        batch=True,
        group_id=f"orderflow-{service.name}",
        max_records=settings.batch_size,
        decoder=_message_as_body,
        parser=_raw_batch,
        auto_offset_reset="earliest",
        session_timeout_ms=settings.kafka_session_timeout_ms,
        heartbeat_interval_ms=max(settings.kafka_session_timeout_ms // 4, 250),
        max_poll_interval_ms=300_000,
        # The broker answers a fetch once it has this much, or after the wait: at once, unless the service gathers.
        fetch_min_bytes=GATHER_BYTES if service.gather_ms else 1,
        fetch_max_wait_ms=service.gather_ms or EMPTY_FETCH_WAIT_MS,
        listener=commits,
    )

    async def poll(kafka: AIOKafkaConsumer) -> tuple[ConsumerRecord, ...]:
        # In place of FastStream's batch poll, which sleeps as long again after an empty poll (a record arriving
        # meanwhile waits) and so polls hundreds of times a second when idle: aiokafka hands records over the
        # moment a fetch brings them, so wait for them as long as there are none.
        batches = await kafka.getmany(timeout_ms=POLL_TIMEOUT_MS, max_records=settings.batch_size)
        return tuple(chain.from_iterable(batches.values()))

    subscriber.get_msg = poll

    @subscriber
    async def on_batch(message: KafkaMessage) -> None:
        rebalances = commits.rebalances
        try:
            held = await consumer.process(message.raw_message)
        except BaseException:
            _seek(message.consumer, consumer.in_hand)  # back to the batch's first records: it comes again
            raise
        _seek(message.consumer, held)
        commits.got_through(message.raw_message, held, rebalances)
        if not subscriber.running:  # stopping: the consumer closes once this batch is through
            await commits.commit()

    def after_commit() -> None:
        for wake in runtime.after_commit:
            wake()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        nonlocal consumer
        database_url = settings.database_url.get_secret_value()
        runtime.pool = await db.connect_pool(database_url, service.name)
        if missing := await db.missing_migrations(runtime.pool, service.name):
            await runtime.pool.close()
            # Handled messages would fail on the missing tables and be dead-lettered: better not to start.
            raise RuntimeError(f"orderflow {service.name}: its schema lacks migrations {missing}: set it up first "
                             f"with the admin URL (python -m services.migrate {service.name})")
        runtime.relay = OutboxRelay(database_url, service.name, service.events_topic, service.key_field,
                                    broker.publish)
        runtime.after_commit.append(runtime.relay.wake)
        consumer = BatchConsumer(service.name, runtime.pool, service.subscriptions, service.handle,
                                 service.inbox_key, broker.publish, after_commit,
                                 message_attempts=settings.message_attempts)
        await broker.connect()
        runtime.loops = [asyncio.create_task(runtime.relay.run()), asyncio.create_task(commits.run())]
        runtime.loops += [asyncio.create_task(loop) for loop in service.background(runtime)]
        runtime.loops.append(asyncio.create_task(prune_forever(
            runtime.pool, {"inbox": inbox.prune} | service.prunes, timedelta(hours=settings.inbox_retention_hours),
            settings.prune_interval_s)))
        await broker.start()
        log.info("service started", topics=[s.topic for s in service.subscriptions],
                 http=f"http://{settings.http_host}:{settings.http_port}")
        try:
            yield
        finally:
            await commits.commit()
            await broker.stop()  # finishes and commits the batch in hand
            for task in runtime.loops:
                task.cancel()
            await asyncio.gather(*runtime.loops, return_exceptions=True)
            await runtime.pool.close()
            runtime.scraped.forget()
            log.info("service stopped")

    async def health(request: Request) -> JSONResponse:
        try:
            await runtime.pool.fetchval("SELECT 1")
        except Exception as error:  # the probe answers; it does not crash
            return JSONResponse({"status": "unavailable", "database": repr(error)}, status_code=503)
        if stopped := [task.get_coro().__qualname__ for task in runtime.loops if task.done()]:
            return JSONResponse({"status": "unavailable", "stopped": stopped}, status_code=503)
        if stalled := await _stall(subscriber.consumer, consumer, settings.health_stall_s):
            return JSONResponse({"status": "unavailable", "stalled": stalled}, status_code=503)
        return JSONResponse({"status": "ok", "service": service.name})

    async def consumer_lag() -> metrics.Values:
        if subscriber.consumer is None or consumer is None:  # not started, or stopping
            return {}
        lag = await _lag(subscriber.consumer, consumer.in_hand)
        return {(service.name, p.topic, str(p.partition)): waiting for p, waiting in lag.items()}

    async def outbox_backlog() -> metrics.Values:
        return {(service.name,): await unpublished(runtime.pool)}

    async def scrape(request: Request) -> Response:
        gauges = {metrics.CONSUMER_LAG: consumer_lag, metrics.OUTBOX_BACKLOG: outbox_backlog} | service.gauges(runtime)
        await asyncio.gather(*(_show(runtime.scraped, gauge, read) for gauge, read in gauges.items()))
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    routes = [Route("/health", health), Route("/metrics", scrape),
              Route("/docs", lambda request: HTMLResponse(docs.page(service))),
              Route("/docs/asyncapi.json", lambda request: JSONResponse(docs.asyncapi(service))),
              Route("/docs/openapi.json", lambda request: JSONResponse(docs.openapi(service))),
              *(read.route(runtime) for read in service.reads), *service.pages(runtime)]
    return Starlette(routes=routes, lifespan=lifespan)


def serve(service: Service) -> None:
    settings = load(service.name)
    app = build_app(service, settings)
    # log_config=None: uvicorn's lines go through our formatter too. uvloop: the event loop's own work (socket
    # writes to Kafka and PostgreSQL, callbacks, timers) was a fifth of each service's time on asyncio's.
    uvicorn.run(app, host=settings.http_host, port=settings.http_port, log_config=None, log_level="warning",
                access_log=False, loop="uvloop")
