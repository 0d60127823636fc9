"""What orderflow publishes through FastStream on a real Apache Kafka broker, read by the official CloudEvents
SDK as any reader would (automatic mode detection): the relay's events, and dead letters."""

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import date

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord
from cloudevents.core.base import BaseCloudEvent
from cloudevents.core.bindings.kafka import KafkaMessage, from_kafka
from cloudevents.core.exceptions import CloudEventValidationError
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent
from faststream.kafka import KafkaBroker

from contracts.commands import ORDER_COMMANDS, CancelOrder, ReceiveStock, RegisterProduct
from contracts.envelope import STRUCTURED_CONTENT_TYPE, TYPE_HEADER, Envelope
from contracts.topics import INVENTORY_COMMANDS
from services.inventory import handlers as inventory
from services.runtime.consumer import BatchConsumer
from services.runtime.messages import Subscription, Unhandleable
from services.runtime.relay import OutboxRelay
from tests.integration.harness import dead_letters, new_topic
from tests.integration.helpers import record
from tests.integration.test_consumer_and_relay import INVENTORY_SUBSCRIPTIONS
from tests.support import binary_mode, eventually


def read(kafka_record: ConsumerRecord) -> BaseCloudEvent:
    """The record as the SDK reads it: binary mode when a header starts with ce_, else structured mode."""
    return from_kafka(KafkaMessage(dict(kafka_record.headers), kafka_record.key, kafka_record.value), JSONFormat())


@pytest.fixture
async def faststream(apache_kafka) -> AsyncIterator[KafkaBroker]:
    """A broker set up to publish as the services' is: its `publish` is what the relay and the consumer call."""
    broker = KafkaBroker(apache_kafka, acks="all", enable_idempotence=False)
    await broker.connect()
    yield broker
    await broker.stop()


async def everything_on(bootstrap_servers: str, topic: str, count: int) -> list[ConsumerRecord]:
    reader = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap_servers, auto_offset_reset="earliest", group_id=None)
    await reader.start()
    received: list[ConsumerRecord] = []
    try:
        for _ in range(100):
            for records in (await reader.getmany(timeout_ms=200)).values():
                received += records
            if len(received) >= count:
                break
    finally:
        await reader.stop()
    return received


async def test_every_event_the_relay_publishes_reads_with_the_cloudevents_sdk_as_the_envelope_it_stored(
        apache_kafka, pools, faststream):
    pool = await pools("inventory")
    topic = await new_topic(apache_kafka, "inventory.events-test")
    consumer = BatchConsumer("inventory", pool, INVENTORY_SUBSCRIPTIONS,
                             lambda conn, msgs: inventory.handle(conn, msgs, today=date.today()),
                             inventory.inbox_key, faststream.publish, lambda: None, message_attempts=3)
    correlated = Envelope.wrap(RegisterProduct(sku="CE-1", name="Anvil", lead_time_days=3), source="tests",
                               correlationid="checkout-77")
    uncorrelated = Envelope.wrap(ReceiveStock(receipt_id="r-ce", sku="CE-1", quantity=4), source="tests")
    await consumer.process([record(INVENTORY_COMMANDS, e.to_bytes()) for e in (correlated, uncorrelated)])

    relay = asyncio.create_task(OutboxRelay(pools.urls["inventory"], "inventory", topic, "sku", faststream.publish).run())

    async def relayed() -> None:
        assert await pool.fetchval("SELECT position FROM relay_cursor") == \
            await pool.fetchval("SELECT max(position) FROM events")
    try:
        await eventually(relayed)
    finally:
        relay.cancel()
        await asyncio.gather(relay, return_exceptions=True)

    stored = await pool.fetch("SELECT event_id, stream_id, type, data::text AS data, correlation_id, causation_id "
                              "FROM events ORDER BY position")
    received = await everything_on(apache_kafka, topic, len(stored))
    assert len(received) == len(stored) >= 3
    assert {row["correlation_id"] for row in stored} == {"checkout-77", uncorrelated.id}
    for row, kafka_record in zip(stored, received, strict=True):
        event = read(kafka_record)
        assert isinstance(event, CloudEvent) and event.get_specversion() == "1.0"
        assert event.get_id() == str(row["event_id"])
        assert event.get_type() == row["type"]
        assert event.get_source() == "orderflow/inventory"
        assert event.get_subject() == row["stream_id"] == kafka_record.key.decode()
        assert event.get_datacontenttype() == "application/json"
        assert event.get_data() == json.loads(row["data"])
        assert event.get_extension("correlationid") == row["correlation_id"]
        assert event.get_extension("causationid") == row["causation_id"]
        headers = dict(kafka_record.headers)
        assert headers["content-type"] == STRUCTURED_CONTENT_TYPE.encode()
        assert headers["correlation_id"] == row["correlation_id"].encode()  # FastStream's, the envelope's
        assert headers[TYPE_HEADER] == row["type"].encode()
        assert not [key for key in headers if key.lower().startswith("ce_")]


def binary(envelope: Envelope, drop: str | None = None) -> tuple[list[tuple[str, bytes]], bytes]:
    """The headers and value of the envelope in binary mode, as the SDK makes them, less the header `drop`."""
    message = binary_mode(envelope)
    return [(key, value) for key, value in message.headers.items() if key != drop], message.value


async def refuse_every_cancellation(conn, messages) -> None:
    for message in messages:
        if isinstance(message.body, CancelOrder):
            raise Unhandleable(f"CancelOrder for {message.body.order_id}: no such order")


async def test_dead_letters_keep_the_original_bytes_and_headers_and_read_with_the_sdk_as_the_original_did(
        apache_kafka, pools, faststream):
    topic = await new_topic(apache_kafka, "orders.commands-test")
    consumer = BatchConsumer("order", await pools("order"), [Subscription(topic, ORDER_COMMANDS, strict=True)],
                             refuse_every_cancellation, lambda m: m.envelope.id, faststream.publish, lambda: None,
                             message_attempts=3)
    structured = Envelope.wrap(CancelOrder(order_id="ord-s"), source="storefront-eu", correlationid="corr-s")
    in_binary = Envelope.wrap(CancelOrder(order_id="ord-b"), source="storefront-eu")
    no_source = Envelope.wrap(CancelOrder(order_id="ord-x"), source="storefront-eu")
    binary_headers, binary_value = binary(in_binary)
    sourceless_headers, sourceless_value = binary(no_source, drop="ce_source")
    originals = [
        record(topic, structured.to_bytes(), "ord-s", [("content-type", STRUCTURED_CONTENT_TYPE.encode()),
                                                       ("x-trace", b"t-1")]),
        record(topic, binary_value, "ord-b", binary_headers),
        record(topic, sourceless_value, "ord-x", sourceless_headers),
        record(topic, b"{not json", "ord-j"),  # no header at all
    ]

    await consumer.process(originals)

    dead = await dead_letters(apache_kafka, topic, count=4)
    assert [d.key for d in dead] == [b"ord-s", b"ord-b", b"ord-x", b"ord-j"]
    for original, letter in zip(originals, dead, strict=True):
        assert letter.value == original.value
        assert set(original.headers) <= set(letter.headers)  # every original header, as it came
        assert [key for key, _ in letter.headers if key.startswith("ce_")] == \
            [key for key, _ in original.headers if key.startswith("ce_")]
    headers = [dict(d.headers) for d in dead]
    assert [h["dlq.error"] for h in headers] == [
        b"CancelOrder for ord-s: no such order",
        b"CancelOrder for ord-b: no such order",
        b"not a CloudEvents 1.0 event in binary mode: ce_source: Field required",
        b"not JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)",
    ]
    # FastStream's content-type: the original's, else what the value was read as; never empty.
    assert [h["content-type"] for h in headers] == [STRUCTURED_CONTENT_TYPE.encode(), b"application/json",
                                                    b"application/json", STRUCTURED_CONTENT_TYPE.encode()]
    # FastStream's correlation_id: the correlation the services log (correlationid, else id), else a fresh one.
    assert headers[0]["correlation_id"] == b"corr-s"
    assert headers[1]["correlation_id"] == in_binary.id.encode()
    assert headers[2]["correlation_id"] and headers[3]["correlation_id"]

    # A reader takes each dead letter as it would have taken the original: the same event, or the same refusal.
    for original, letter in zip(originals[:2], dead[:2], strict=True):
        assert read(letter).get_attributes() == read(original).get_attributes()
        assert read(letter).get_data() == read(original).get_data()
    assert read(dead[0]).get_id() == structured.id and read(dead[1]).get_id() == in_binary.id
    with pytest.raises(CloudEventValidationError):
        read(dead[2])
