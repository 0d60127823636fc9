"""Shipping closes the loop: the warehouse ships what is reserved or filled, stock leaves the warehouse, the
order moves to shipped, and the customer gets one mail per shipment with the tracking number."""

from contracts.commands import CancelOrder, OrderLine, PlaceOrder, ReceiveStock, RegisterProduct, ShipOrder
from contracts.topics import INVENTORY_COMMANDS, INVENTORY_EVENTS, NOTIFICATIONS_EVENTS, ORDERS_COMMANDS, ORDERS_EVENTS
from tests.support import eventually, exactly, only, unique


async def stocked(stack, sku: str, quantity: int) -> None:
    await stack.bus.send(INVENTORY_COMMANDS, RegisterProduct(sku=sku, name=f"Kettle {sku}", lead_time_days=5), sku)
    await stack.bus.send(INVENTORY_COMMANDS, ReceiveStock(receipt_id=unique("r"), sku=sku, quantity=quantity), sku)
    await stack.bus.wait_for(INVENTORY_EVENTS, "StockReceived", sku=sku)


async def test_a_partly_backordered_order_ships_in_two_shipments_each_told_once_with_its_tracking_number(stack):
    sku, order_id, email = unique("sku"), unique("ord"), f"{unique('c')}@example.com"
    await stocked(stack, sku, 2)
    await stack.bus.send(ORDERS_COMMANDS, PlaceOrder(order_id=order_id, customer_id="c", customer_email=email,
                                                     lines=[OrderLine(sku=sku, quantity=3)]), order_id)
    await stack.bus.wait_for(ORDERS_EVENTS, "OrderBackordered", order_id=order_id)

    first = ShipOrder(order_id=order_id, shipment_id=unique("shp"), carrier="DHL", tracking_number="JD0001")
    for _ in range(2):  # the warehouse sends it twice: one shipment
        await stack.bus.send(ORDERS_COMMANDS, first, order_id)
    shipped = (await stack.bus.wait_for(ORDERS_EVENTS, "OrderShipped", order_id=order_id))[0].data
    assert shipped["lines"] == [{"sku": sku, "quantity": 2}] and not shipped["complete"]
    assert (await stack.bus.wait_for(INVENTORY_EVENTS, "StockShipped", order_id=order_id))[0].data["quantity"] == 2
    availability = await eventually(lambda: _availability(stack, sku, on_hand=0))
    assert availability["reserved"] == 0 and availability["backordered"] == 1

    await stack.bus.send(INVENTORY_COMMANDS, ReceiveStock(receipt_id=unique("r"), sku=sku, quantity=1), sku)
    await stack.bus.wait_for(ORDERS_EVENTS, "OrderReadyToShip", order_id=order_id)
    refused = CancelOrder(order_id=order_id, reason="too late?")
    await stack.bus.send(ORDERS_COMMANDS, refused, order_id)
    assert "shipped" in (await stack.bus.wait_for(ORDERS_EVENTS, "CancellationRefused", order_id=order_id))[0].data["reason"]

    await stack.bus.send(ORDERS_COMMANDS, ShipOrder(order_id=order_id, shipment_id=unique("shp"), carrier="UPS",
                                                    tracking_number="1Z999"), order_id)
    last = await stack.bus.wait_for(ORDERS_EVENTS, "OrderShipped", count=2, order_id=order_id)
    assert last[1].data["complete"]
    order = (await stack.get("order", f"/orders/{order_id}")).json()
    assert order["status"] == "shipped" and order["lines"][0]["shipped"] == 3

    await stack.bus.wait_for(NOTIFICATIONS_EVENTS, "NotificationSent", count=2, order_id=order_id, kind="order_shipped",
                             channel="email")
    mails = await eventually(lambda: exactly([m for m in stack.mails_to(email) if "shipped" in m["Subject"]], 2))
    # One mail per shipment; several dispatchers send them, so in either order.
    contents = sorted((m.get_content() for m in mails), key=lambda text: "1Z999" in text)
    assert "JD0001" in contents[0] and "DHL" in contents[0]
    assert "1Z999" in contents[1] and "UPS" in contents[1]
    await eventually(lambda: _availability(stack, sku, on_hand=0))


async def test_shipping_what_is_not_reserved_is_refused_with_the_reason(stack):
    sku, order_id = unique("sku"), unique("ord")
    await stocked(stack, sku, 1)
    await stack.bus.send(ORDERS_COMMANDS, PlaceOrder(order_id=order_id, customer_id="c", customer_email="s@example.com",
                                                     lines=[OrderLine(sku=sku, quantity=1)]), order_id)
    await stack.bus.wait_for(ORDERS_EVENTS, "OrderConfirmed", order_id=order_id)
    shipment = unique("shp")
    await stack.bus.send(ORDERS_COMMANDS, ShipOrder(order_id=order_id, shipment_id=shipment,
                                                    lines=[{"sku": sku, "quantity": 5}]), order_id)
    refused = only(await stack.bus.wait_for(ORDERS_EVENTS, "ShipmentRefused", order_id=order_id))
    assert refused.data["shipment_id"] == shipment and "5 x" in refused.data["reason"]
    assert not stack.bus.events(INVENTORY_EVENTS, "StockShipped", order_id=order_id)


async def _availability(stack, sku: str, on_hand: int) -> dict:
    availability = (await stack.get("inventory", f"/availability/{sku}")).json()
    assert availability["on_hand"] == on_hand, availability
    return availability
