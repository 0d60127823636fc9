"""Kafka records and messages as the services would receive them, and a `publish` that keeps what it is given."""

import asyncio

from aiokafka.structs import ConsumerRecord
from pydantic import BaseModel

from contracts.envelope import Envelope
from services.runtime.messages import Message

_offsets: dict[str, int] = {}


def record(topic: str, value: bytes, key: str | None = None, headers: list[tuple[str, bytes]] = ()) -> ConsumerRecord:
    offset = _offsets[topic] = _offsets.get(topic, -1) + 1
    return ConsumerRecord(topic=topic, partition=0, offset=offset, timestamp=0, timestamp_type=0,
                          key=key.encode() if key else None, value=value, checksum=None,
                          serialized_key_size=0, serialized_value_size=len(value), headers=list(headers))


def message(topic: str, body: BaseModel) -> Message:
    return Message(Envelope.wrap(body, source="tests"), body, topic)


class Published:
    """A `publish` that keeps what it was given (for dead letters, which these tests inspect directly)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, dict]] = []

    async def __call__(self, value, topic, *, key=None, headers=None, correlation_id=None, no_confirm=False):
        self.sent.append((topic, value, headers or {}))
        future = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future
