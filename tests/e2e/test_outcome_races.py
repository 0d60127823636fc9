"""Per-SKU outcomes and store-side decisions arriving in any order still give each request one answer, each
order a status it can rest in, and each customer one mail per thing that happened."""

import asyncio
from datetime import UTC, datetime, timedelta

from contracts.commands import (
    CancelOrder,
    CancelReplenishment,
    DiscontinueProduct,
    ExpectReplenishment,
    OrderLine,
    PlaceOrder,
    ReceiveStock,
    RegisterProduct,
)
from contracts.topics import INVENTORY_COMMANDS, INVENTORY_EVENTS, NOTIFICATIONS_EVENTS, ORDERS_COMMANDS, ORDERS_EVENTS
from services.inventory import handlers as inventory
from services.runtime import db
from tests.support import eventually, exactly, only, unique


async def product(stack, sku: str, name: str, lead_time_days: int = 10, stock: int = 0) -> None:
    await stack.bus.send(INVENTORY_COMMANDS, RegisterProduct(sku=sku, name=name, lead_time_days=lead_time_days), sku)
    if stock:
        await stack.bus.send(INVENTORY_COMMANDS, ReceiveStock(receipt_id=unique("r"), sku=sku, quantity=stock), sku)
        await stack.bus.wait_for(INVENTORY_EVENTS, "StockReceived", sku=sku)
    else:
        await stack.bus.wait_for(INVENTORY_EVENTS, "ProductRegistered", sku=sku)


def order(order_id: str, email: str, *lines: tuple) -> PlaceOrder:
    return PlaceOrder(order_id=order_id, customer_id="c", customer_email=email, currency="EUR",
                      lines=[OrderLine(sku=sku, quantity=q, unit_price=p[0] if p else None) for sku, q, *p in lines])


def cancellation_mails(stack, email: str) -> list:
    return [m for m in stack.mails_to(email) if "cancellation" in m["Subject"] or "closed" in m["Subject"]]


async def test_a_discontinue_crossing_the_customers_cancellation_gives_one_answer_with_the_stores_reason(stack):
    sku, order_id, email = unique("sku"), unique("ord"), f"{unique('c')}@example.com"
    await product(stack, sku, "Old Kettle")
    await stack.bus.send(ORDERS_COMMANDS, order(order_id, email, (sku, 3, "4.00")), order_id)
    await stack.bus.wait_for(ORDERS_EVENTS, "OrderBackordered", order_id=order_id)

    await asyncio.gather(
        stack.bus.send(ORDERS_COMMANDS, CancelOrder(order_id=order_id, reason="found it elsewhere"), order_id),
        stack.bus.send(INVENTORY_COMMANDS, DiscontinueProduct(sku=sku, reason="no longer made"), sku),
    )

    cancelled = only(await stack.bus.wait_for(ORDERS_EVENTS, "OrderCancelled", order_id=order_id))
    assert cancelled.data["lines"] == [{"sku": sku, "quantity": 3}] and cancelled.data["refund_amount"] == "12.00"
    mail = await eventually(lambda: only(cancellation_mails(stack, email)))
    if stack.bus.events(INVENTORY_EVENTS, "StockReleased", order_id=order_id, requested=False):
        assert "no longer made" in cancelled.data["reason"] and "no longer made" in mail.get_content()
    await stack.bus.wait_for(NOTIFICATIONS_EVENTS, "NotificationSent", order_id=order_id, kind="order_cancelled",
                             channel="email")
    assert not stack.bus.events(ORDERS_EVENTS, "OrderConfirmed", order_id=order_id)
    assert (await stack.get("order", f"/orders/{order_id}")).json()["status"] == "cancelled"


async def test_an_order_whose_refusal_arrives_after_a_line_cancellation_still_closes(stack):
    sku, unknown, order_id, email = unique("sku"), unique("nope"), unique("ord"), f"{unique('c')}@example.com"
    await product(stack, sku, "Teapot", stock=5)
    await stack.bus.send(ORDERS_COMMANDS, order(order_id, email, (sku, 1, "9.00"), (unknown, 6)), order_id)
    await stack.bus.send(ORDERS_COMMANDS, CancelOrder(order_id=order_id, sku=sku), order_id)

    async def closed() -> dict:
        order = (await stack.get("order", f"/orders/{order_id}")).json()
        assert order.get("status") == "cancelled", order  # not found yet, or not closed yet
        return order

    await eventually(closed)
    told = await stack.bus.wait_for(ORDERS_EVENTS, "OrderCancelled", order_id=order_id)
    assert {sku: 1} == {l["sku"]: l["quantity"] for t in told for l in t.data["lines"]}
    assert told[-1].data["whole_order"]
    await eventually(lambda: exactly(cancellation_mails(stack, email), len(told)))


async def test_cancelling_a_whole_order_refunds_its_priced_lines_when_others_are_unpriced(stack):
    priced, unpriced, order_id, email = unique("sku"), unique("sku"), unique("ord"), f"{unique('c')}@example.com"
    await product(stack, priced, "Pan", stock=5)
    await product(stack, unpriced, "Lid", stock=5)
    await stack.bus.send(ORDERS_COMMANDS, order(order_id, email, (priced, 2, "10.00"), (unpriced, 1)), order_id)
    await stack.bus.wait_for(ORDERS_EVENTS, "OrderConfirmed", order_id=order_id)
    await stack.bus.send(ORDERS_COMMANDS, CancelOrder(order_id=order_id), order_id)

    refund = only(await stack.bus.wait_for(ORDERS_EVENTS, "RefundIssued", order_id=order_id)).data
    assert refund["amount"] == "20.00" and refund["currency"] == "EUR"
    mail = await eventually(lambda: only(cancellation_mails(stack, email)))
    assert "20.00 EUR" in mail.get_content()


async def test_cancelling_the_purchase_order_of_a_discontinued_product_cancels_without_a_slip_or_a_discount(stack):
    sku, po, email = unique("sku"), unique("po"), f"{unique('c')}@example.com"
    today = datetime.now(UTC).date()
    await product(stack, sku, "Vintage Lamp", lead_time_days=30)
    await stack.bus.send(INVENTORY_COMMANDS, ExpectReplenishment(po_id=po, sku=sku, quantity=2,
                                                                 expected_on=today + timedelta(days=3)), sku)
    await stack.bus.wait_for(INVENTORY_EVENTS, "ReplenishmentExpected", sku=sku)
    order_id = unique("ord")
    await stack.bus.send(ORDERS_COMMANDS, order(order_id, email, (sku, 2, "6.00")), order_id)
    await stack.bus.wait_for(ORDERS_EVENTS, "OrderBackordered", order_id=order_id)
    await stack.bus.send(INVENTORY_COMMANDS, DiscontinueProduct(sku=sku), sku)
    await stack.bus.wait_for(INVENTORY_EVENTS, "ProductDiscontinued", sku=sku)

    await stack.bus.send(INVENTORY_COMMANDS, CancelReplenishment(po_id=po, sku=sku), sku)

    cancelled = only(await stack.bus.wait_for(ORDERS_EVENTS, "OrderCancelled", order_id=order_id)).data
    assert "discontinued" in cancelled["reason"] and cancelled["refund_amount"] == "12.00"
    # What a slip would have caused comes before the cancellation on the same partitions.
    assert not stack.bus.events(INVENTORY_EVENTS, "BackorderEtaChanged", order_id=order_id)
    assert not stack.bus.events(ORDERS_EVENTS, "DiscountOffered", order_id=order_id)
    await stack.bus.wait_for(NOTIFICATIONS_EVENTS, "NotificationSent", order_id=order_id, kind="order_cancelled")
    mails = stack.mails_to(email)
    assert not [m for m in mails if "estimated ship date" in m["Subject"]]
    assert "Vintage Lamp is discontinued" in only(cancellation_mails(stack, email)).get_content()


async def test_an_eta_that_passes_without_supply_moves_once_with_goodwill_and_is_not_told_again(stack):
    sku, po, email = unique("sku"), unique("po"), f"{unique('c')}@example.com"
    today = datetime.now(UTC).date()
    await product(stack, sku, "Slow Clock", lead_time_days=30)
    await stack.bus.send(INVENTORY_COMMANDS, ExpectReplenishment(po_id=po, sku=sku, quantity=1,
                                                                 expected_on=today + timedelta(days=2)), sku)
    await stack.bus.wait_for(INVENTORY_EVENTS, "ReplenishmentExpected", sku=sku)
    order_id = unique("ord")
    await stack.bus.send(ORDERS_COMMANDS, order(order_id, email, (sku, 1)), order_id)
    await stack.bus.wait_for(ORDERS_EVENTS, "OrderBackordered", order_id=order_id)

    # The daily review, as it runs a week from now: the purchase order never came.
    review_day = today + timedelta(days=7)
    pool = await db.connect_pool(stack.database.urls["inventory"], "inventory", max_size=1)
    try:
        for _ in range(2):  # a second review the same day finds nothing more to move
            async with pool.acquire() as conn, conn.transaction():
                await inventory.review_overdue_etas(conn, review_day)
    finally:
        await pool.close()

    late = only(await stack.bus.wait_for(INVENTORY_EVENTS, "ReplenishmentRescheduled", po_id=po)).data
    assert late["overdue_on"] == review_day.isoformat()  # expected at the next credible date, and the ETA with it
    moved = only(await stack.bus.wait_for(INVENTORY_EVENTS, "BackorderEtaChanged", order_id=order_id)).data
    assert moved["estimated_ship_date"] == (review_day + timedelta(days=30)).isoformat()
    discount = only(await stack.bus.wait_for(ORDERS_EVENTS, "DiscountOffered", order_id=order_id)).data
    await stack.bus.wait_for(NOTIFICATIONS_EVENTS, "NotificationSent", order_id=order_id, kind="eta_changed",
                             channel="email")
    update = only([m for m in stack.mails_to(email) if "new estimated ship date" in m["Subject"]])
    assert (review_day + timedelta(days=30)).isoformat() in update.get_content() and discount["code"] in update.get_content()

    # Unrelated events on the SKU tell this customer nothing new.
    other = unique("ord")
    await stack.bus.send(ORDERS_COMMANDS, order(other, f"{unique('c')}@example.com", (sku, 1)), other)
    await stack.bus.wait_for(INVENTORY_EVENTS, "BackorderCreated", order_id=other)
    assert len(stack.bus.events(INVENTORY_EVENTS, "BackorderEtaChanged", order_id=order_id)) == 1
