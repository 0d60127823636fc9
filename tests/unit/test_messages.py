"""Reading records in either content mode of the CloudEvents Kafka binding, binary ones made by the official SDK."""

import json
from datetime import UTC, datetime

import pytest
from aiokafka.structs import ConsumerRecord

from contracts.commands import ORDER_COMMANDS, OrderLine, PlaceOrder
from contracts.envelope import STRUCTURED_CONTENT_TYPE, TYPE_HEADER, Envelope
from contracts.events import ORDER_EVENTS
from contracts.topics import ORDERS_COMMANDS, ORDERS_EVENTS
from services.runtime import tracing
from services.runtime.consumer import _skippable
from services.runtime.messages import Subscription, Unhandleable, parse
from tests.support import binary_mode

COMMANDS = Subscription(ORDERS_COMMANDS, ORDER_COMMANDS, strict=True)
PLACE = PlaceOrder(order_id="ord-1", customer_id="c-1", customer_email="c@example.com",
                   lines=[OrderLine(sku="ANVIL", quantity=2, unit_price="9.90")])
STRUCTURED = [("content-type", STRUCTURED_CONTENT_TYPE.encode())]


def binary(envelope: Envelope, **changes: bytes | None) -> tuple[list[tuple[str, bytes]], bytes]:
    """The headers and value the SDK makes of the envelope in binary mode, with headers changed or dropped (None)
    as asked (`content_type` for content-type)."""
    message = binary_mode(envelope)
    changes = {"content-type" if key == "content_type" else key: value for key, value in changes.items()}
    headers = message.headers | changes
    return [(key, value) for key, value in headers.items() if value is not None], message.value


def refusal(value: bytes, headers) -> Unhandleable:
    with pytest.raises(Unhandleable) as refused:
        parse(COMMANDS, value, headers)
    return refused.value


def test_a_command_in_binary_mode_reads_as_the_same_command_in_structured_mode():
    envelope = Envelope.wrap(PLACE, source="storefront-eu", subject="ord-1", correlationid="corr-1",
                             causationid="cart-9", time=datetime(2026, 11, 25, 10, 0, tzinfo=UTC))
    headers, value = binary(envelope)
    assert {"ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time", "ce_subject", "ce_correlationid"} <= {
        key for key, _ in headers} and dict(headers)["content-type"] == b"application/json"

    from_binary = parse(COMMANDS, value, headers)
    from_structured = parse(COMMANDS, envelope.to_bytes(), STRUCTURED)

    assert from_binary.envelope == from_structured.envelope == envelope
    assert from_binary.body == from_structured.body == PLACE


@pytest.mark.parametrize("content_type", [b"application/json; charset=utf-8", b"Application/JSON", None])
def test_binary_mode_data_is_json_with_or_without_a_content_type(content_type):
    envelope = Envelope.wrap(PLACE, source="storefront-eu")
    headers, value = binary(envelope, content_type=content_type)
    assert parse(COMMANDS, value, headers).body == PLACE


def test_binary_mode_without_a_source_is_refused_with_the_header_it_lacks():
    envelope = Envelope.wrap(PLACE, source="storefront-eu")
    headers, value = binary(envelope, ce_source=None)
    assert str(refusal(value, headers)) == "not a CloudEvents 1.0 event in binary mode: ce_source: Field required"


def test_binary_mode_with_invalid_data_is_refused_with_the_field_and_keeps_its_envelope_for_the_dead_letter():
    envelope = Envelope.wrap(PLACE, source="storefront-eu", correlationid="corr-2")
    headers, _ = binary(envelope)
    refused = refusal(b'{"order_id": "ord-1", "customer_id": "c", "customer_email": "c@example.com", '
                      b'"lines": [{"sku": "ANVIL", "quantity": 0}]}', headers)
    assert str(refused).startswith("invalid PlaceOrder: lines.0.quantity:")
    assert refused.envelope.correlationid == "corr-2" and refused.envelope.id == envelope.id


@pytest.mark.parametrize("value, headers, reason", [
    (b"{not json", {}, "not JSON"),
    (b'["a list"]', {}, "not a CloudEvents 1.0 event in binary mode: value: Input should be a valid dictionary"),
    (b"<order/>", {"content_type": b"application/xml"},
     "binary mode with data of content-type 'application/xml': only application/json is read"),
    (b"{}", {"ce_id": b"\xff"}, "the header ce_id is not UTF-8"),
    (b"{}", {"ce_type": b"NoSuchCommand"}, "unknown type 'NoSuchCommand' on orders.commands"),
])
def test_a_binary_mode_record_that_cannot_be_read_is_refused_with_the_reason(value, headers, reason):
    record_headers, _ = binary(Envelope.wrap(PLACE, source="storefront-eu"), **headers)
    assert str(refusal(value, record_headers)).startswith(reason)


def test_a_header_of_binary_mode_twice_is_refused_rather_than_guessed():
    headers, value = binary(Envelope.wrap(PLACE, source="storefront-eu"))
    assert str(refusal(value, headers + [("ce_id", b"another")])) == "binary mode with the header ce_id twice"


def test_the_structured_content_type_wins_over_stray_ce_headers():
    envelope = Envelope.wrap(PLACE, source="storefront-eu")
    headers = STRUCTURED + [("ce_specversion", b"1.0"), ("ce_type", b"CancelOrder")]
    assert parse(COMMANDS, envelope.to_bytes(), headers).envelope == envelope


def test_a_record_without_headers_and_one_our_relays_sent_before_are_read_as_structured_mode():
    envelope = Envelope.wrap(PLACE, source="storefront-eu")
    earlier_relay = [("content-type", b""), ("correlation_id", b"x"), ("ce_type", b"PlaceOrder"),
                     ("ce_id", envelope.id.encode())]
    assert parse(COMMANDS, envelope.to_bytes()).envelope == envelope
    assert parse(COMMANDS, envelope.to_bytes(), earlier_relay).envelope == envelope


def record(headers) -> ConsumerRecord:
    return ConsumerRecord(topic=ORDERS_EVENTS, partition=0, offset=0, timestamp=0, timestamp_type=0, key=None,
                          value=b"", checksum=None, serialized_key_size=0, serialized_value_size=0, headers=headers)


def test_events_a_service_does_not_read_are_told_by_our_type_header_or_by_ce_type_in_binary_mode_only():
    reads = Subscription(ORDERS_EVENTS, {"OrderPlaced": ORDER_EVENTS["OrderPlaced"]}, strict=False)
    assert _skippable(reads, record(STRUCTURED + [(TYPE_HEADER, b"OrderConfirmed")]))
    assert not _skippable(reads, record(STRUCTURED + [(TYPE_HEADER, b"OrderPlaced")]))
    assert _skippable(reads, record([("ce_specversion", b"1.0"), ("ce_type", b"OrderConfirmed")]))
    assert not _skippable(reads, record([("ce_specversion", b"1.0"), ("ce_type", b"OrderPlaced")]))
    # A ce_type beside a structured value is not the binding's: the value is read to be sure.
    assert not _skippable(reads, record(STRUCTURED + [("ce_type", b"OrderConfirmed")]))
    assert not _skippable(reads, record([("ce_type", b"OrderConfirmed")]))


TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
HOP = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_the_trace_context_is_read_from_the_envelope_in_either_mode_and_a_traceparent_header_comes_first():
    envelope = Envelope.wrap(PLACE, source="storefront", traceparent=TRACEPARENT)
    headers, value = binary(envelope)

    assert dict(headers)["ce_traceparent"] == TRACEPARENT.encode()
    assert parse(COMMANDS, value, headers).envelope.traceparent == TRACEPARENT
    assert parse(COMMANDS, envelope.to_bytes(), STRUCTURED).envelope.traceparent == TRACEPARENT
    hop = STRUCTURED + [("traceparent", HOP.encode())]
    assert parse(COMMANDS, envelope.to_bytes(), hop).envelope.traceparent == HOP


def test_with_tracing_off_a_service_sends_on_the_traceparent_it_was_given():
    span = tracing.tracer.start_span("handle", tracing.parent(TRACEPARENT))

    assert tracing.traceparent(span) == TRACEPARENT
    assert tracing.traceparent(tracing.tracer.start_span("handle", tracing.parent(None))) is None


@pytest.mark.parametrize("where", ["data", "key", "attribute", "header"])
def test_text_holding_nul_which_postgresql_cannot_store_is_refused_before_any_handler(where):
    envelope = Envelope.wrap(PLACE, source="tests").model_dump(mode="json")
    headers = STRUCTURED
    match where:
        case "data":
            envelope["data"]["lines"][0]["sku"] = "AN\x00VIL"
        case "key":
            envelope["data"]["lines"][0]["note\x00"] = 1
        case "attribute":
            envelope["subject"] = "ord-1\x00"
    value = Envelope.model_validate(envelope).to_bytes() if where != "key" else json.dumps(envelope).encode()
    if where == "header":
        headers, value = binary(Envelope.wrap(PLACE, source="tests"), ce_source=b"shop\x00")

    with pytest.raises(Unhandleable, match="NUL"):
        parse(COMMANDS, value, headers)
