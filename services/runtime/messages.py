"""Turning raw Kafka records into validated messages, or into the reason they can never be handled."""

import json
from collections.abc import Sequence
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
    """A message that can never be handled: it goes to the dead-letter topic with this reason, and with its
    envelope when that could be read (the dead letter carries its correlation)."""

    def __init__(self, reason: str, envelope: Envelope | None = None):
        super().__init__(reason)
        self.envelope = envelope


class InfrastructureDown(Exception):
    """The database or the broker does not answer: the batch is redelivered after a backoff, never dead-lettered."""


# What a service reads from one topic: CloudEvents type -> model. `strict` topics (commands) reject
# unknown types; on event topics a type the service does not need is skipped, so producers can add types.
@dataclass(frozen=True)
class Subscription:
    topic: str
    models: dict[str, type[BaseModel]]
    strict: bool


Headers = Sequence[tuple[str, bytes | None]]


def parse(subscription: Subscription, value: bytes | None, headers: Headers = ()) -> Message | None:
    """The message, None when it is an event type this service does not read, or Unhandleable."""
    try:
        return _parse(subscription, value, headers)
    except Unhandleable:
        raise
    except Exception as error:  # whatever reading one record raises is that record's doing, not the service's
        raise Unhandleable(f"cannot be read: {error!r}") from None


def is_binary_mode(headers: Headers) -> bool:
    """The Kafka binding's rule: a content-type of application/cloudevents... is structured mode, else a
    `ce_specversion` header is binary mode. A record with neither is read as structured mode too: the
    senders that set no header at all (and our relays before they did) sent the envelope as the value."""
    content_type = next((value for key, value in headers if key.lower() == "content-type"), None) or b""
    return (not content_type.lower().startswith(b"application/cloudevents")
            and any(key.lower() == "ce_specversion" for key, _ in headers))


def _parse(subscription: Subscription, value: bytes | None, headers: Headers) -> Message | None:
    if value is None:
        raise Unhandleable("empty message value")
    binary = is_binary_mode(headers)
    raw = _binary_envelope(value, headers) if binary else _json(value)
    if _holds_nul(raw):  # valid to the models, but PostgreSQL stores it in no text or jsonb: refused here
        raise Unhandleable("a text holds the NUL character (\\u0000), which cannot be stored")
    try:
        envelope = Envelope.model_validate(raw)
    except ValidationError as error:
        mode = "event in binary mode" if binary else "envelope"
        raise Unhandleable(f"not a CloudEvents 1.0 {mode}: {_brief(error, binary)}") from None
    if traceparent := _traceparent_header(headers):
        envelope = envelope.model_copy(update={"traceparent": traceparent})
    model = subscription.models.get(envelope.type)
    if model is None:
        if subscription.strict:
            raise Unhandleable(f"unknown type {envelope.type!r} on {subscription.topic}", envelope)
        return None
    try:
        body = model.model_validate(envelope.data)
    except ValidationError as error:
        raise Unhandleable(f"invalid {envelope.type}: {_brief(error)}", envelope) from None
    return Message(envelope, body, subscription.topic)


def _binary_envelope(value: bytes, headers: Headers) -> dict[str, Any]:
    """The envelope of a binary-mode record: its attributes from the `ce_*` headers, the value its data,
    which must be JSON (the content-type header is the data's; none means JSON, as in the envelope)."""
    content_type = _header(headers, "content-type") or "application/json"
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise Unhandleable(f"binary mode with data of content-type {content_type!r}: only application/json is read")
    attributes: dict[str, Any] = {}
    for key, raw in headers:
        if not key.lower().startswith("ce_"):
            continue
        name = key[3:].lower()
        if name in attributes:  # which id, which type? Neither guess is safe.
            raise Unhandleable(f"binary mode with the header {key} twice")
        attributes[name] = _text(key, raw)
    return attributes | {"datacontenttype": "application/json", "data": _json(value)}


def _holds_nul(value: Any) -> bool:
    """Whether any text in the decoded JSON (a key or a string, at any depth) holds U+0000."""
    waiting = [value]
    while waiting:
        item = waiting.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            waiting += item.keys()
            waiting += item.values()
        elif isinstance(item, list):
            waiting += item
    return False


def _traceparent_header(headers: Headers) -> str | None:
    """The W3C `traceparent` header, which our relays set and instrumented producers add to any record: the
    trace of the hop that brought the message, before the envelope's. One that is not text is passed over:
    a trace is never worth a message."""
    raw = next((value for key, value in headers if key.lower() == "traceparent"), None)
    try:
        return raw.decode() if raw else None
    except UnicodeDecodeError:
        return None


def _json(value: bytes) -> Any:
    try:
        return json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise Unhandleable(f"not JSON: {error}") from None
    except RecursionError:
        raise Unhandleable("JSON nested too deeply to decode") from None


def _header(headers: Headers, name: str) -> str | None:
    """The value of the header `name` (names compared without case), or None."""
    for key, raw in headers:
        if key.lower() == name:
            return _text(key, raw)
    return None


def _text(key: str, raw: bytes | None) -> str:
    try:
        return (raw or b"").decode()
    except UnicodeDecodeError:
        raise Unhandleable(f"the header {key} is not UTF-8") from None


def _brief(error: ValidationError, binary: bool = False) -> str:
    def where(loc: tuple) -> str:
        path = ".".join(map(str, loc)) or "value"
        if binary:  # name what the sender sent: a header, or the value that holds the data
            return "value" if loc[:1] == ("data",) else f"ce_{path}"
        return path

    return "; ".join(f"{where(e['loc'])}: {e['msg']}" for e in error.errors()[:5])
