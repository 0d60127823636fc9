"""Traces across the services: the W3C trace context that travels with each message and is stored with
each event, and the OpenTelemetry SDK, set up only when OTEL_EXPORTER_OTLP_ENDPOINT is set."""

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

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
