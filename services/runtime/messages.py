"""Turning raw Kafka records into validated messages, or into the reason they can never be handled."""

import json
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from contracts.envelope import Envelope


@dataclass(frozen=True)
class Message:
    """A parsed message: its envelope, and its data as the command or event model its type names."""

    envelope: Envelope
    body: Any
    topic: str

    @property
    def type(self) -> str:
        return self.envelope.type


class Unhandleable(Exception):
    """A message that can never be handled: it goes to the dead-letter topic with this reason."""


# What a service reads from one topic: CloudEvents type -> model. `strict` topics (commands) reject
# unknown types; on event topics a type the service does not need is skipped, so producers can add types.
@dataclass(frozen=True)
class Subscription:
    topic: str
    models: dict[str, type[BaseModel]]
    strict: bool


def parse(subscription: Subscription, value: bytes | None) -> Message | None:
    """The message, None when it is an event type this service does not read, or Unhandleable."""
    try:
        return _parse(subscription, value)
    except Unhandleable:
        raise
    except Exception as error:  # whatever reading one record raises is that record's doing, not the service's
        raise Unhandleable(f"cannot be read: {error!r}") from None


def _parse(subscription: Subscription, value: bytes | None) -> Message | None:
    if value is None:
        raise Unhandleable("empty message value")
    try:
        raw = json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise Unhandleable(f"not JSON: {error}") from None
    except RecursionError:
        raise Unhandleable("JSON nested too deeply to decode") from None
    try:
        envelope = Envelope.model_validate(raw)
    except ValidationError as error:
        raise Unhandleable(f"not a CloudEvents 1.0 envelope: {_brief(error)}") from None
    model = subscription.models.get(envelope.type)
    if model is None:
        if subscription.strict:
            raise Unhandleable(f"unknown type {envelope.type!r} on {subscription.topic}")
        return None
    try:
        body = model.model_validate(envelope.data)
    except ValidationError as error:
        raise Unhandleable(f"invalid {envelope.type}: {_brief(error)}") from None
    return Message(envelope, body, subscription.topic)


def _brief(error: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg']}" for e in error.errors()[:5])
