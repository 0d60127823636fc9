"""Stock counts through the public topics: a count below what is reserved sends the newest reservations
back to backorder and tells their customers; no reservation points at stock that is not there."""

from contracts.commands import AdjustStock, OrderLine, PlaceOrder, ReceiveStock, RegisterProduct
from contracts.topics import INVENTORY_COMMANDS, INVENTORY_EVENTS, NOTIFICATIONS_EVENTS, ORDERS_COMMANDS, ORDERS_EVENTS
from tests.support import eventually, only, unique


async def test_a_count_below_what_is_reserved_backorders_the_newest_reservations_and_tells_the_customer(stack):
    sku = unique("sku")
    await stack.bus.send(INVENTORY_COMMANDS, RegisterProduct(sku=sku, name="Chair", lead_time_days=6), sku)
    await stack.bus.send(INVENTORY_COMMANDS, ReceiveStock(receipt_id=unique("r"), sku=sku, quantity=4), sku)
    await stack.bus.wait_for(INVENTORY_EVENTS, "StockReceived", sku=sku)
    older, newer = unique("ord"), unique("ord")
    for order_id in (older, newer):
        await stack.bus.send(ORDERS_COMMANDS, PlaceOrder(order_id=order_id, customer_id="c",
                                                         customer_email=f"{order_id}@example.com",
                                                         lines=[OrderLine(sku=sku, quantity=2)]), order_id)
        await stack.bus.wait_for(ORDERS_EVENTS, "OrderConfirmed", order_id=order_id)

    await stack.bus.send(INVENTORY_COMMANDS, AdjustStock(sku=sku, counted_quantity=3, reason="cycle count"), sku)

    revoked = (await stack.bus.wait_for(INVENTORY_EVENTS, "ReservationRevoked", sku=sku))
    assert [(r.data["order_id"], r.data["quantity"]) for r in revoked] == [(newer, 1)]
    await stack.bus.wait_for(ORDERS_EVENTS, "OrderBackordered", order_id=newer)
    await stack.bus.wait_for(NOTIFICATIONS_EVENTS, "NotificationSent", order_id=newer, kind="reservation_revoked")
    mail = await eventually(lambda: only([m for m in stack.mails_to(f"{newer}@example.com") if "stock count" in m["Subject"]]))
    assert revoked[0].data["estimated_ship_date"] in mail.get_content()
    line = (await stack.get("order", f"/orders/{newer}")).json()["lines"][0]
    assert (line["reserved"], line["backordered"]) == (1, 1)
    assert (await stack.get("order", f"/orders/{older}")).json()["status"] == "confirmed"
    availability = (await stack.get("inventory", f"/availability/{sku}")).json()
    assert (availability["on_hand"], availability["reserved"], availability["backordered"]) == (3, 3, 1)

    await stack.bus.send(INVENTORY_COMMANDS, AdjustStock(sku=sku, counted_quantity=4, reason="found one"), sku)

    await stack.bus.wait_for(INVENTORY_EVENTS, "BackorderFulfilled", order_id=newer)
    await stack.bus.wait_for(ORDERS_EVENTS, "OrderReadyToShip", order_id=newer)
