"""Builds the Kafka records and messages the services would receive, for tests below the broker."""

from aiokafka.structs import ConsumerRecord
from pydantic import BaseModel

from contracts.envelope import Envelope
from services.runtime.messages import Message

_offsets: dict[str, int] = {}


def record(topic: str, value: bytes, key: str | None = None) -> ConsumerRecord:
    offset = _offsets[topic] = _offsets.get(topic, -1) + 1
    return ConsumerRecord(topic=topic, partition=0, offset=offset, timestamp=0, timestamp_type=0,
                          key=key.encode() if key else None, value=value, checksum=None,
                          serialized_key_size=0, serialized_value_size=len(value), headers=[])


def message(topic: str, body: BaseModel) -> Message:
    return Message(Envelope.wrap(body, source="tests"), body, topic)
