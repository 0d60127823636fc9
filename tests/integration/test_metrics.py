"""What an operator reads on /metrics, scraped from services running on real Kafka and PostgreSQL: dead letters
by topic, the outbox backlog, consumer lag per partition, handler latency and throughput, notifications
pending per channel."""

import asyncio
import contextlib
import dataclasses
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
import httpx
from aiokafka import AIOKafkaProducer
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from contracts.commands import ORDER_COMMANDS
from infra.topics import create_topics
from services.notification import app as notification
from services.order import handlers as order_handlers
from services.runtime.messages import Subscription
from services.runtime.service import Service
from services.runtime.settings import Settings
from tests.integration.harness import DatabaseLink, dead_letters, new_topic, place_order, running, send
from tests.support import eventually, unique

HOLD_RELAY = "SELECT pg_advisory_lock(hashtext(current_schema() || '.relay'))"  # the lock a relay leads by
LET_RELAY_GO = "SELECT pg_advisory_unlock(hashtext(current_schema() || '.relay'))"


class Scrape:
    """One scrape of /metrics: its samples by name and labels."""

    def __init__(self, text: str) -> None:
        self.samples = [s for family in text_string_to_metric_families(text) for s in family.samples]

    def series(self, name: str, **labels: str) -> dict[frozenset, float]:
        """The samples of `name` whose labels include these, by their labels."""
        return {frozenset(s.labels.items()): s.value for s in self.samples
                if s.name == name and labels.items() <= s.labels.items()}

    def value(self, name: str, **labels: str) -> float | None:
        """The value of the one sample of `name` with these labels, None when there is none."""
        found = self.series(name, **labels)
        assert len(found) <= 1, found
        return next(iter(found.values()), None)


async def scrape(http: httpx.AsyncClient) -> Scrape:
    response = await http.get("/metrics")
    assert response.status_code == 200, response.text
    return Scrape(response.text)


@dataclass
class OrderService:
    """The order service's handler behind the runtime, on fresh topics; orders named `hang-*` wait for `release`."""

    bootstrap_servers: str
    topic: str
    http: httpx.AsyncClient
    pool: asyncpg.Pool

    async def place(self, *order_ids: str, partition: int | None = None) -> list[str]:
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap_servers, acks="all", enable_idempotence=False)
        await producer.start()
        try:
            for order_id in order_ids:
                await producer.send_and_wait(self.topic, place_order(order_id).to_bytes(), key=order_id.encode(),
                                             partition=partition)
        finally:
            await producer.stop()
        return list(order_ids)

    async def handled(self, *order_ids: str) -> None:
        async def check():
            done = {r["message_key"] for r in await self.pool.fetch("SELECT message_key FROM inbox")}
            assert {f"PlaceOrder:{o}" for o in order_ids} <= done, done
        await eventually(check, timeout=30)

    async def scrape(self) -> Scrape:
        return await scrape(self.http)


def holding_back_hung_orders(release: asyncio.Event):
    async def handle(conn, messages):
        if any(m.body.order_id.startswith("hang-") for m in messages):
            await release.wait()
        await order_handlers.handle(conn, messages, goodwill_percent=10)

    return handle


@contextlib.asynccontextmanager
async def order_service(apache_kafka, pools, *, partitions: int = 1, database_url: str | None = None,
                        release: asyncio.Event | None = None) -> AsyncIterator[OrderService]:
    topic = unique("orders.commands-test")
    await create_topics(apache_kafka, partitions=partitions, names=[topic])
    service = Service(name="order", subscriptions=[Subscription(topic, ORDER_COMMANDS, strict=True)],
                      handle=holding_back_hung_orders(release or asyncio.Event()), inbox_key=order_handlers.inbox_key,
                      events_topic=await new_topic(apache_kafka, "orders.events-test"), key_field="order_id")
    settings = Settings(service="order", kafka_bootstrap_servers=apache_kafka,
                        order_database_url=database_url or pools.urls["order"], kafka_session_timeout_ms=2000)
    async with running(service, settings) as http:
        yield OrderService(apache_kafka, topic, http, await pools("order"))


async def test_a_dead_letter_is_counted_under_the_topic_it_came_from(apache_kafka, pools):
    async with order_service(apache_kafka, pools) as orders:
        async def dead_lettered() -> float | None:
            return (await orders.scrape()).value("orderflow_dlq_messages_total", service="order", topic=orders.topic)
        # Shown before the first one, so that Prometheus sees the first as an increase; so are the counts of
        # each type the service reads.
        assert await dead_lettered() == 0
        started = await orders.scrape()
        for message_type in ORDER_COMMANDS:
            assert started.value("orderflow_messages_handled_total", service="order", topic=orders.topic,
                                 type=message_type) == 0
            assert started.value("orderflow_handler_seconds_count", service="order", type=message_type) is not None

        await send(apache_kafka, orders.topic, b"{not json", "k")
        await dead_letters(apache_kafka, orders.topic)

        async def counted():
            assert await dead_lettered() == 1
        await eventually(counted)


async def test_placed_orders_wait_in_the_outbox_backlog_while_the_relay_is_held_and_leave_it_once_published(
        apache_kafka, pools):
    held = await (await pools("order")).acquire()
    await held.execute(HOLD_RELAY)  # before the service starts: its relay cannot lead, so nothing is published
    try:
        async with order_service(apache_kafka, pools) as orders:
            before = await orders.scrape()
            latency = dict(name="orderflow_handler_seconds_count", service="order", type="PlaceOrder")
            handled = dict(name="orderflow_messages_handled_total", service="order", topic=orders.topic,
                           type="PlaceOrder")
            published = dict(name="orderflow_events_published_total", service="order")
            assert before.value("orderflow_outbox_backlog", service="order") == 0

            await orders.handled(*await orders.place("ord-m1", "ord-m2"))
            stored = await orders.pool.fetchval("SELECT count(*) FROM events")
            assert stored >= 2

            async def counted() -> Scrape:  # just after the commit the inbox shows
                scraped = await orders.scrape()
                assert scraped.value(**handled) == 2
                assert scraped.value(**latency) == (before.value(**latency) or 0) + 2  # once per message
                return scraped
            during = await eventually(counted)
            assert during.value("orderflow_outbox_backlog", service="order") == stored
            assert during.value(**published) == before.value(**published)

            await held.execute(LET_RELAY_GO)

            async def caught_up():
                after = await orders.scrape()
                assert after.value("orderflow_outbox_backlog", service="order") == 0
                assert after.value(**published) == (before.value(**published) or 0) + stored
            await eventually(caught_up)
    finally:
        await held.execute("SELECT pg_advisory_unlock_all()")
        await (await pools("order")).release(held)


async def test_consumer_lag_is_shown_for_each_assigned_partition_and_counts_a_batch_in_hand(apache_kafka, pools):
    release = asyncio.Event()
    async with order_service(apache_kafka, pools, partitions=2, release=release) as orders:
        def lag(scraped: Scrape) -> dict[str, float]:
            return {dict(labels)["partition"]: value
                    for labels, value in scraped.series("orderflow_consumer_lag", service="order",
                                                        topic=orders.topic).items()}

        async def caught_up():
            assert lag(await orders.scrape()) == {"0": 0, "1": 0}
        await eventually(caught_up)

        hung = await orders.place("hang-1", partition=1)  # fetched, so the consumer's position is past it

        async def waiting_on_partition_1():
            now = lag(await orders.scrape())
            assert now["1"] >= 1 and now["0"] == 0, now
        try:
            await eventually(waiting_on_partition_1)
        finally:
            release.set()
        await orders.handled(*hung)
        await eventually(caught_up)

    # A service that stopped leaves no lag behind in the process's registry.
    assert Scrape(generate_latest(REGISTRY).decode()).series("orderflow_consumer_lag", topic=orders.topic) == {}


async def test_a_gauge_the_database_cannot_answer_for_is_left_out_and_the_scrape_still_answers(apache_kafka, pools):
    async with DatabaseLink(pools.urls["order"]) as link, order_service(apache_kafka, pools, database_url=link.url) as orders:
        async def all_shown():
            scraped = await orders.scrape()
            assert scraped.value("orderflow_outbox_backlog", service="order") == 0
            assert scraped.series("orderflow_consumer_lag", topic=orders.topic)
        await eventually(all_shown)

        link.cut()
        scraped = await orders.scrape()
        assert scraped.value("orderflow_outbox_backlog", service="order") is None  # not the last value read
        assert scraped.series("orderflow_consumer_lag", topic=orders.topic)  # Kafka still answers

        link.restore()
        await eventually(all_shown)


async def test_notifications_pending_are_counted_per_channel_neither_sent_nor_refused(apache_kafka, pools):
    service = dataclasses.replace(
        notification.SERVICE, background=lambda runtime: [],  # no dispatcher: the rows stay as the test puts them
        subscriptions=[Subscription(await new_topic(apache_kafka, "orders.events-test"), {}, strict=False)],
        events_topic=await new_topic(apache_kafka, "notifications.events-test"))
    settings = Settings(service="notification", kafka_bootstrap_servers=apache_kafka,
                        notification_database_url=pools.urls["notification"], kafka_session_timeout_ms=2000,
                        webhook_url="http://127.0.0.1:9/orderflow")
    pool = await pools("notification")

    async def queue(channel: str, sent: bool = False, refused: bool = False) -> uuid.UUID:
        notification_id = uuid.uuid4()
        await pool.execute(
            "INSERT INTO notification_outbox (notification_id, order_id, kind, subject, body, causation_id, channel,"
            " sent_at, failed_reason) VALUES ($1, 'ord-n1', 'order_confirmed', 's', 'b', 'cause', $2, $3, $4)",
            notification_id, channel, datetime.now(UTC) if sent else None, "refused" if refused else None)
        return notification_id

    async with running(service, settings) as http:
        def pending(scraped: Scrape, channel: str) -> float | None:
            return scraped.value("orderflow_notifications_pending", channel=channel)

        scraped = await scrape(http)
        assert (pending(scraped, "email"), pending(scraped, "webhook")) == (0, 0)  # both configured

        first = await queue("email")
        await queue("email")
        await queue("email", sent=True)
        await queue("email", refused=True)
        await queue("webhook")
        scraped = await scrape(http)
        assert (pending(scraped, "email"), pending(scraped, "webhook")) == (2, 1)

        await pool.execute("UPDATE notification_outbox SET sent_at = now() WHERE notification_id = $1", first)
        assert pending(await scrape(http), "email") == 1

