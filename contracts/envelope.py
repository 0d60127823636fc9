"""The CloudEvents 1.0 structured-mode JSON envelope every message value travels in."""

from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from uuid import uuid4

from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import to_json

Text = Annotated[str, Field(min_length=1, max_length=256)]

# The Kafka binding's structured mode: this content-type, the whole envelope as the value, and no `ce_*`
# headers (they would mean binary mode to a reader).
STRUCTURED_CONTENT_TYPE = "application/cloudevents+json; charset=UTF-8"
# Our own header on what the relays publish: the envelope's type, so that a consumer passes over the event
# types it does not read without decoding their JSON.
TYPE_HEADER = "orderflow.type"


class Envelope(BaseModel):
    """One message. `id` is unique per message: consumers de-duplicate on it."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    specversion: Literal["1.0"]
    id: Text
    source: Text
    type: Annotated[str, Field(min_length=1, max_length=100)]
    time: datetime | None = None
    subject: Text | None = None
    datacontenttype: Literal["application/json"] = "application/json"
    correlationid: Text | None = None
    causationid: Text | None = None
    # The CloudEvents distributed-tracing extension: the W3C trace context of what sent the message, so that
    # one trace runs from a command through every service it reaches.
    traceparent: Text | None = None
    data: dict[str, Any]

    @classmethod
    def wrap(
        cls,
        message: BaseModel,
        *,
        source: str,
        subject: str | None = None,
        id: str | None = None,
        correlationid: str | None = None,
        causationid: str | None = None,
        time: datetime | None = None,
        traceparent: str | None = None,
    ) -> "Envelope":
        """Put a command or event model into an envelope; its class name is the CloudEvents type."""
        return cls(
            specversion="1.0",
            id=id or str(uuid4()),
            source=source,
            type=type(message).__name__,
            time=time or datetime.now(UTC),
            subject=subject,
            correlationid=correlationid,
            causationid=causationid,
            traceparent=traceparent,
            data=message.model_dump(mode="json"),
        )

    def to_bytes(self) -> bytes:
        return structured_json(id=self.id, source=self.source, type=self.type, time=self.time, subject=self.subject,
                               correlationid=self.correlationid, causationid=self.causationid,
                               traceparent=self.traceparent, data=to_json(self.data))


def structured_json(*, id: str, source: str, type: str, data: bytes, time: datetime | None = None,
                    subject: str | None = None, correlationid: str | None = None,
                    causationid: str | None = None, traceparent: str | None = None) -> bytes:
    """The structured-mode value of one envelope around `data`, a JSON object already serialised: the relay
    splices the event data it stored straight in, without parsing it again."""
    head = {"specversion": "1.0", "id": id, "source": source, "type": type, "time": time, "subject": subject,
            "datacontenttype": "application/json", "correlationid": correlationid, "causationid": causationid,
            "traceparent": traceparent}
    return to_json({key: value for key, value in head.items() if value is not None})[:-1] + b',"data":' + data + b"}"
