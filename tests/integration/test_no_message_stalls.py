"""No message stalls a service: it reaches its DLQ in bounded attempts, an outage is waited out, /health tells a stall."""

import asyncio
import base64
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaTimeoutError
from aiokafka.structs import TopicPartition
from prometheus_client import REGISTRY

from contracts.commands import ORDER_COMMANDS, CancelOrder
from contracts.envelope import Envelope
from contracts.topics import dead_letter
from services.runtime.consumer import BatchConsumer
from services.runtime.messages import Subscription
from services.runtime.service import Service
from services.runtime.settings import Settings
from tests.integration.harness import DatabaseLink, dead_letters, new_topic, place_order, running, send
from tests.integration.helpers import Published, record
from tests.support import eventually

# A real error of the server, with the SQLSTATE of "insufficient resources": it looks like the database's fault.
RAISE_INSUFFICIENT_RESOURCES = "DO $$ BEGIN RAISE EXCEPTION 'injected: out of resources' USING ERRCODE = '53000'; END $$"


def failing_as_asked(release: asyncio.Event | None = None):
    """A handler that does nothing but let the inbox record what it handled, except where a test asks it to
    fail: a bug on every CancelOrder, a resource error on orders named `scarce-*`, a hang on `hang-*`."""

    async def handle(conn, messages):
        for message in messages:
            if isinstance(message.body, CancelOrder):
                raise RuntimeError("injected bug in CancelOrder")
            if message.body.order_id.startswith("scarce-"):
                await conn.execute(RAISE_INSUFFICIENT_RESOURCES)
            if message.body.order_id.startswith("hang-"):
                await release.wait()

    return handle


@dataclass
class OrderService:
    """The running service, its command topic, and a pool on its database."""

    bootstrap_servers: str
    topic: str
    http: httpx.AsyncClient
    pool: asyncpg.Pool

    async def send(self, value: bytes, key: str = "k", headers=()) -> None:
        await send(self.bootstrap_servers, self.topic, value, key, headers)

    async def place(self, order_id: str, headers=()) -> str:
        envelope = place_order(order_id)
        await self.send(envelope.to_bytes(), order_id, headers)
        return envelope.id

    async def handled(self, *message_ids: str) -> None:
        """Waits until the inbox holds these messages: they were handled and committed."""
        async def check():
            done = {r["message_key"] for r in await self.pool.fetch("SELECT message_key FROM inbox")}
            assert set(message_ids) <= done, set(message_ids) - done
        await eventually(check, timeout=30)

    async def dead_letters(self, count: int = 1) -> list:
        return await dead_letters(self.bootstrap_servers, self.topic, count)


@contextlib.asynccontextmanager
async def order_service(apache_kafka, pools, database_url: str | None = None, release: asyncio.Event | None = None,
                        **settings) -> AsyncIterator[OrderService]:
    """The runtime as the order service runs it, on fresh one-partition topics, with the handler above."""
    topic = await new_topic(apache_kafka, "orders.commands-test")
    service = Service(name="order", subscriptions=[Subscription(topic, ORDER_COMMANDS, strict=True)],
                      handle=failing_as_asked(release), inbox_key=lambda m: m.envelope.id,
                      events_topic=await new_topic(apache_kafka, "orders.events-test"), key_field="order_id")
    config = Settings(service="order", kafka_bootstrap_servers=apache_kafka,
                      order_database_url=database_url or pools.urls["order"], kafka_session_timeout_ms=2000, **settings)
    async with running(service, config) as http:
        yield OrderService(apache_kafka, topic, http, await pools("order"))


def headers(record) -> dict[str, bytes | None]:
    return dict(record.headers)


def sample(name: str) -> float:
    return REGISTRY.get_sample_value(name, {"service": "order"}) or 0


async def test_a_place_order_nested_5000_deep_is_dead_lettered_and_the_next_order_is_handled(apache_kafka, pools):
    deep = place_order("deep-1").model_dump(mode="json", exclude_none=True)
    deep["data"]["lines"] = "<nested>"
    value = json.dumps(deep).replace('"<nested>"', "[" * 5000 + "]" * 5000).encode()

    async with order_service(apache_kafka, pools) as orders:
        await orders.send(value, "deep-1")
        after = await orders.place("after-deep")

        [dead] = await orders.dead_letters()
        assert dead.value == value
        assert headers(dead)["dlq.error"] == b"JSON nested too deeply to decode"
        await orders.handled(after)


async def test_a_900_kb_value_is_dead_lettered_whole_and_the_next_order_is_handled(apache_kafka, pools):
    big = place_order("big-1").model_dump(mode="json", exclude_none=True)
    big["data"]["customer_id"] = "c" * (900 * 1024)
    value = json.dumps(big).encode()

    async with order_service(apache_kafka, pools) as orders:
        await orders.send(value, "big-1")
        after = await orders.place("after-big")

        [dead] = await orders.dead_letters()
        assert len(dead.value) > 900 * 1024 and dead.value == value
        assert headers(dead)["dlq.error"].startswith(b"invalid PlaceOrder: customer_id: String should have at most")
        await orders.handled(after)


async def test_a_value_too_large_for_the_dead_letter_topic_is_dead_lettered_without_it(apache_kafka, pools):
    async with order_service(apache_kafka, pools) as orders:
        admin = AIOKafkaAdminClient(bootstrap_servers=apache_kafka)
        await admin.start()
        await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, dead_letter(orders.topic),
                                                  configs={"max.message.bytes": "20000"})])
        await admin.close()
        value = b"{" + b" " * 50_000  # broken JSON, more than its dead-letter topic takes

        await orders.send(value, "too-big")
        after = await orders.place("after-too-big")

        [dead] = await orders.dead_letters()
        reason = headers(dead)["dlq.error"].decode()
        assert dead.value == b"" and reason.startswith("not JSON")
        assert "value of 50001 bytes was too large for the dead-letter topic" in reason
        assert headers(dead)["dlq.original.offset"] == b"0"
        await orders.handled(after)


async def test_headers_that_are_not_utf8_are_handled_and_dead_lettered_as_they_came(apache_kafka, pools):
    odd = [("x-trace", b"\xff\xfe\x00 not text"), ("x-none", None), ("x-text", b"plain")]

    async with order_service(apache_kafka, pools) as orders:
        first = await orders.place("odd-headers-1", odd)  # the first record of its batch: FastStream's parser sees it
        await orders.handled(first)
        await orders.send(b"{not json", "odd-headers-2", odd)
        after = await orders.place("after-odd-headers")

        [dead] = await orders.dead_letters()
        assert headers(dead)["dlq.error"].startswith(b"not JSON")
        assert headers(dead)["dlq.base64"] == b"x-trace"
        assert base64.b64decode(headers(dead)["x-trace"]) == b"\xff\xfe\x00 not text"
        assert headers(dead)["x-text"] == b"plain"
        await orders.handled(after)


async def test_a_handler_bug_on_one_message_type_dead_letters_those_messages_only(apache_kafka, pools):
    async with order_service(apache_kafka, pools) as orders:
        before = await orders.place("bug-1")
        cancel = Envelope.wrap(CancelOrder(order_id="bug-1"), source="tests")
        await orders.send(cancel.to_bytes(), "bug-1")
        after = await orders.place("bug-2")

        [dead] = await orders.dead_letters()
        assert dead.value == cancel.to_bytes()
        assert headers(dead)["dlq.error"] == b"handler failed: RuntimeError('injected bug in CancelOrder')"
        await orders.handled(before, after)


async def test_an_error_that_looks_like_the_databases_is_dead_lettered_after_bounded_attempts_while_it_answers(
        apache_kafka, pools):
    async with order_service(apache_kafka, pools, message_attempts=3) as orders:
        await orders.place("scarce-1")
        after = await orders.place("after-scarce")

        [dead] = await orders.dead_letters()
        reason = headers(dead)["dlq.error"].decode()
        assert reason.startswith("handler failed 3 times: InsufficientResourcesError('injected: out of resources')")
        await orders.handled(after)


async def test_a_database_that_does_not_answer_is_waited_for_and_nothing_is_dead_lettered(apache_kafka, pools):
    async with DatabaseLink(pools.urls["order"]) as link, order_service(apache_kafka, pools, database_url=link.url,
                                                              message_attempts=2) as orders:
        await orders.handled(await orders.place("before-outage"))
        redelivered = sample("orderflow_batches_redelivered_total")

        link.cut()
        during = await orders.place("during-outage")

        async def redelivered_twice():
            assert sample("orderflow_batches_redelivered_total") >= redelivered + 2
        await eventually(redelivered_twice, timeout=20)  # more often than MESSAGE_ATTEMPTS, and still waiting
        assert (await orders.http.get("/health")).status_code == 503
        link.restore()

        await orders.handled(during)
        assert await dead_letters(apache_kafka, orders.topic, count=0, timeout=1) == []


async def test_health_is_unavailable_while_records_wait_and_nothing_was_committed_for_the_stall_time(
        apache_kafka, pools):
    release = asyncio.Event()
    async with order_service(apache_kafka, pools, release=release, health_stall_s=1) as orders:
        await orders.handled(await orders.place("first"))

        async def quiet_for_the_stall_time():
            assert sample("orderflow_consumer_seconds_since_commit") >= 1
        await eventually(quiet_for_the_stall_time)
        assert (await orders.http.get("/health")).status_code == 200  # idle: nothing waits

        hung = await orders.place("hang-1")  # a handler that never returns, which no attempt count can catch
        after = await orders.place("after-hang")

        async def stalled():
            response = await orders.http.get("/health")
            assert response.status_code == 503, response.text
            return response.json()
        body = await eventually(stalled, timeout=20)
        assert body["stalled"]["lag"][f"{orders.topic}/0"] >= 1 and body["stalled"]["seconds_since_commit"] >= 1

        release.set()
        await orders.handled(hung, after)

        async def healthy():
            assert (await orders.http.get("/health")).status_code == 200
        await eventually(healthy)


class BrokerDownOnce(Published):
    """Publishes as a broker that does not answer would, once, then takes every dead letter."""

    def __init__(self) -> None:
        super().__init__()
        self.refused = 0

    async def __call__(self, value, topic, **kw):
        if not self.refused:
            self.refused += 1
            future = asyncio.get_running_loop().create_future()
            future.set_exception(KafkaTimeoutError())
            return future
        return await super().__call__(value, topic, **kw)


async def test_a_dead_letter_the_broker_does_not_take_fails_the_batch_and_is_sent_again(pools):
    publish = BrokerDownOnce()
    consumer = BatchConsumer("order", await pools("order"), [Subscription("orders.commands", ORDER_COMMANDS, True)],
                             failing_as_asked(), lambda m: m.envelope.id, publish, lambda: None, message_attempts=3)
    batch = [record("orders.commands", b"{not json")]

    with pytest.raises(Exception, match="the broker did not take a dead letter"):
        await consumer.process(batch)
    assert await consumer.process(batch) == {}  # as FastStream redelivers it

    assert [(topic, value) for topic, value, _ in publish.sent] == [("orders.commands.dlq", b"{not json")]


async def test_a_message_failing_with_an_error_that_may_pass_holds_its_partition_until_dead_lettered(pools):
    pool = await pools("order")
    publish = Published()
    consumer = BatchConsumer("order", pool, [Subscription("orders.commands", ORDER_COMMANDS, True)],
                             failing_as_asked(), lambda m: m.envelope.id, publish, lambda: None, message_attempts=3)
    scarce, after = place_order("scarce-2"), place_order("after-scarce-2")
    batch = [record("orders.commands", scarce.to_bytes()), record("orders.commands", b"{not json"),
             record("orders.commands", after.to_bytes())]
    partition = TopicPartition("orders.commands", 0)

    # Held at the failing message, twice: what follows it waits, dead letters included, to keep the order.
    for _ in range(2):
        assert await consumer.process(batch) == {partition: batch[0].offset}
        assert publish.sent == []
        assert await pool.fetchval("SELECT count(*) FROM inbox") == 0

    assert await consumer.process(batch) == {}
    [(_, first, failed), (_, second, unreadable)] = publish.sent
    assert first == scarce.to_bytes() and failed["dlq.error"].startswith("handler failed 3 times: InsufficientResources")
    assert second == b"{not json" and unreadable["dlq.error"].startswith("not JSON")
    assert await pool.fetchval("SELECT array_agg(message_key) FROM inbox") == [after.id]
