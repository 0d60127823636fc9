"""Product changes through the public topics: a new lead time moves ETAs; a discontinued product takes
no new backorders, and the waiting ones that expected stock cannot fill are cancelled with a refund."""

from datetime import UTC, datetime, timedelta

from contracts.commands import DiscontinueProduct, ExpectReplenishment, OrderLine, PlaceOrder, RegisterProduct, UpdateProduct
from contracts.topics import INVENTORY_COMMANDS, INVENTORY_EVENTS, ORDERS_COMMANDS, ORDERS_EVENTS
from tests.support import eventually, only, unique


async def backorder(stack, sku: str, quantity: int, email: str = "p@example.com") -> str:
    order_id = unique("ord")
    await stack.bus.send(ORDERS_COMMANDS, PlaceOrder(
        order_id=order_id, customer_id="c", customer_email=email, currency="EUR",
        lines=[OrderLine(sku=sku, quantity=quantity, unit_price="5.00")]), order_id)
    await stack.bus.wait_for(ORDERS_EVENTS, "OrderBackordered", order_id=order_id)
    return order_id


async def test_discontinuing_cancels_with_a_refund_only_the_backorders_expected_stock_cannot_fill(stack):
    sku, email = unique("sku"), f"{unique('c')}@example.com"
    await stack.bus.send(INVENTORY_COMMANDS, RegisterProduct(sku=sku, name="Old Radio", lead_time_days=10), sku)
    await stack.bus.send(INVENTORY_COMMANDS, ExpectReplenishment(
        po_id=unique("po"), sku=sku, quantity=2, expected_on=datetime.now(UTC).date() + timedelta(days=3)), sku)
    await stack.bus.wait_for(INVENTORY_EVENTS, "ReplenishmentExpected", sku=sku)
    covered = await backorder(stack, sku, 2)
    stranded = await backorder(stack, sku, 1, email)

    await stack.bus.send(INVENTORY_COMMANDS, DiscontinueProduct(sku=sku, reason="no longer made"), sku)

    cancelled = (await stack.bus.wait_for(ORDERS_EVENTS, "OrderCancelled", order_id=stranded))[0].data
    assert cancelled["reason"] == "Old Radio is discontinued: no longer made"
    assert cancelled["refund_amount"] == "5.00" and cancelled["whole_order"]
    mail = await eventually(lambda: only([m for m in stack.mails_to(email) if "cancellation" in m["Subject"]]))
    assert "discontinued" in mail.get_content()
    assert not stack.bus.events(ORDERS_EVENTS, "OrderCancelled", order_id=covered)
    assert (await stack.get("order", f"/orders/{covered}")).json()["status"] == "backordered"

    refused = unique("ord")
    await stack.bus.send(ORDERS_COMMANDS, PlaceOrder(order_id=refused, customer_id="c", customer_email=email,
                                                     lines=[OrderLine(sku=sku, quantity=1)]), refused)
    rejected = (await stack.bus.wait_for(ORDERS_EVENTS, "OrderRejected", order_id=refused))[0].data
    assert rejected["lines"][0]["reason"] == "discontinued"
    shown = (await stack.get("inventory", f"/availability/{sku}")).json()
    assert shown["status"] == "unavailable"


async def test_a_new_lead_time_moves_the_eta_of_waiting_backorders(stack):
    sku = unique("sku")
    await stack.bus.send(INVENTORY_COMMANDS, RegisterProduct(sku=sku, name="Fan", lead_time_days=10), sku)
    await stack.bus.wait_for(INVENTORY_EVENTS, "ProductRegistered", sku=sku)
    order_id = await backorder(stack, sku, 1)

    await stack.bus.send(INVENTORY_COMMANDS, UpdateProduct(sku=sku, lead_time_days=25), sku)

    moved = (await stack.bus.wait_for(INVENTORY_EVENTS, "BackorderEtaChanged", order_id=order_id))[0].data
    assert moved["estimated_ship_date"] == (datetime.now(UTC).date() + timedelta(days=25)).isoformat()
    await stack.bus.wait_for(INVENTORY_EVENTS, "ProductUpdated", sku=sku)


async def test_updating_an_unknown_product_is_dead_lettered_with_the_reason(stack):
    sku = unique("ghost")
    await stack.bus.send(INVENTORY_COMMANDS, UpdateProduct(sku=sku, lead_time_days=3), sku)
    dead = await eventually(lambda: only([d for d in stack.bus.events("inventory.commands.dlq") if d.key == sku.encode()]))
    assert "no such product" in dead.headers["dlq.error"]
