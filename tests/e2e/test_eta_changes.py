"""ETA changes through the public topics: every backorder whose ETA moves is told, in one update per
order however many moves come close together, with a goodwill discount when it slipped."""

from datetime import UTC, datetime, timedelta

from contracts.commands import (
    CancelReplenishment,
    ExpectReplenishment,
    OrderLine,
    PlaceOrder,
    RegisterProduct,
    RescheduleReplenishment,
)
from contracts.topics import INVENTORY_COMMANDS, INVENTORY_EVENTS, NOTIFICATIONS_EVENTS, ORDERS_COMMANDS, ORDERS_EVENTS
from tests.support import eventually, outlast, unique


async def backordered(stack, sku: str, email: str) -> str:
    await stack.bus.send(INVENTORY_COMMANDS, RegisterProduct(sku=sku, name="Lamp", lead_time_days=30), sku)
    await stack.bus.wait_for(INVENTORY_EVENTS, "ProductRegistered", sku=sku)
    order_id = unique("ord")
    await stack.bus.send(ORDERS_COMMANDS, PlaceOrder(order_id=order_id, customer_id="c", customer_email=email,
                                                     lines=[OrderLine(sku=sku, quantity=2)]), order_id)
    await stack.bus.wait_for(NOTIFICATIONS_EVENTS, "NotificationSent", order_id=order_id, kind="backorder_created")
    return order_id


async def test_an_eta_that_moves_three_times_quickly_makes_one_update_with_one_goodwill_discount(stack):
    sku, email = unique("sku"), f"{unique('c')}@example.com"
    order_id = await backordered(stack, sku, email)
    today, po = datetime.now(UTC).date(), unique("po")

    await stack.bus.send(INVENTORY_COMMANDS, ExpectReplenishment(po_id=po, sku=sku, quantity=5,
                                                                 expected_on=today + timedelta(days=5)), sku)
    await stack.bus.send(INVENTORY_COMMANDS, RescheduleReplenishment(po_id=po, sku=sku, expected_on=today + timedelta(days=8)), sku)
    await stack.bus.send(INVENTORY_COMMANDS, RescheduleReplenishment(po_id=po, sku=sku, expected_on=today + timedelta(days=9)), sku)

    moves = await stack.bus.wait_for(INVENTORY_EVENTS, "BackorderEtaChanged", count=3, order_id=order_id)
    assert [m.data["estimated_ship_date"] for m in moves] == [
        (today + timedelta(days=d)).isoformat() for d in (5, 8, 9)]
    discount = (await stack.bus.wait_for(ORDERS_EVENTS, "DiscountOffered", order_id=order_id))[0].data
    await stack.bus.wait_for(NOTIFICATIONS_EVENTS, "NotificationSent", order_id=order_id, kind="eta_changed")
    await outlast(3)  # longer than the update window: a second update would have gone out by now
    assert len(stack.bus.events(NOTIFICATIONS_EVENTS, "NotificationSent", order_id=order_id, kind="eta_changed", channel="email")) == 1
    assert len(stack.bus.events(ORDERS_EVENTS, "DiscountOffered", order_id=order_id)) == 1
    updates = [m for m in stack.mails_to(email) if "new estimated ship date" in m["Subject"]]
    assert len(updates) == 1
    text = updates[0].get_content()
    assert f"now {(today + timedelta(days=9)).isoformat()}" in text
    assert discount["code"] in text and f"{discount['percent']}% off" in text
    line = (await stack.get("order", f"/orders/{order_id}")).json()["lines"][0]
    assert line["estimated_ship_date"] == (today + timedelta(days=9)).isoformat()


async def test_a_cancelled_purchase_order_sends_its_backorders_back_to_the_lead_time(stack):
    sku, email = unique("sku"), f"{unique('c')}@example.com"
    today, po = datetime.now(UTC).date(), unique("po")
    await stack.bus.send(INVENTORY_COMMANDS, RegisterProduct(sku=sku, name="Lamp", lead_time_days=30), sku)
    await stack.bus.send(INVENTORY_COMMANDS, ExpectReplenishment(po_id=po, sku=sku, quantity=5,
                                                                 expected_on=today + timedelta(days=4)), sku)
    await stack.bus.wait_for(INVENTORY_EVENTS, "ReplenishmentExpected", sku=sku)
    order_id = await backordered(stack, sku, email)

    await stack.bus.send(INVENTORY_COMMANDS, CancelReplenishment(po_id=po, sku=sku), sku)

    moved = (await stack.bus.wait_for(INVENTORY_EVENTS, "BackorderEtaChanged", order_id=order_id))[0].data
    assert moved["previous_estimated_ship_date"] == (today + timedelta(days=4)).isoformat()
    assert moved["estimated_ship_date"] == (today + timedelta(days=30)).isoformat()
    await eventually(lambda: _one_update(stack, email))


def _one_update(stack, email: str) -> None:
    assert len([m for m in stack.mails_to(email) if "new estimated ship date" in m["Subject"]]) == 1
