"""CloudEvents on the wire: commands in either content mode of the Kafka binding, and everything the services
publish read by the official CloudEvents SDK as any reader would."""

from cloudevents.core.bindings.kafka import KafkaMessage, from_kafka
from cloudevents.core.formats.json import JSONFormat

from contracts.commands import OrderLine, PlaceOrder
from contracts.envelope import STRUCTURED_CONTENT_TYPE, TYPE_HEADER, Envelope
from contracts.topics import INVENTORY_EVENTS, NOTIFICATIONS_EVENTS, ORDERS_COMMANDS, ORDERS_EVENTS, dead_letter
from tests.e2e.test_backorder_flow import register
from tests.support import Record, binary_mode, only, unique

EVENT_TOPICS = (ORDERS_EVENTS, INVENTORY_EVENTS, NOTIFICATIONS_EVENTS)


def place(order_id: str, sku: str, email: str) -> PlaceOrder:
    return PlaceOrder(order_id=order_id, customer_id="cust-ce", customer_email=email, currency="EUR",
                      lines=[OrderLine(sku=sku, quantity=2, unit_price="4.50")])


def without(order_id: str, record: Record) -> tuple[str, dict]:
    """An event of one order with that order's id taken out, to compare it with the same event of another."""
    return record.type, {k: v for k, v in record.data.items() if v != order_id}


async def test_a_place_order_in_binary_mode_is_handled_as_the_same_order_in_structured_mode(stack):
    sku = unique("sku")
    await register(stack, sku, stock=10)
    structured, binary = unique("ord"), unique("ord")
    email = f"{unique('c')}@example.com"

    await stack.bus.send(ORDERS_COMMANDS, place(structured, sku, email), structured)
    sent = await stack.bus.send_binary(ORDERS_COMMANDS, place(binary, sku, email), binary, correlationid=unique("corr"))

    for order_id in (structured, binary):
        await stack.bus.wait_for(NOTIFICATIONS_EVENTS, "NotificationSent", order_id=order_id, kind="order_confirmed")
    events = {order_id: [without(order_id, r) for r in stack.bus.events(ORDERS_EVENTS, order_id=order_id)]
              for order_id in (structured, binary)}
    assert [t for t, _ in events[binary]][:1] == ["OrderPlaced"] and "OrderConfirmed" in dict(events[binary])
    assert events[binary] == events[structured]
    placed = only(stack.bus.events(ORDERS_EVENTS, "OrderPlaced", order_id=binary)).envelope
    assert (placed["correlationid"], placed["causationid"]) == (sent.correlationid, sent.id)  # the ce_* headers, read
    orders = [(await stack.get("order", f"/orders/{order_id}")).json() for order_id in (structured, binary)]
    assert orders[0] | {"order_id": binary, "updated_at": None} == orders[1] | {"updated_at": None}


async def test_a_binary_mode_command_without_a_source_is_dead_lettered_as_it_came_with_the_reason(stack):
    sku, order_id = unique("sku"), unique("ord")
    await register(stack, sku, stock=10)
    sourceless = binary_mode(Envelope.wrap(place(order_id, sku, "ce@example.com"), source="tests"))
    headers = {key: value.decode() for key, value in sourceless.headers.items() if key != "ce_source"}

    await stack.bus.send_raw(ORDERS_COMMANDS, sourceless.value, order_id, headers)
    # The same order, sent right, after it on its partition: the partition moved on.
    await stack.bus.send_binary(ORDERS_COMMANDS, place(order_id, sku, "ce@example.com"), order_id)

    await stack.bus.wait_for(ORDERS_EVENTS, "OrderConfirmed", order_id=order_id)
    dead = only([d for d in stack.bus.events(dead_letter(ORDERS_COMMANDS)) if d.key == order_id.encode()])
    assert dead.value == sourceless.value
    assert dead.headers["dlq.error"] == "not a CloudEvents 1.0 event in binary mode: ce_source: Field required"
    assert {key: value for key, value in dead.headers.items() if key.startswith("ce_")} == {
        key: value for key, value in headers.items() if key.startswith("ce_")}
    assert dead.headers["content-type"] == "application/json"
    assert len(stack.bus.events(ORDERS_EVENTS, "OrderPlaced", order_id=order_id)) == 1


async def test_everything_the_services_publish_reads_with_the_cloudevents_sdk_as_its_envelope(stack):
    sku, order_id = unique("sku"), unique("ord")
    await register(stack, sku, stock=1)
    await stack.bus.send(ORDERS_COMMANDS, place(order_id, sku, f"{unique('c')}@example.com"), order_id)
    await stack.bus.wait_for(NOTIFICATIONS_EVENTS, "NotificationSent", order_id=order_id, kind="backorder_created")

    published = [r for r in list(stack.bus.records) if r.topic in EVENT_TOPICS]  # this one's, and the suite's so far
    assert {r.topic for r in published} == set(EVENT_TOPICS)
    for record in published:
        event = from_kafka(KafkaMessage({k: v.encode() for k, v in record.headers.items()}, record.key, record.value),
                           JSONFormat())
        envelope = record.envelope
        assert (event.get_id(), event.get_type(), event.get_source(), event.get_subject()) == (
            envelope["id"], envelope["type"], envelope["source"], envelope["subject"])
        assert event.get_data() == envelope["data"] and event.get_datacontenttype() == "application/json"
        assert event.get_extension("correlationid") == envelope["correlationid"] == record.headers["correlation_id"]
        assert record.headers["content-type"] == STRUCTURED_CONTENT_TYPE
        assert record.headers[TYPE_HEADER] == envelope["type"]
        assert not [key for key in record.headers if key.lower().startswith("ce_")]
