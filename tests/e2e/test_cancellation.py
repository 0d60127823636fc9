"""Cancellation through the public topics: stock goes back, the queue moves up, a refund is recorded and
confirmed to the customer; what already ships is refused."""

import asyncio
from datetime import UTC, datetime, timedelta

from contracts.commands import CancelOrder, ExpectReplenishment, OrderLine, PlaceOrder, ReceiveStock, RegisterProduct
from contracts.topics import INVENTORY_COMMANDS, INVENTORY_EVENTS, NOTIFICATIONS_EVENTS, ORDERS_COMMANDS, ORDERS_EVENTS
from tests.e2e.test_reliability import sentinel_purchase_order
from tests.support import eventually, only, unique


async def product(stack, sku: str, stock: int = 0) -> None:
    await stack.bus.send(INVENTORY_COMMANDS, RegisterProduct(sku=sku, name="Kettle", lead_time_days=20), sku)
    if stock:
        await stack.bus.send(INVENTORY_COMMANDS, ReceiveStock(receipt_id=unique("r"), sku=sku, quantity=stock), sku)
        await stack.bus.wait_for(INVENTORY_EVENTS, "StockReceived", sku=sku)
    else:
        await stack.bus.wait_for(INVENTORY_EVENTS, "ProductRegistered", sku=sku)


async def place(stack, sku: str, quantity: int, email: str | None = None, price: str = "20.00") -> str:
    order_id = unique("ord")
    await stack.bus.send(ORDERS_COMMANDS, PlaceOrder(
        order_id=order_id, customer_id="c", customer_email=email or f"{order_id}@example.com", currency="EUR",
        lines=[OrderLine(sku=sku, quantity=quantity, unit_price=price)]), order_id)
    await stack.bus.wait_for(ORDERS_EVENTS, "OrderBackordered", order_id=order_id)
    return order_id


async def test_cancelling_a_backorder_refunds_it_and_moves_the_orders_behind_it_up(stack):
    sku, email = unique("sku"), f"{unique('c')}@example.com"
    await product(stack, sku)
    soon = datetime.now(UTC).date() + timedelta(days=3)
    await stack.bus.send(INVENTORY_COMMANDS, ExpectReplenishment(po_id=unique("po"), sku=sku, quantity=2, expected_on=soon), sku)
    await stack.bus.wait_for(INVENTORY_EVENTS, "ReplenishmentExpected", sku=sku)
    first = await place(stack, sku, 2, email)  # takes the purchase order
    second = await place(stack, sku, 2)  # waits the lead time
    assert (await stack.bus.wait_for(INVENTORY_EVENTS, "BackorderCreated", order_id=second))[0].data[
        "estimated_ship_date"] != soon.isoformat()

    await stack.bus.send(ORDERS_COMMANDS, CancelOrder(order_id=first, reason="found it elsewhere"), first)

    cancelled = (await stack.bus.wait_for(ORDERS_EVENTS, "OrderCancelled", order_id=first))[0].data
    assert cancelled["whole_order"] and cancelled["refund_amount"] == "40.00" and cancelled["currency"] == "EUR"
    refund = (await stack.bus.wait_for(ORDERS_EVENTS, "RefundIssued", order_id=first))[0].data
    assert refund["amount"] == "40.00" and refund["lines"] == [{"sku": sku, "quantity": 2}]
    assert (await stack.bus.wait_for(INVENTORY_EVENTS, "BackorderCancelled", order_id=first))[0].data["quantity"] == 2
    moved = (await stack.bus.wait_for(INVENTORY_EVENTS, "BackorderEtaChanged", order_id=second))[0].data
    assert moved["estimated_ship_date"] == soon.isoformat()
    await stack.bus.wait_for(NOTIFICATIONS_EVENTS, "NotificationSent", order_id=first, kind="order_cancelled")
    mail = await eventually(lambda: _with_subject(stack.mails_to(email), "cancellation confirmed"))
    assert "40.00 EUR" in mail.get_content()
    order = (await stack.get("order", f"/orders/{first}")).json()
    assert order["status"] == "cancelled" and order["lines"][0]["cancelled"] == 2
    assert (await stack.get("inventory", f"/availability/{sku}")).json()["backordered"] == 2


async def test_cancelled_reserved_stock_goes_back_and_fills_a_waiting_backorder(stack):
    sku = unique("sku")
    await product(stack, sku, stock=3)
    holder = unique("ord")
    await stack.bus.send(ORDERS_COMMANDS, PlaceOrder(order_id=holder, customer_id="c", customer_email="h@example.com",
                                                     lines=[OrderLine(sku=sku, quantity=3)]), holder)
    await stack.bus.wait_for(ORDERS_EVENTS, "OrderConfirmed", order_id=holder)
    waiting = await place(stack, sku, 2)

    await stack.bus.send(ORDERS_COMMANDS, CancelOrder(order_id=holder), holder)

    released = (await stack.bus.wait_for(INVENTORY_EVENTS, "StockReleased", order_id=holder))[0].data
    assert (released["quantity"], released["kept"]) == (3, 0)
    filled = (await stack.bus.wait_for(INVENTORY_EVENTS, "BackorderFulfilled", order_id=waiting))[0].data
    assert filled["quantity"] == 2
    await stack.bus.wait_for(ORDERS_EVENTS, "OrderReadyToShip", order_id=waiting)
    cancelled = (await stack.bus.wait_for(ORDERS_EVENTS, "OrderCancelled", order_id=holder))[0].data
    assert cancelled["refund_amount"] is None  # the order carried no prices
    availability = (await stack.get("inventory", f"/availability/{sku}")).json()
    assert (availability["on_hand"], availability["reserved"], availability["available"]) == (3, 2, 1)


async def test_cancelling_what_already_ships_is_refused_with_a_reason(stack):
    sku = unique("sku")
    await product(stack, sku)
    order_id = await place(stack, sku, 1)
    await stack.bus.send(INVENTORY_COMMANDS, ReceiveStock(receipt_id=unique("r"), sku=sku, quantity=1), sku)
    await stack.bus.wait_for(ORDERS_EVENTS, "OrderReadyToShip", order_id=order_id)

    await stack.bus.send(ORDERS_COMMANDS, CancelOrder(order_id=order_id), order_id)

    refused = (await stack.bus.wait_for(ORDERS_EVENTS, "CancellationRefused", order_id=order_id))[0].data
    assert "ships expedited" in refused["reason"]


async def test_cancelling_an_unknown_order_is_dead_lettered_with_the_reason(stack):
    order_id = unique("nobody")
    await stack.bus.send(ORDERS_COMMANDS, CancelOrder(order_id=order_id), order_id)
    await eventually(lambda: _dead_lettered(stack, order_id))
    mine = [d for d in stack.bus.events("orders.commands.dlq") if d.key == order_id.encode()]
    assert len(mine) == 1 and "no such order" in mine[0].headers["dlq.error"]


async def test_cancel_racing_a_receipt_loses_no_stock_and_fills_nothing_twice(stack):
    sku = unique("sku")
    await product(stack, sku)
    racer = await place(stack, sku, 3)
    behind = await place(stack, sku, 2)

    await asyncio.gather(
        stack.bus.send(ORDERS_COMMANDS, CancelOrder(order_id=racer), racer),
        stack.bus.send(INVENTORY_COMMANDS, ReceiveStock(receipt_id=unique("r"), sku=sku, quantity=4), sku),
    )

    outcome = await stack.bus.wait_for(INVENTORY_EVENTS, "StockReleased", order_id=racer)
    await stack.bus.wait_for(INVENTORY_EVENTS, "StockReceived", sku=sku)
    await stack.bus.wait_for(ORDERS_EVENTS, order_id=racer, count=1,
                             type_="OrderCancelled" if outcome[0].data["backorder_cancelled"] else "CancellationRefused")
    # Both are handled; the receipt's fills are published with it. The order behind gets 1 (receipt
    # first: 3 went to the racer) or 2.
    await stack.bus.wait_for(INVENTORY_EVENTS, "BackorderFulfilled", order_id=behind)
    await sentinel_purchase_order(stack, sku)
    fills = stack.bus.events(INVENTORY_EVENTS, "BackorderFulfilled", sku=sku)
    filled = {o: sum(f.data["quantity"] for f in fills if f.data["order_id"] == o) for o in (racer, behind)}
    kept, cancelled = outcome[0].data["kept"], outcome[0].data["backorder_cancelled"]
    assert filled[racer] == kept and kept + cancelled == 3  # the racer's 3 units: filled or cancelled, not both
    assert filled[behind] <= 2
    availability = (await stack.get("inventory", f"/availability/{sku}")).json()
    assert availability["on_hand"] == 4
    assert availability["reserved"] == filled[racer] + filled[behind]  # every unit is reserved once or available
    assert availability["available"] == 4 - availability["reserved"]
    assert availability["backordered"] == 2 - filled[behind]


def _dead_lettered(stack, key: str) -> None:
    assert any(d.key == key.encode() for d in stack.bus.events("orders.commands.dlq"))


def _with_subject(mails: list, text: str):
    return only([m for m in mails if text in m["Subject"]])
