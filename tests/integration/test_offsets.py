"""Consumer offsets, committed in the background (services/runtime/offsets.py), on a real Apache Kafka broker and
PostgreSQL: read back with the admin client, across a rebalance, a stop in the middle of a batch and a broker
that went away."""

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition

from contracts.commands import ORDER_COMMANDS
from infra import kafka
from infra.ports import free_port
from services.runtime.messages import Subscription
from services.runtime.service import Service, build_app
from services.runtime.settings import Settings
from tests.integration.harness import new_topic, place_order, running
from tests.support import eventually

GROUP = "orderflow-order"


def hanging_on_hang_orders(release: asyncio.Event, entered: asyncio.Event | None = None):
    """A handler that lets the inbox record what it handled, and waits for `release` on orders named `hang-*`
    (setting `entered` first)."""

    async def handle(conn, messages):
        for message in messages:
            if message.body.order_id.startswith("hang-"):
                if entered:
                    entered.set()
                await release.wait()

    return handle


async def order_service_on(bootstrap_servers: str, topic: str, pools, release: asyncio.Event,
                           entered: asyncio.Event | None = None):
    service = Service(name="order", subscriptions=[Subscription(topic, ORDER_COMMANDS, strict=True)],
                      handle=hanging_on_hang_orders(release, entered), inbox_key=lambda m: m.envelope.id,
                      events_topic=await new_topic(bootstrap_servers, "orders.events-offsets"), key_field="order_id")
    settings = Settings(service="order", kafka_bootstrap_servers=bootstrap_servers,
                        order_database_url=pools.urls["order"], kafka_session_timeout_ms=2000)
    return service, settings


async def started_service(bootstrap_servers: str, topic: str, pools):
    """The service started by hand, for a test that stops it at a moment of its choosing (`lifespan.__aexit__`):
    its database pool, its lifespan, and the events that release and tell of a batch of `hang-*` orders."""
    release, entered = asyncio.Event(), asyncio.Event()
    service, settings = await order_service_on(bootstrap_servers, topic, pools, release, entered)
    pool = await pools("order")
    app = build_app(service, settings)
    lifespan = app.router.lifespan_context(app)
    await lifespan.__aenter__()
    return pool, lifespan, release, entered


async def place(bootstrap_servers: str, topic: str, *order_ids: str) -> list[str]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, acks="all", enable_idempotence=False)
    await producer.start()
    try:
        envelopes = [place_order(order_id) for order_id in order_ids]
        for envelope in envelopes:
            await producer.send_and_wait(topic, envelope.to_bytes(), key=envelope.subject.encode(), partition=0)
        return [envelope.id for envelope in envelopes]
    finally:
        await producer.stop()


async def committed(bootstrap_servers: str, partition: TopicPartition) -> int | None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(GROUP, partitions=[partition])
    finally:
        await admin.close()
    found = offsets.get(partition)
    return None if found is None or found.offset < 0 else found.offset


async def handled(pool, *message_ids: str) -> None:
    async def check():
        done = {r["message_key"] for r in await pool.fetch("SELECT message_key FROM inbox")}
        assert set(message_ids) <= done, set(message_ids) - done
    await eventually(check, timeout=30)


async def committed_at(bootstrap_servers: str, partition: TopicPartition, offset: int) -> None:
    async def check():
        assert await committed(bootstrap_servers, partition) == offset
    await eventually(check, timeout=30)


@contextlib.asynccontextmanager
async def other_instance(bootstrap_servers: str, topic: str) -> AsyncIterator[AIOKafkaConsumer]:
    """A second member of the service's group, as another instance would be. Its client id sorts before the
    service's, so the round-robin assignor gives it the topic's one partition."""
    member = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap_servers, group_id=GROUP, client_id="a-second-instance",
                              enable_auto_commit=False, auto_offset_reset="earliest",
                              session_timeout_ms=6000, heartbeat_interval_ms=500)
    await member.start()
    try:
        yield member
    finally:
        await member.stop()


async def test_a_batch_a_rebalance_overtook_never_moves_the_committed_offset_back(apache_kafka, pools):
    topic = await new_topic(apache_kafka, "orders.commands-offsets")
    partition = TopicPartition(topic, 0)
    release = asyncio.Event()
    service, settings = await order_service_on(apache_kafka, topic, pools, release)
    pool = await pools("order")
    async with running(service, settings) as http:
        await handled(pool, *await place(apache_kafka, topic, "first"))
        await committed_at(apache_kafka, partition, 1)
        [hung] = await place(apache_kafka, topic, "hang-1")  # the batch in hand while the group rebalances

        async with other_instance(apache_kafka, topic) as second:
            await eventually(lambda: (assert_assigned(second, partition)), timeout=60)
            release.set()  # the service's batch goes through after its partition went to the second instance
            await handled(pool, hung)
            # The second instance gets through more records and commits them.
            await place(apache_kafka, topic, "later-1", "later-2", "later-3")
            seen = 0
            while seen < 4:  # hang-1 again (it starts where the service committed), then the three
                seen += sum(len(records) for records in (await second.getmany(timeout_ms=500)).values())
            await second.commit({partition: 5})
        # The second instance left: the partition is the service's again, from offset 5. What its overtaken
        # batch got through (up to offset 2) is no longer news and must not be committed over it.

        async def assigned_again():
            lag = (await http.get("/metrics")).text
            assert f'topic="{topic}"' in lag, "the partition is not the service's yet"
        await eventually(assigned_again, timeout=60)
        await asyncio.sleep(1)  # five background commits
        assert await committed(apache_kafka, partition) == 5


def assert_assigned(consumer: AIOKafkaConsumer, partition: TopicPartition) -> None:
    assert partition in consumer.assignment()


async def test_a_service_stops_while_the_broker_is_away_with_offsets_still_to_commit(pools, tmp_path):
    broker = kafka.start_apache_kafka(free_port(also=(1,)), tmp_path / "broker")
    try:
        servers = broker.bootstrap_servers
        topic = await new_topic(servers, "orders.commands-offsets")
        pool, lifespan, release, entered = await started_service(servers, topic, pools)
        try:
            hung, after = await place(servers, topic, "hang-1", "after")
            await asyncio.wait_for(entered.wait(), 30)
            await asyncio.sleep(1)  # "after" is fetched, in the consumer's buffer, if not in the batch in hand
            await asyncio.to_thread(broker.stop)
            release.set()  # the batches go through with no broker to commit them to
            await handled(pool, hung, after)
        finally:
            release.set()
            # Stopping waits for its last commits a bounded time: aiokafka alone would retry them until the
            # broker came back.
            await asyncio.wait_for(lifespan.__aexit__(None, None, None), 90)
    finally:
        broker.stop()


async def test_a_service_stopped_in_the_middle_of_a_batch_commits_it_and_resumes_after_it(apache_kafka, pools):
    topic = await new_topic(apache_kafka, "orders.commands-offsets")
    partition = TopicPartition(topic, 0)
    pool, lifespan, release, entered = await started_service(apache_kafka, topic, pools)
    [hung] = await place(apache_kafka, topic, "hang-1")
    await asyncio.wait_for(entered.wait(), 30)
    stopping = asyncio.create_task(lifespan.__aexit__(None, None, None))
    await asyncio.sleep(0.5)  # stopping, and waiting for the batch in hand
    release.set()
    await asyncio.wait_for(stopping, 60)
    await handled(pool, hung)
    assert await committed(apache_kafka, partition) == 1
