"""The services' logs hold no password, no secret and no customer's e-mail address: a whole flow on Kafka over
SASL_SSL, with a database password and a webhook secret, and a mail that bounces; then every line of every
service's log is searched for each of them."""

import secrets
from urllib.parse import urlsplit


from contracts.commands import CancelOrder, OrderLine, PlaceOrder, ReceiveStock, RegisterProduct, ShipOrder
from contracts.topics import INVENTORY_COMMANDS, INVENTORY_EVENTS, NOTIFICATIONS_EVENTS, ORDERS_COMMANDS, ORDERS_EVENTS
from infra.mailsink import MailSink
from tests.conftest import free_port
from tests.e2e.conftest import running_stack
from tests.support import at_least, eventually, unique


def place(order_id: str, email: str, sku: str, quantity: int) -> PlaceOrder:
    return PlaceOrder(order_id=order_id, customer_id=unique("cust"), customer_email=email, currency="EUR",
                      lines=[OrderLine(sku=sku, quantity=quantity, unit_price="49.90")])


async def test_no_log_line_holds_a_password_the_webhook_secret_or_a_customers_address(
        sasl_ssl_kafka, database_factory, tmp_path):
    database = database_factory()  # each service logs in with a password of its own
    webhook_secret = secrets.token_urlsafe(18)
    emails = {name: f"{unique(name)}@example.com" for name in ("ann", "bob", "cy", "dee")}
    orders = {name: unique("ord") for name in emails}
    sku = unique("ANVIL")
    mail = MailSink(tmp_path / "mail", port=free_port(), unknown={emails["dee"]})  # her mailbox does not exist
    async with running_stack("sasl-ssl", tmp_path, database, mail=mail, kafka_security=sasl_ssl_kafka.client_security(),
                             WEBHOOK_SECRET=webhook_secret, LOG_LEVEL="debug",
                             **sasl_ssl_kafka.env) as stack:
        bus = stack.bus
        await bus.send(INVENTORY_COMMANDS, RegisterProduct(sku=sku, name="Anvil", lead_time_days=10), sku)
        await bus.send(INVENTORY_COMMANDS, ReceiveStock(receipt_id=unique("rcpt"), sku=sku, quantity=2), sku)
        await bus.wait_for(INVENTORY_EVENTS, "StockReceived", sku=sku)

        # Ann takes the stock; Bob, Cy and Dee wait for more; Cy cancels.
        # (Ann's first: orders on other partitions may be allocated in any order.)
        await bus.send(ORDERS_COMMANDS, place(orders["ann"], emails["ann"], sku, 2), orders["ann"])
        await bus.wait_for(ORDERS_EVENTS, "OrderConfirmed", order_id=orders["ann"])
        for name, quantity in (("bob", 3), ("cy", 1), ("dee", 1)):
            await bus.send(ORDERS_COMMANDS, place(orders[name], emails[name], sku, quantity), orders[name])
        for name in ("bob", "cy", "dee"):
            await bus.wait_for(ORDERS_EVENTS, "OrderBackordered", order_id=orders[name])
        await bus.send(ORDERS_COMMANDS, CancelOrder(order_id=orders["cy"], reason="found it elsewhere"), orders["cy"])
        await bus.wait_for(ORDERS_EVENTS, "RefundIssued", order_id=orders["cy"])

        # Stock arrives for Bob and Dee; Ann's order ships.
        await bus.send(INVENTORY_COMMANDS, ReceiveStock(receipt_id=unique("rcpt"), sku=sku, quantity=4), sku)
        for name in ("bob", "dee"):
            await bus.wait_for(ORDERS_EVENTS, "OrderReadyToShip", order_id=orders[name])
        await bus.send(ORDERS_COMMANDS, ShipOrder(order_id=orders["ann"], shipment_id=unique("shp"), carrier="DHL"),
                       orders["ann"])
        await bus.wait_for(ORDERS_EVENTS, "OrderShipped", order_id=orders["ann"])

        # Mailed (confirmed and shipped; backordered and ready; backordered and cancelled) and sent to the
        # webhook, each after one failed attempt; Dee's mails bounce and are logged as refused.
        for name in ("ann", "bob", "cy"):
            await eventually(lambda: at_least(stack.mails_to(emails[name]), 2))
            await bus.wait_for(NOTIFICATIONS_EVENTS, "NotificationSent", count=2, order_id=orders[name],
                               channel="webhook")
        await eventually(lambda: at_least([line for line in (tmp_path / "notification.log").read_text().splitlines()
                                           if "notification refused" in line and orders["dee"] in line], 2))
        assert stack.mails_to(emails["dee"]) == []

    # The services have stopped: their logs are complete.
    lines = [(log.name, line) for log in sorted(tmp_path.glob("*.log")) for line in log.read_text().splitlines()]
    assert {name for name, _ in lines} == {"order.log", "inventory.log", "notification.log"}
    assert all(any(order_id in line for _, line in lines) for order_id in orders.values())  # they tell of each order
    kept = {f"the {service} service's database password": urlsplit(url).password
            for service, url in database.urls.items()} | {
            "the SASL password": sasl_ssl_kafka.env["KAFKA_SASL_PASSWORD"],
            "the webhook secret": webhook_secret} | {f"{name}'s e-mail address": email for name, email in emails.items()}
    leaks = [f"{what} in {log}: {line[:300]}" for log, line in lines for what, secret in kept.items() if secret in line]
    assert leaks == []
