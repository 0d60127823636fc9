"""Dead letters: a record that can never be handled goes to `<topic>.dlq`, its value and headers unchanged,
with why in `dlq.*` headers, so that a CloudEvents reader takes it as it would have taken the original."""

import asyncio
import base64
from collections.abc import Awaitable, Callable

import structlog
from aiokafka.errors import MessageSizeTooLargeError
from aiokafka.structs import ConsumerRecord

from contracts.envelope import STRUCTURED_CONTENT_TYPE, Envelope
from contracts.topics import dead_letter
from services.runtime import metrics
from services.runtime.messages import InfrastructureDown, is_binary_mode

log = structlog.get_logger()

Publish = Callable[..., Awaitable]
DeadLetter = tuple[ConsumerRecord, str, Envelope | None]  # the record, why, and its envelope if it could be read

# A dead letter is the original record and our headers. The dead-letter topics (infra/topics.py) and our
# producer take twice Kafka's default record size, so whatever a topic accepted fits in its DLQ.
DEAD_LETTER_MAX_BYTES = 2 * 1024 * 1024
# In the reason of a dead letter sent without its value, which was too large even for the dead-letter topic.
VALUE_LEFT_OUT = "was too large for the dead-letter topic"


class DeadLetters:
    def __init__(self, service: str, publish: Publish) -> None:
        self._service = service
        self._publish = publish

    async def send(self, dead: list[DeadLetter]) -> None:
        """Publish the dead letters; all are acknowledged before the batch's offsets are committed."""
        if not dead:
            return
        acknowledgements = [await self._send(*d) for d in dead]
        results = await asyncio.gather(*acknowledgements, return_exceptions=True)
        if too_large := [d for d, r in zip(dead, results, strict=True) if isinstance(r, MessageSizeTooLargeError)]:
            acknowledgements = [await self._send(*d, too_large=True) for d in too_large]
            results = [r for r in results if not isinstance(r, MessageSizeTooLargeError)]
            results += await asyncio.gather(*acknowledgements, return_exceptions=True)
        if failed := [r for r in results if isinstance(r, BaseException)]:
            raise InfrastructureDown(f"the broker did not take a dead letter: {failed[0]!r}") from failed[0]
        for record, reason, _ in dead:
            log.warning("message dead-lettered", topic=record.topic, partition=record.partition,
                        offset=record.offset, error=reason)
            metrics.DLQ_MESSAGES.labels(self._service, record.topic).inc()

    async def _send(self, record: ConsumerRecord, reason: str, envelope: Envelope | None,
                    too_large: bool = False) -> Awaitable:
        """Publish one dead letter; returns its acknowledgement. One too large for the dead-letter topic goes
        without its value, which stays at its original offset: the reason says so."""
        value = record.value or b""
        headers = _copied_headers(record)
        if too_large:
            reason = f"{reason[:1500]}; its value of {len(value)} bytes {VALUE_LEFT_OUT}: read it at the original " \
                     "offset"
            value = b""
        # FastStream sets a content-type of its own, empty for bytes: the original's stands (under FastStream's
        # name for it), else (none, or an empty one) the one the value was read as, so that a CloudEvents
        # reader takes the dead letter as it would have taken the original.
        original = next((headers[key] for key in headers if key.lower() == "content-type"), None)
        headers["content-type"] = original or _read_as(record)
        headers |= {
            "dlq.error": reason[:2000],
            "dlq.service": self._service,
            "dlq.original.topic": record.topic,
            "dlq.original.partition": str(record.partition),
            "dlq.original.offset": str(record.offset),
        }
        # FastStream's correlation_id: the original's header wins (it is among those copied); else the
        # correlation the services log for the message, when its envelope could be read; else a new one.
        correlation = envelope and (envelope.correlationid or envelope.id)
        try:
            return await self._publish(value, dead_letter(record.topic), key=record.key, headers=headers,
                                       correlation_id=correlation, no_confirm=True)
        except MessageSizeTooLargeError as error:  # our own producer refused it before sending
            refused = asyncio.get_running_loop().create_future()
            refused.set_exception(error)
            return refused


def _read_as(record: ConsumerRecord) -> str:
    """The content-type of a record that came without one, as it was read: JSON data in binary mode, a
    structured-mode envelope otherwise."""
    return "application/json" if is_binary_mode(record.headers or ()) else STRUCTURED_CONTENT_TYPE


def _copied_headers(record: ConsumerRecord) -> dict[str, str]:
    """The record's headers for its dead letter, as text: a value that is not UTF-8 is copied in base64 and
    named in `dlq.base64`, so the original bytes can be restored."""
    headers: dict[str, str] = {}
    encoded = []
    for key, value in record.headers or ():
        try:
            headers[key] = (value or b"").decode()
        except UnicodeDecodeError:
            headers[key] = base64.b64encode(value).decode()
            encoded.append(key)
    if encoded:
        headers["dlq.base64"] = ",".join(encoded)
    return headers
