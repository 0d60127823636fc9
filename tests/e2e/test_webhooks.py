"""The webhook channel: every notification is POSTed to the storefront as signed JSON, retried with
backoff when the receiver fails, under one idempotency key, and recorded as sent once."""

from contracts.commands import OrderLine, PlaceOrder, ReceiveStock, RegisterProduct
from contracts.topics import INVENTORY_COMMANDS, INVENTORY_EVENTS, NOTIFICATIONS_EVENTS, ORDERS_COMMANDS
from services.notification.channels import signature
from tests.e2e.conftest import WEBHOOK_SECRET
from tests.support import at_least, eventually, outlast, unique


async def test_notifications_reach_the_webhook_signed_and_a_failed_delivery_is_retried_under_the_same_key(stack):
    sku, order_id = unique("sku"), unique("ord")
    await stack.bus.send(INVENTORY_COMMANDS, RegisterProduct(sku=sku, name="Mug", lead_time_days=2), sku)
    await stack.bus.send(INVENTORY_COMMANDS, ReceiveStock(receipt_id=unique("r"), sku=sku, quantity=3), sku)
    await stack.bus.wait_for(INVENTORY_EVENTS, "StockReceived", sku=sku)

    await stack.bus.send(ORDERS_COMMANDS, PlaceOrder(order_id=order_id, customer_id="c-9", customer_email="m@example.com",
                                                     lines=[OrderLine(sku=sku, quantity=1)]), order_id)

    sent = await stack.bus.wait_for(NOTIFICATIONS_EVENTS, "NotificationSent", order_id=order_id, channel="webhook")
    deliveries = await eventually(lambda: at_least(stack.webhook.deliveries(order_id), 2))
    await outlast(2)  # longer than the next retry's backoff, were the delivery to be retried again
    assert len(stack.bus.events(NOTIFICATIONS_EVENTS, "NotificationSent", order_id=order_id, channel="webhook")) == 1
    first, retry = deliveries[0], deliveries[1]
    assert first[0]["idempotency-key"] == retry[0]["idempotency-key"] == sent[0].data["notification_id"]
    assert first[1] == retry[1]
    payload = retry[1]
    assert (payload["kind"], payload["customer_id"], payload["order_id"]) == ("order_confirmed", "c-9", order_id)
    raw = [body for headers, body in stack.webhook.requests if headers["idempotency-key"] == payload["notification_id"]][0]
    assert retry[0]["x-orderflow-signature"] == signature(WEBHOOK_SECRET, raw)
    assert len(stack.bus.events(NOTIFICATIONS_EVENTS, "NotificationSent", order_id=order_id, channel="email")) == 1
