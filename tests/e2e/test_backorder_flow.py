"""The core backorder flow through the public topics, down to the emails the customer receives."""

import json
from datetime import UTC, date, datetime, timedelta

from contracts.commands import ExpectReplenishment, OrderLine, PlaceOrder, ReceiveStock, RegisterProduct, ShipOrder
from contracts.topics import INVENTORY_COMMANDS, INVENTORY_EVENTS, NOTIFICATIONS_EVENTS, ORDERS_COMMANDS, ORDERS_EVENTS
from services.runtime.docs import DOCS
from tests.support import eventually, exactly, only, unique


async def register(stack, sku: str, stock: int = 0, lead_time_days: int = 10) -> None:
    await stack.bus.send(INVENTORY_COMMANDS, RegisterProduct(sku=sku, name=f"Product {sku}", lead_time_days=lead_time_days), sku)
    if stock:
        await stack.bus.send(INVENTORY_COMMANDS, ReceiveStock(receipt_id=unique("r"), sku=sku, quantity=stock), sku)
        await stack.bus.wait_for(INVENTORY_EVENTS, "StockReceived", sku=sku)
    else:
        await stack.bus.wait_for(INVENTORY_EVENTS, "ProductRegistered", sku=sku)


def place(order_id: str, sku: str, quantity: int, email: str, **kw) -> PlaceOrder:
    return PlaceOrder(order_id=order_id, customer_id="cust-1", customer_email=email,
                      lines=[OrderLine(sku=sku, quantity=quantity, unit_price="9.90")], currency="EUR", **kw)


async def test_in_stock_order_is_reserved_confirmed_and_the_customer_told(stack):
    sku, order_id, email = unique("sku"), unique("ord"), f"{unique('c')}@example.com"
    await register(stack, sku, stock=10)

    await stack.bus.send(ORDERS_COMMANDS, place(order_id, sku, 4, email), order_id)

    reserved = await stack.bus.wait_for(INVENTORY_EVENTS, "StockReserved", order_id=order_id)
    assert reserved[0].data == {"order_id": order_id, "sku": sku, "quantity": 4}
    assert reserved[0].key == sku.encode()
    confirmed = await stack.bus.wait_for(ORDERS_EVENTS, "OrderConfirmed", order_id=order_id)
    envelope = confirmed[0].envelope
    assert envelope["specversion"] == "1.0" and envelope["correlationid"] and envelope["causationid"]
    sent = await stack.bus.wait_for(NOTIFICATIONS_EVENTS, "NotificationSent", order_id=order_id)
    assert sent[0].data["kind"] == "order_confirmed" and sent[0].data["channel"] == "email"
    mails = await eventually(lambda: only(stack.mails_to(email)))
    assert f"Order {order_id} is confirmed" in mails["Subject"]

    order = (await stack.get("order", f"/orders/{order_id}")).json()
    assert order["status"] == "confirmed"
    assert order["lines"] == [{"sku": sku, "quantity": 4, "unit_price": "9.90", "reserved": 4, "backordered": 0,
                               "fulfilled": 0, "shipped": 0, "cancelled": 0, "shipping": "standard", "estimated_ship_date": None,
                               "rejection": None}]
    availability = (await stack.get("inventory", f"/availability/{sku}")).json()
    assert (availability["status"], availability["available"]) == ("in_stock", 6)


async def test_short_order_is_partly_backordered_with_an_eta_then_filled_and_shipped_expedited(stack):
    sku, order_id, email = unique("sku"), unique("ord"), f"{unique('c')}@example.com"
    await register(stack, sku, stock=3, lead_time_days=10)
    today = datetime.now(UTC).date()

    await stack.bus.send(ORDERS_COMMANDS, place(order_id, sku, 5, email), order_id)

    backorder = (await stack.bus.wait_for(INVENTORY_EVENTS, "BackorderCreated", order_id=order_id))[0].data
    assert backorder["quantity"] == 2
    assert date.fromisoformat(backorder["estimated_ship_date"]) in (today + timedelta(days=10), today + timedelta(days=11))
    await stack.bus.wait_for(INVENTORY_EVENTS, "StockReserved", order_id=order_id, quantity=3)
    await stack.bus.wait_for(ORDERS_EVENTS, "OrderBackordered", order_id=order_id)
    backorder_mail = await eventually(lambda: only(stack.mails_to(email)))
    assert "backordered" in backorder_mail["Subject"]
    assert backorder["estimated_ship_date"] in backorder_mail.get_content()

    order = (await stack.get("order", f"/orders/{order_id}")).json()
    assert order["status"] == "backordered"
    line = order["lines"][0]
    assert (line["reserved"], line["backordered"], line["estimated_ship_date"]) == (3, 2, backorder["estimated_ship_date"])

    await stack.bus.send(INVENTORY_COMMANDS, ReceiveStock(receipt_id=unique("r"), sku=sku, quantity=2), sku)

    fulfilled = (await stack.bus.wait_for(INVENTORY_EVENTS, "BackorderFulfilled", order_id=order_id))[0].data
    assert (fulfilled["quantity"], fulfilled["remaining"], fulfilled["expedited"]) == (2, 0, True)
    await stack.bus.wait_for(ORDERS_EVENTS, "OrderReadyToShip", order_id=order_id)
    await stack.bus.wait_for(NOTIFICATIONS_EVENTS, "NotificationSent", order_id=order_id, kind="backorder_fulfilled")
    mails = await eventually(lambda: exactly(stack.mails_to(email), 2))
    assert "ships now, expedited" in mails[1]["Subject"]
    order = (await stack.get("order", f"/orders/{order_id}")).json()
    assert order["status"] == "ready_to_ship"
    assert (order["lines"][0]["fulfilled"], order["lines"][0]["backordered"]) == (2, 0)
    assert order["lines"][0]["shipping"] == "expedited"


async def test_short_receipt_fills_three_waiting_orders_oldest_first(stack):
    sku = unique("sku")
    await register(stack, sku)
    orders = [unique("ord") for _ in range(3)]
    for order_id in orders:  # one after the other: the queue order is the placement order
        await stack.bus.send(ORDERS_COMMANDS, place(order_id, sku, 4, f"{order_id}@example.com"), order_id)
        await stack.bus.wait_for(INVENTORY_EVENTS, "BackorderCreated", order_id=order_id)

    await stack.bus.send(INVENTORY_COMMANDS, ReceiveStock(receipt_id=unique("r"), sku=sku, quantity=6), sku)

    fills = await stack.bus.wait_for(INVENTORY_EVENTS, "BackorderFulfilled", count=2, sku=sku)
    assert [(f.data["order_id"], f.data["quantity"], f.data["remaining"]) for f in fills] == [
        (orders[0], 4, 0), (orders[1], 2, 2)]
    availability = (await stack.get("inventory", f"/availability/{sku}")).json()
    assert (availability["available"], availability["backordered"]) == (0, 6)
    assert (await stack.get("order", f"/orders/{orders[2]}")).json()["lines"][0]["backordered"] == 4


async def test_backorder_eta_is_the_first_replenishment_not_promised_to_earlier_orders(stack):
    sku = unique("sku")
    await register(stack, sku, lead_time_days=30)
    soon = datetime.now(UTC).date() + timedelta(days=5)
    await stack.bus.send(INVENTORY_COMMANDS, ExpectReplenishment(po_id=unique("po"), sku=sku, quantity=3, expected_on=soon), sku)
    await stack.bus.wait_for(INVENTORY_EVENTS, "ReplenishmentExpected", sku=sku)
    first, second = unique("ord"), unique("ord")
    await stack.bus.send(ORDERS_COMMANDS, place(first, sku, 3, "a@example.com"), first)
    await stack.bus.wait_for(INVENTORY_EVENTS, "BackorderCreated", order_id=first)
    await stack.bus.send(ORDERS_COMMANDS, place(second, sku, 1, "b@example.com"), second)

    created = {r.data["order_id"]: r.data["estimated_ship_date"]
               for r in await stack.bus.wait_for(INVENTORY_EVENTS, "BackorderCreated", count=2, sku=sku)}
    assert created[first] == soon.isoformat()
    assert date.fromisoformat(created[second]) >= soon + timedelta(days=25)  # lead time: the PO is promised


async def test_a_line_refused_beside_a_backorder_is_mailed_once_through_the_fill_and_the_shipment(stack):
    sku, unknown, order_id, email = unique("sku"), unique("nosuch"), unique("ord"), f"{unique('c')}@example.com"
    await register(stack, sku, stock=1)
    await stack.bus.send(ORDERS_COMMANDS, PlaceOrder(order_id=order_id, customer_id="c", customer_email=email, lines=[
        OrderLine(sku=sku, quantity=3), OrderLine(sku=unknown, quantity=1)]), order_id)

    status = (await stack.bus.wait_for(ORDERS_EVENTS, "OrderBackordered", order_id=order_id))[0].data
    assert [line["sku"] for line in status["rejected_lines"]] == [unknown]
    refused = await eventually(lambda: only([m for m in stack.mails_to(email) if "could not accept" in m["Subject"]]))
    assert f"  - {unknown}: {unknown} is not a product we sell" in refused.get_content()

    # The fill's status carries the refusal again (OrderReadyToShip): told already. Its mails go out before the
    # shipment's, queued later.
    await stack.bus.send(INVENTORY_COMMANDS, ReceiveStock(receipt_id=unique("r"), sku=sku, quantity=2), sku)
    assert (await stack.bus.wait_for(ORDERS_EVENTS, "OrderReadyToShip", order_id=order_id))[0].data["rejected_lines"]
    await stack.bus.send(ORDERS_COMMANDS, ShipOrder(order_id=order_id, shipment_id=unique("shp")), order_id)

    def told_once() -> None:
        sent = {r.data["notification_id"]: r.data["kind"]  # on every channel the stack has
                for r in stack.bus.events(NOTIFICATIONS_EVENTS, "NotificationSent", order_id=order_id)}
        assert sorted(sent.values()) == ["backorder_created", "backorder_fulfilled", "lines_refused", "order_shipped"]

    await eventually(told_once)
    assert len([m for m in stack.mails_to(email) if "could not accept" in m["Subject"]]) == 1


async def test_line_that_cannot_be_ordered_is_rejected_with_a_reason(stack):
    sku, order_id = unique("sku"), unique("ord")
    await stack.bus.send(INVENTORY_COMMANDS, RegisterProduct(sku=sku, name="Rare", backorderable=False, lead_time_days=3), sku)
    await stack.bus.wait_for(INVENTORY_EVENTS, "ProductRegistered", sku=sku)

    await stack.bus.send(ORDERS_COMMANDS, place(order_id, sku, 1, "x@example.com"), order_id)

    rejected = (await stack.bus.wait_for(ORDERS_EVENTS, "OrderRejected", order_id=order_id))[0].data
    assert rejected["lines"][0]["reason"] == "not_backorderable"
    assert (await stack.get("order", f"/orders/{order_id}")).json()["status"] == "rejected"




async def test_availability_changes_are_published_and_the_backorder_mail_offers_alternatives_in_stock(stack):
    sku, in_stock, sold_out = unique("sku"), unique("alt"), unique("alt")
    await register(stack, in_stock, stock=4)
    await register(stack, sold_out)
    await stack.bus.send(INVENTORY_COMMANDS, RegisterProduct(
        sku=sku, name="Blue Kettle", lead_time_days=12, alternatives=[sold_out, in_stock]), sku)
    shown = (await stack.bus.wait_for(INVENTORY_EVENTS, "AvailabilityChanged", sku=sku))[0].data
    assert shown["status"] == "backorderable" and shown["estimated_ship_date"]
    assert (await stack.bus.wait_for(INVENTORY_EVENTS, "AvailabilityChanged", sku=in_stock))[-1].data == {
        "sku": in_stock, "status": "in_stock", "available": 4, "estimated_ship_date": None}
    order_id, email = unique("ord"), f"{unique('c')}@example.com"

    await stack.bus.send(ORDERS_COMMANDS, place(order_id, sku, 1, email), order_id)

    mail = await eventually(lambda: only(stack.mails_to(email)))
    assert "Blue Kettle is backordered" in mail["Subject"]
    text = mail.get_content()
    assert f"Product {in_stock} ({in_stock})" in text and sold_out not in text
    availability = (await stack.get("inventory", f"/availability/{sku}")).json()
    assert availability["status"] == "backorderable" and availability["estimated_ship_date"] == shown["estimated_ship_date"]


async def test_each_service_describes_itself_at_docs(stack):
    for service in ("order", "inventory", "notification"):
        for name in ("asyncapi", "openapi"):
            served = (await stack.get(service, f"/docs/{name}.json")).json()
            assert served == json.loads((DOCS / f"{service}.{name}.json").read_text())
        page = await stack.get(service, "/docs")
        assert page.status_code == 200 and f"orderflow {service} service" in page.text
    assert "orders.commands.dlq" in (await stack.get("order", "/docs")).text
    missing = await stack.get("order", f"/orders/{unique('nope')}")
    assert missing.status_code == 404 and missing.json() == {"error": "order not found"}
