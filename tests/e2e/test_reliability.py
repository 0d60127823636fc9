"""Nothing twice, nothing lost: duplicates, redeliveries, bad messages and contention, through the topics."""

import asyncio
import json

from datetime import date

from contracts.commands import CancelOrder, ExpectReplenishment, OrderLine, PlaceOrder, ReceiveStock, RegisterProduct
from contracts.topics import INVENTORY_COMMANDS, INVENTORY_EVENTS, NOTIFICATIONS_EVENTS, ORDERS_COMMANDS, ORDERS_EVENTS
from tests.support import eventually, only, unique


async def product(stack, sku: str, stock: int) -> None:
    await stack.bus.send(INVENTORY_COMMANDS, RegisterProduct(sku=sku, name="Widget", lead_time_days=7), sku)
    await stack.bus.send(INVENTORY_COMMANDS, ReceiveStock(receipt_id=unique("r"), sku=sku, quantity=stock), sku)
    await stack.bus.wait_for(INVENTORY_EVENTS, "StockReceived", sku=sku)


def order(order_id: str, sku: str, quantity: int, email: str = "dup@example.com") -> PlaceOrder:
    return PlaceOrder(order_id=order_id, customer_id="c", customer_email=email,
                      lines=[OrderLine(sku=sku, quantity=quantity)])


async def test_duplicate_place_order_has_the_effect_of_one(stack):
    sku, order_id, email = unique("sku"), unique("ord"), f"{unique('c')}@example.com"
    await product(stack, sku, 10)

    for _ in range(3):  # three sends, three message ids, one order_id
        await stack.bus.send(ORDERS_COMMANDS, order(order_id, sku, 2, email), order_id)

    await stack.bus.wait_for(ORDERS_EVENTS, "OrderConfirmed", order_id=order_id)
    await eventually(lambda: only(stack.mails_to(email)))
    # Sentinel: a request on the same partition, answered after the three sends were handled.
    await stack.bus.send(ORDERS_COMMANDS, CancelOrder(order_id=order_id, sku="SENTINEL"), order_id)
    await stack.bus.wait_for(ORDERS_EVENTS, "CancellationRefused", order_id=order_id, sku="SENTINEL")
    assert len(stack.bus.events(ORDERS_EVENTS, "OrderPlaced", order_id=order_id)) == 1
    assert len(stack.bus.events(INVENTORY_EVENTS, "StockReserved", order_id=order_id)) == 1
    assert (await stack.get("inventory", f"/availability/{sku}")).json()["reserved"] == 2
    assert len(stack.mails_to(email)) == 1


async def test_duplicate_receipt_is_counted_once(stack):
    sku, receipt_id = unique("sku"), unique("r")
    await stack.bus.send(INVENTORY_COMMANDS, RegisterProduct(sku=sku, name="Widget", lead_time_days=7), sku)
    for _ in range(2):
        await stack.bus.send(INVENTORY_COMMANDS, ReceiveStock(receipt_id=receipt_id, sku=sku, quantity=5), sku)
    await stack.bus.wait_for(INVENTORY_EVENTS, "StockReceived", sku=sku)
    await sentinel_purchase_order(stack, sku)
    assert len(stack.bus.events(INVENTORY_EVENTS, "StockReceived", sku=sku)) == 1
    assert (await stack.get("inventory", f"/availability/{sku}")).json()["on_hand"] == 5


async def test_redelivered_event_has_the_effect_of_one(stack):
    sku, order_id, email = unique("sku"), unique("ord"), f"{unique('c')}@example.com"
    await product(stack, sku, 1)
    await stack.bus.send(ORDERS_COMMANDS, order(order_id, sku, 3, email), order_id)
    await stack.bus.wait_for(INVENTORY_EVENTS, "BackorderCreated", order_id=order_id)
    await stack.bus.send(INVENTORY_COMMANDS, ReceiveStock(receipt_id=unique("r"), sku=sku, quantity=2), sku)
    fulfilled = (await stack.bus.wait_for(INVENTORY_EVENTS, "BackorderFulfilled", order_id=order_id))[0]
    await stack.bus.wait_for(NOTIFICATIONS_EVENTS, "NotificationSent", order_id=order_id, kind="backorder_fulfilled")

    # The same event again, byte for byte, as a relay that crashed before recording its progress would send it.
    await stack.bus.send_raw(INVENTORY_EVENTS, fulfilled.value, sku, fulfilled.headers)

    await stack.bus.wait_for(INVENTORY_EVENTS, "BackorderFulfilled", count=2, order_id=order_id)
    await sentinel_backorder(stack, sku)
    assert len(stack.bus.events(ORDERS_EVENTS, "OrderLineFulfilled", order_id=order_id)) == 1
    assert len(stack.bus.events(NOTIFICATIONS_EVENTS, "NotificationSent", order_id=order_id,
                                kind="backorder_fulfilled", channel="email")) == 1
    line = (await stack.get("order", f"/orders/{order_id}")).json()["lines"][0]
    assert (line["reserved"], line["fulfilled"], line["backordered"]) == (1, 2, 0)
    assert len([m for m in stack.mails_to(email) if "ships now" in m["Subject"]]) == 1


async def test_malformed_and_invalid_messages_go_to_the_dlq_and_the_next_good_one_is_handled(stack):
    sku, order_id = unique("sku"), unique("ord")
    await product(stack, sku, 5)
    bad_id = unique("bad")

    await stack.bus.send_raw(ORDERS_COMMANDS, b"{not json", bad_id)
    invalid = order(unique("ord"), sku, 1).model_dump(mode="json") | {"lines": [{"sku": sku, "quantity": -3}]}
    await stack.bus.send_raw(
        ORDERS_COMMANDS,
        b'{"specversion":"1.0","id":"%s","source":"tests","type":"PlaceOrder","data":%s}'
        % (bad_id.encode(), json.dumps(invalid).encode()),
        bad_id,
    )
    await stack.bus.send(ORDERS_COMMANDS, order(order_id, sku, 1), order_id)

    def dead_lettered() -> list:
        mine = [d for d in stack.bus.events("orders.commands.dlq") if d.key == bad_id.encode()]
        assert len(mine) == 2
        return mine

    mine = await eventually(dead_lettered)
    assert mine[0].value == b"{not json" and mine[0].headers["dlq.error"].startswith("not JSON")
    assert "lines.0.quantity" in mine[1].headers["dlq.error"]
    assert mine[1].headers["dlq.original.topic"] == "orders.commands"
    await stack.bus.wait_for(ORDERS_EVENTS, "OrderConfirmed", order_id=order_id)


async def test_200_concurrent_orders_for_50_in_stock_reserve_exactly_50(stack):
    sku = unique("sku")
    await product(stack, sku, 50)
    orders = [unique("ord") for _ in range(200)]

    await asyncio.gather(*(stack.bus.send(ORDERS_COMMANDS, order(o, sku, 1), o) for o in orders))

    reserved = await stack.bus.wait_for(INVENTORY_EVENTS, "StockReserved", count=50, sku=sku, timeout=60)
    backordered = await stack.bus.wait_for(INVENTORY_EVENTS, "BackorderCreated", count=150, sku=sku, timeout=60)
    await sentinel_backorder(stack, sku)
    assert sum(r.data["quantity"] for r in stack.bus.events(INVENTORY_EVENTS, "StockReserved", sku=sku)) == 50
    assert len({r.data["order_id"] for r in reserved} | {b.data["order_id"] for b in backordered}) == 200
    availability = (await stack.get("inventory", f"/availability/{sku}")).json()
    assert (availability["on_hand"], availability["reserved"], availability["backordered"]) == (50, 50, 151)


async def sentinel_purchase_order(stack, sku: str) -> None:
    """A purchase order far ahead for `sku`, seen by inventory: it has handled the commands sent before it
    for the SKU by then (it moves no stock)."""
    po_id = unique("sentinel")
    await stack.bus.send(INVENTORY_COMMANDS, ExpectReplenishment(po_id=po_id, sku=sku, quantity=1,
                                                                 expected_on=date(2099, 1, 1)), sku)
    await stack.bus.wait_for(INVENTORY_EVENTS, "ReplenishmentExpected", po_id=po_id)


async def sentinel_backorder(stack, sku: str) -> None:
    """A 1-unit backorder of `sku` (whose stock is all taken), seen by inventory, the order service and the
    notification service: each has handled what came before it on the SKU's partition by then."""
    order_id = unique("sentinel")
    await stack.bus.send(ORDERS_COMMANDS, order(order_id, sku, 1, f"{order_id}@example.com"), order_id)
    await stack.bus.wait_for(NOTIFICATIONS_EVENTS, "NotificationSent", order_id=order_id, kind="backorder_created",
                             channel="email", timeout=60)
    await stack.bus.wait_for(ORDERS_EVENTS, "OrderLineBackordered", order_id=order_id)
