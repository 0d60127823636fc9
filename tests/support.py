"""Test helpers that speak the public contract: send commands as CloudEvents, watch the topics."""

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from cloudevents.core.bindings.kafka import KafkaMessage, to_binary
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent
from pydantic import BaseModel

from contracts import topics
from contracts.envelope import STRUCTURED_CONTENT_TYPE, Envelope

WATCHED = [name for topic in topics.ALL for name in (topic, topics.dead_letter(topic))]


def binary_mode(envelope: Envelope) -> KafkaMessage:
    """The envelope as a binary-mode Kafka record, made by the official CloudEvents SDK."""
    attributes = envelope.model_dump(exclude={"data"}, exclude_none=True)
    return to_binary(CloudEvent(attributes, envelope.data), JSONFormat())


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@dataclass
class Record:
    topic: str
    key: bytes | None
    value: bytes
    headers: dict[str, str]

    @property
    def envelope(self) -> dict:
        return json.loads(self.value)

    @property
    def type(self) -> str | None:
        try:
            return self.envelope.get("type")
        except ValueError:
            return None

    @property
    def data(self) -> dict:
        return self.envelope["data"]


@dataclass
class Bus:
    """Sends to and watches every public topic (and its DLQ) of one broker, from the beginning."""

    bootstrap_servers: str
    security: dict[str, Any] = field(default_factory=dict)  # KafkaSettings.client_security() of a secured broker
    idempotent: bool = True  # False for Tansu
    records: list[Record] = field(default_factory=list)

    async def start(self) -> "Bus":
        self._producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap_servers, acks="all",
                                          enable_idempotence=self.idempotent, **self.security)
        self._consumer = AIOKafkaConsumer(*WATCHED, bootstrap_servers=self.bootstrap_servers, group_id=None,
                                          auto_offset_reset="earliest", enable_auto_commit=False, **self.security)
        await self._producer.start()
        await self._consumer.start()
        self._task = asyncio.create_task(self._collect())
        return self

    async def stop(self) -> None:
        self._task.cancel()
        await self._consumer.stop()
        await self._producer.stop()

    async def _collect(self) -> None:
        while True:
            batches = await self._consumer.getmany(timeout_ms=100)
            for records in batches.values():
                for r in records:
                    headers = {k: (v or b"").decode(errors="replace") for k, v in r.headers or ()}  # a header may have no value
                    self.records.append(Record(r.topic, r.key, r.value, headers))

    async def send(self, topic: str, command: BaseModel, key: str, **envelope) -> Envelope:
        """Send in structured mode: the envelope as the value, with the binding's content-type."""
        message = Envelope.wrap(command, source="tests", subject=key, **envelope)
        await self.send_raw(topic, message.to_bytes(), key, {"content-type": STRUCTURED_CONTENT_TYPE})
        return message

    async def send_binary(self, topic: str, command: BaseModel, key: str, **envelope) -> Envelope:
        """Send in binary mode, as the CloudEvents SDK makes it: `ce_*` headers, the data as the value."""
        message = Envelope.wrap(command, source="tests", subject=key, **envelope)
        record = binary_mode(message)
        await self.send_raw(topic, record.value, key, {k: v.decode() for k, v in record.headers.items()})
        return message

    async def send_raw(self, topic: str, value: bytes, key: str | None, headers: dict[str, str] | None = None) -> None:
        await self._producer.send_and_wait(topic, value, key=key.encode() if key else None,
                                           headers=[(k, v.encode()) for k, v in (headers or {}).items()])

    def events(self, topic: str, type_: str | None = None, **data) -> list[Record]:
        """The records on `topic` of that type whose data has those values."""
        found = []
        for r in list(self.records):
            if r.topic != topic or (type_ and r.type != type_):
                continue
            if data and not all(r.data.get(k) == v for k, v in data.items()):
                continue
            found.append(r)
        return found

    async def wait_for(self, topic: str, type_: str | None = None, count: int = 1, timeout: float = 30,
                       **data) -> list[Record]:
        """Wait until at least `count` such records arrived; returns them all."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.events(topic, type_, **data)
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(found)} of {count} {type_ or 'records'} {data} on {topic} within {timeout} s")
            await asyncio.sleep(0.05)


async def outlast(seconds: float) -> None:
    """For rules about time only (a retry's backoff, the ETA update window): wait longer than the rule's
    period. Everything else waits for a sentinel: a later message on the same partitions, whose effect
    shows that what came before it was handled."""
    await asyncio.sleep(seconds)


async def eventually(check: Callable[[], object], timeout: float = 30) -> object:
    """Retry an assertion (sync or async) until it passes or the time is up."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
            if asyncio.iscoroutine(result):
                result = await result
            return result
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


def only(items: list):
    """The one item; fails (so that `eventually` tries again) while there are none or several."""
    assert len(items) == 1, items
    return items[0]


def exactly(items: list, n: int) -> list:
    assert len(items) == n, items
    return items


def at_least(items: list, n: int) -> list:
    assert len(items) >= n, items
    return items
