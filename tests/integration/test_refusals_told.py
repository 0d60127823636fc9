"""Refused lines told once, on real PostgreSQL through the consumer, the handler and the dispatcher, against what
could go wrong: status events that overtake the order's contact, an older status sent again after a newer one,
the same SKU twice in one event, thousands of refused lines."""

from contracts.events import OrderBackordered, OrderConfirmed, OrderRejected, OrderStatusChanged, RejectedLine
from tests.integration.test_notification_service import Notifications, placed
from tests.unit.test_refusals_told_once import refusals_named

GONE = RejectedLine(sku="GONE", reason="unknown_sku", message="GONE is not a product we sell")
RADIO = RejectedLine(sku="RADIO", reason="discontinued", message="RADIO is discontinued")


def told(service: Notifications) -> list[tuple[str, str]]:
    """(order, SKU) of each refused line the mails sent tell, in the order sent."""
    return [(m.order_id, sku) for m in service.mails() for sku, _ in refusals_named(m)]


async def rows(service: Notifications, order_id: str) -> list[str]:
    return [r["sku"] for r in await service.pool.fetch(
        "SELECT sku FROM refusals_told WHERE order_id = $1 ORDER BY sku", order_id)]


async def test_refusals_that_overtake_the_orders_contact_wait_for_it_and_are_then_told_once(pools):
    service = Notifications(await pools("notification"))
    await service.receive(OrderStatusChanged(order_id="o1", status="partially_shipped", rejected_lines=[GONE]))
    await service.receive(OrderStatusChanged(order_id="o1", status="shipped", rejected_lines=[GONE, RADIO]),
                          OrderStatusChanged(order_id="o1", status="shipped", rejected_lines=[GONE, RADIO]))
    await service.dispatch()
    assert service.mails() == []

    await service.receive(placed("o1", "LAMP", "GONE", "RADIO"))
    await service.dispatch()

    assert told(service) == [("o1", "GONE"), ("o1", "RADIO")]
    assert [m.customer_email for m in service.mails()] == ["o1@example.com"] * 2


async def test_an_older_status_sent_again_after_a_newer_one_tells_no_refusal_again(pools):
    """Under a new message id, past the inbox: the older event carries a subset of the refusals, all told."""
    service = Notifications(await pools("notification"))
    waiting = OrderBackordered(order_id="o1", backordered_lines=[], rejected_lines=[GONE])
    await service.receive(placed("o1", "LAMP", "GONE", "RADIO"), waiting)
    await service.receive(OrderStatusChanged(order_id="o1", status="shipped", rejected_lines=[GONE, RADIO]))
    await service.receive(waiting, OrderConfirmed(order_id="o1", rejected_lines=[GONE]))
    await service.dispatch()

    assert told(service) == [("o1", "GONE"), ("o1", "RADIO")]
    assert await rows(service, "o1") == ["GONE", "RADIO"]


async def test_a_sku_refused_twice_in_one_event_is_told_once(pools):
    service = Notifications(await pools("notification"))
    twice = [GONE, GONE.model_copy(update={"message": "another reason"})]
    await service.receive(placed("o1", "GONE"), OrderRejected(order_id="o1", reason="r", lines=twice))
    await service.dispatch()

    assert told(service) == [("o1", "GONE")] and await rows(service, "o1") == ["GONE"]
    assert "GONE is not a product we sell" in service.mails()[0].body


async def test_thousands_of_refused_lines_are_told_in_one_mail_and_noted_once(pools):
    service = Notifications(await pools("notification"))
    lines = [RejectedLine(sku=f"SKU-{n:05}", reason="unknown_sku", message="not sold here") for n in range(5000)]
    await service.receive(placed("o1", "LAMP"), OrderRejected(order_id="o1", reason="r", lines=lines))
    await service.receive(OrderConfirmed(order_id="o1", rejected_lines=lines))
    await service.dispatch()

    assert [m.kind for m in service.mails()] == ["lines_refused", "order_confirmed"]
    assert len(told(service)) == 5000 and len(await rows(service, "o1")) == 5000
