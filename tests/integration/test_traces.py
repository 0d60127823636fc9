"""Traces on real PostgreSQL: a PlaceOrder's trace context runs through order, inventory and notification, as
the relays publish it, to the span of the mail it ends in, and is stored with every event on the way."""

from datetime import date
from functools import partial

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from contracts.commands import OrderLine, PlaceOrder, ReceiveStock, RegisterProduct
from contracts.envelope import Envelope
from contracts.topics import INVENTORY_COMMANDS, ORDERS_COMMANDS
from services.inventory import app as inventory_app
from services.inventory import handlers as inventory
from services.notification import app as notification_app
from services.notification import handlers as notification
from services.notification.dispatch import Dispatcher
from services.order import app as order_app
from services.order import handlers as order
from services.runtime import tracing
from services.runtime.consumer import BatchConsumer
from services.runtime.relay import OutboxRelay
from tests.integration.helpers import Published, record
from tests.integration.test_notification_service import Channel

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


@pytest.fixture
def spans(monkeypatch) -> InMemorySpanExporter:
    """An SDK tracer whose spans are kept in memory, in place of the no-op one; the global provider is left alone."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(tracing, "tracer", provider.get_tracer("orderflow"))
    return exporter


def consumer(service: str, pool, app, handle, inbox_key) -> BatchConsumer:
    return BatchConsumer(service, pool, app.SERVICE.subscriptions, handle, inbox_key, Published(), lambda: None,
                         message_attempts=3)


async def published(pool, app) -> list:
    """What the service's relay would publish now, as the records a consumer receives, headers and all."""
    sent = Published()
    service = app.SERVICE
    async with pool.acquire() as conn:
        await OutboxRelay("", service.name, service.events_topic, service.key_field, sent)._publish_pending(conn)
    return [record(topic, value, headers=[(k, v.encode()) for k, v in headers.items()])
            for topic, value, headers in sent.sent]


def command(topic: str, body, **envelope) -> object:
    return record(topic, Envelope.wrap(body, source="tests", **envelope).to_bytes())


async def test_one_trace_runs_from_place_order_through_inventory_to_the_mail(pools, spans):
    order_pool, inventory_pool, notification_pool = [await pools(s) for s in ("order", "inventory", "notification")]
    orders = consumer("order", order_pool, order_app, partial(order.handle, goodwill_percent=10), order.inbox_key)
    stock = consumer("inventory", inventory_pool, inventory_app, partial(inventory.handle, today=date.today()),
                     inventory.inbox_key)
    notifications = consumer("notification", notification_pool, notification_app,
                             partial(notification.handle, eta_window_s=0), notification.inbox_key)
    email = Channel("email")
    await stock.process([command(INVENTORY_COMMANDS, RegisterProduct(sku="LAMP", name="Desk Lamp", lead_time_days=5)),
                         command(INVENTORY_COMMANDS, ReceiveStock(receipt_id="r1", sku="LAMP", quantity=5))])
    await published(inventory_pool, inventory_app)  # a trace of their own: not this one

    await orders.process([command(ORDERS_COMMANDS, PlaceOrder(order_id="o1", customer_id="c1",
                                                              customer_email="c1@example.com",
                                                              lines=[OrderLine(sku="LAMP", quantity=2)]),
                                  traceparent=TRACEPARENT)])
    placed = await published(order_pool, order_app)
    await stock.process(placed)
    reserved = await published(inventory_pool, inventory_app)
    await orders.process(reserved)
    confirmed = await published(order_pool, order_app)
    await notifications.process(placed + reserved + confirmed)
    while await Dispatcher(notification_pool, email, on_recorded=lambda: None).dispatch_once():
        pass

    assert [m.kind for m in email.sent] == ["order_confirmed"]
    assert all(dict(r.headers)["traceparent"].decode().split("-")[1] == TRACE_ID for r in placed + reserved + confirmed)
    finished = spans.get_finished_spans()
    in_trace = {(s.attributes["orderflow.service"], s.name) for s in finished if f"{s.context.trace_id:032x}" == TRACE_ID}
    assert {("order", "order handle PlaceOrder"), ("inventory", "inventory handle OrderPlaced"),
            ("order", "order handle StockReserved"), ("notification", "notification handle OrderConfirmed"),
            ("notification", "notification send order_confirmed by email")} <= in_trace
    span = {s.name: s for s in finished if f"{s.context.trace_id:032x}" == TRACE_ID}
    chain = ["order handle PlaceOrder", "inventory handle OrderPlaced", "order handle StockReserved",
             "notification handle OrderConfirmed", "notification send order_confirmed by email"]
    assert span[chain[0]].parent.span_id == int(TRACEPARENT.split("-")[2], 16)
    for cause, effect in zip(chain, chain[1:]):  # each a child of the span that handled its cause
        assert span[effect].parent.span_id == span[cause].context.span_id, effect
    for pool, types in ((order_pool, ["OrderConfirmed", "OrderPlaced"]), (inventory_pool, ["StockReserved"]),
                        (notification_pool, ["NotificationSent"])):
        rows = await pool.fetch("SELECT type, traceparent FROM events WHERE type = ANY($1) ORDER BY type", types)
        assert [r["type"] for r in rows] == types
        assert all(r["traceparent"].split("-")[1] == TRACE_ID for r in rows), rows
