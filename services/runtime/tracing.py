"""Traces across the services: the W3C trace context that travels with each message and is stored with
each event, and the OpenTelemetry SDK, set up only when OTEL_EXPORTER_OTLP_ENDPOINT is set."""

import contextlib
import dataclasses
from collections.abc import Iterator

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from services.runtime.messages import Message

# The API's proxy: a no-op until a TracerProvider is set, then that provider's tracer.
tracer = trace.get_tracer("orderflow")
_propagator = TraceContextTextMapPropagator()


def configure(service: str, endpoint: str | None) -> None:
    """Export spans over OTLP/HTTP when an endpoint is given; without one the API's no-op tracer stays, which
    records nothing and costs next to nothing. The exporter reads its endpoint, headers and timeouts from the
    standard OTEL_EXPORTER_OTLP_* variables itself."""
    if not endpoint:
        return
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": f"orderflow-{service}"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))  # flushed at exit by the provider
    trace.set_tracer_provider(provider)


def parent(traceparent: str | None) -> Context | None:
    """The context to start a span in: the trace `traceparent` names, or None (the current one) without it.
    One that cannot be read starts a new trace, as W3C asks; it never fails a message."""
    return _propagator.extract({"traceparent": traceparent}) if traceparent else None


def traceparent(span: Span) -> str | None:
    """The W3C traceparent of `span`. With tracing off, the no-op tracer hands back the parent's context as
    the span, so what a service stores and sends on is the traceparent it was given: the trace still runs
    through a service that does not trace."""
    carrier: dict[str, str] = {}
    _propagator.inject(carrier, context=trace.set_span_in_context(span))
    return carrier.get("traceparent")


@contextlib.contextmanager
def handling(service: str, messages: list[Message]) -> Iterator[list[Message]]:
    """One span per message over its transaction, a child of the trace the message came with. The messages
    handed on carry their span's traceparent: the events they cause are stored, and sent on, with it."""
    spans = [tracer.start_span(
        f"{service} handle {m.type}", parent(m.envelope.traceparent), SpanKind.CONSUMER,
        {"messaging.system": "kafka", "messaging.destination.name": m.topic, "messaging.message.id": m.envelope.id,
         "orderflow.service": service}) for m in messages]
    traced = []
    for message, span in zip(messages, spans, strict=True):
        carried = traceparent(span)
        if carried != message.envelope.traceparent:
            envelope = message.envelope.model_copy(update={"traceparent": carried})
            message = dataclasses.replace(message, envelope=envelope)
        traced.append(message)
    try:
        yield traced
    except BaseException as error:
        for span in spans:  # the batch failed: which message did is for the halving to find out
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, repr(error)))
        raise
    finally:
        for span in spans:
            span.end()
