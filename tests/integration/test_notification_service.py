"""The notification service on real PostgreSQL: events in through its consumer and handler, out through the
dispatcher to channels that keep what they are given."""

import asyncio
import json
from datetime import date
from functools import partial

import pytest

from contracts.commands import OrderLine
from contracts.envelope import Envelope
from contracts.events import (
    ORDER_EVENTS,
    BackorderCancelled,
    BackorderCreated,
    BackorderEtaChanged,
    OrderBackordered,
    OrderCancelled,
    OrderConfirmed,
    OrderPlaced,
    OrderReadyToShip,
    OrderShipped,
    OrderStatusChanged,
    ProductRegistered,
    BackorderedLine,
    RejectedLine,
    ShippedLine,
)
from contracts.topics import INVENTORY_EVENTS, ORDERS_EVENTS
from services.notification import app, handlers, projections
from services.notification.channels import Outgoing
from services.notification.dispatch import Dispatcher
from services.runtime.consumer import BatchConsumer
from services.runtime.eventstore import ConcurrencyError
from tests.integration.helpers import Published, message, record

ETA = date(2026, 12, 9)
LATER = date(2026, 12, 23)


class Channel:
    """A channel that keeps every notification it is given."""

    def __init__(self, channel: str) -> None:
        self.channel = channel
        self.sent: list[Outgoing] = []

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def send(self, n: Outgoing) -> None:
        self.sent.append(n)


class Notifications:
    """The service's consumer and dispatcher on one database, with an email and a webhook channel."""

    def __init__(self, pool, channels=("email",)) -> None:
        self.pool = pool
        self.email, self.webhook = Channel("email"), Channel("webhook")
        handle = partial(handlers.handle, eta_window_s=0, channels=channels)
        self.consumer = BatchConsumer("notification", pool, app.SERVICE.subscriptions, handle, handlers.inbox_key,
                                      Published(), lambda: None, message_attempts=3)
        self.dispatcher = Dispatcher(pool, self.email, self.webhook, on_recorded=lambda: None)

    async def receive(self, *events) -> list[tuple[str, bytes]]:
        """Handle the events (or records given back by an earlier call) as one batch; returns the records."""
        records = [e if isinstance(e, tuple) else (_topic(e), Envelope.wrap(e, source="tests").to_bytes())
                   for e in events]
        await self.consumer.process([record(topic, value) for topic, value in records])
        return records

    async def dispatch(self) -> None:
        while await self.dispatcher.dispatch_once():
            pass

    def mails(self, kind: str | None = None) -> list[Outgoing]:
        return [n for n in self.email.sent if kind is None or n.kind == kind]

    async def sent_events(self, kind: str) -> list:
        return await self.pool.fetch("SELECT data FROM events WHERE type = 'NotificationSent' AND data->>'kind' = $1",
                                     kind)


def _topic(event) -> str:
    return ORDERS_EVENTS if type(event).__name__ in ORDER_EVENTS else INVENTORY_EVENTS


def placed(order_id: str, *skus: str) -> OrderPlaced:
    return OrderPlaced(order_id=order_id, customer_id="c-1", customer_email=f"{order_id}@example.com",
                       lines=[OrderLine(sku=s, quantity=2) for s in skus])


def product(sku: str, name: str, alternatives: list[str] = []) -> ProductRegistered:
    return ProductRegistered(sku=sku, name=name, backorderable=True, discontinued=False, lead_time_days=10,
                             safety_stock=0, alternatives=alternatives)


def backordered(order_id: str, sku: str, quantity: int, eta: date = ETA) -> BackorderCreated:
    return BackorderCreated(order_id=order_id, sku=sku, quantity=quantity, estimated_ship_date=eta,
                            backordered_on=date(2026, 11, 25))


def moved(order_id: str, sku: str, quantity: int, eta: date, previous: date = ETA) -> BackorderEtaChanged:
    return BackorderEtaChanged(order_id=order_id, sku=sku, quantity=quantity, previous_estimated_ship_date=previous,
                               estimated_ship_date=eta)


async def test_eta_changes_to_one_order_before_its_update_goes_out_make_one_update_with_the_latest_eta(pools):
    service = Notifications(await pools("notification"))
    await service.receive(placed("o1", "LAMP"), product("LAMP", "Desk Lamp"), backordered("o1", "LAMP", 2))
    await service.dispatch()

    await service.receive(moved("o1", "LAMP", 2, date(2026, 12, 15)))
    await service.receive(moved("o1", "LAMP", 2, LATER, previous=date(2026, 12, 15)))
    await service.dispatch()

    update = service.mails("eta_changed")
    assert len(update) == 1
    assert f"2 x Desk Lamp: now {LATER.isoformat()}" in update[0].body
    assert len(await service.sent_events("eta_changed")) == 1


async def test_units_left_by_a_partial_cancellation_keep_their_eta_and_the_next_update_tells_them(pools):
    service = Notifications(await pools("notification"))
    await service.receive(placed("o1", "RADIO", "LAMP"), product("RADIO", "Old Radio"), product("LAMP", "Desk Lamp"),
                          backordered("o1", "RADIO", 2), backordered("o1", "LAMP", 1))

    # A discontinue: expected supply covers one of the two radios.
    await service.receive(BackorderCancelled(order_id="o1", sku="RADIO", quantity=1, remaining=1))
    await service.receive(moved("o1", "LAMP", 1, LATER))
    await service.dispatch()

    etas = await service.pool.fetch("SELECT sku, quantity, eta FROM backorder_etas WHERE order_id = 'o1' ORDER BY sku")
    assert [tuple(r) for r in etas] == [("LAMP", 1, LATER), ("RADIO", 1, ETA)]
    update = service.mails("eta_changed")[0]
    assert f"1 x Old Radio: now {ETA.isoformat()}" in update.body
    assert f"1 x Desk Lamp: now {LATER.isoformat()}" in update.body


async def test_a_cancellation_that_leaves_nothing_waiting_takes_the_line_out_of_the_next_update(pools):
    service = Notifications(await pools("notification"))
    await service.receive(placed("o1", "RADIO", "LAMP"), product("RADIO", "Old Radio"), product("LAMP", "Desk Lamp"),
                          backordered("o1", "RADIO", 2), backordered("o1", "LAMP", 1))

    await service.receive(BackorderCancelled(order_id="o1", sku="RADIO", quantity=2, remaining=0))
    await service.receive(moved("o1", "LAMP", 1, LATER))
    await service.dispatch()

    etas = await service.pool.fetch("SELECT sku FROM backorder_etas WHERE order_id = 'o1'")
    assert [r["sku"] for r in etas] == ["LAMP"]
    assert "Old Radio" not in service.mails("eta_changed")[0].body


async def test_an_order_closed_by_a_refused_last_line_is_mailed_with_the_items_that_could_not_be_ordered(pools):
    service = Notifications(await pools("notification"))
    refused = RejectedLine(sku="RADIO", reason="discontinued", message="Old Radio is discontinued and only 0 are left")

    await service.receive(placed("o1", "RADIO"), product("RADIO", "Old Radio"),
                          OrderCancelled(order_id="o1", lines=[], whole_order=True, rejected_lines=[refused]))
    await service.dispatch()

    mail = service.mails("order_cancelled")[0]
    assert (mail.subject, mail.customer_email) == ("Order o1 is closed", "o1@example.com")
    assert "Old Radio (RADIO): Old Radio is discontinued and only 0 are left" in mail.body
    assert "refund" not in mail.body.lower()
    assert len(await service.sent_events("order_cancelled")) == 1


async def test_a_shipment_is_mailed_and_posted_once_however_often_and_under_whichever_ids_it_arrives(pools):
    service = Notifications(await pools("notification"), channels=("email", "webhook"))
    shipment = OrderShipped(order_id="o1", shipment_id="s1", lines=[ShippedLine(sku="LAMP", quantity=2)],
                            carrier="DHL", tracking_number="JD0146", complete=False)
    await service.receive(placed("o1", "LAMP", "BULB"), product("LAMP", "Desk Lamp"))

    first = await service.receive(shipment, shipment)  # the same shipment twice in a batch, two message ids
    await service.receive(*first)  # redelivered
    await service.dispatch()
    await service.receive(shipment)  # sent again later under a new message id
    await service.dispatch()

    assert len(service.mails("order_shipped")) == 1
    assert [n.kind for n in service.webhook.sent] == ["order_shipped"]
    mail = service.mails("order_shipped")[0]
    assert (mail.subject, mail.customer_email) == ("Order o1: part of it has shipped", "o1@example.com")
    assert "2 x Desk Lamp (LAMP)" in mail.body and "DHL" in mail.body and "JD0146" in mail.body
    assert "The rest of your order follows" in mail.body
    sent = await service.sent_events("order_shipped")
    assert sorted(json.loads(r["data"])["channel"] for r in sent) == ["email", "webhook"]


async def test_each_shipment_of_an_order_is_told_on_its_own(pools):
    service = Notifications(await pools("notification"))
    await service.receive(placed("o1", "LAMP", "BULB"))

    await service.receive(OrderShipped(order_id="o1", shipment_id="s1", lines=[ShippedLine(sku="LAMP", quantity=2)]))
    await service.receive(OrderShipped(order_id="o1", shipment_id="s2", lines=[ShippedLine(sku="BULB", quantity=2)],
                                       complete=True))
    await service.dispatch()

    assert [m.subject for m in service.mails("order_shipped")] == ["Order o1: part of it has shipped",
                                                                    "Order o1 has shipped"]


# --- refused lines: each told once, in the first mail that can carry it --------------------------------

GONE = RejectedLine(sku="GONE", reason="unknown_sku", message="GONE is not a product we sell")
RADIO = RejectedLine(sku="RADIO", reason="discontinued", message="Old Radio is discontinued and only 0 are left")


async def test_a_refusal_carried_by_the_backorder_status_is_mailed(pools):
    service = Notifications(await pools("notification"))
    waiting = BackorderedLine(sku="LAMP", quantity=2, estimated_ship_date=ETA)
    await service.receive(placed("o1", "LAMP", "GONE"), backordered("o1", "LAMP", 2),
                          OrderBackordered(order_id="o1", backordered_lines=[waiting], rejected_lines=[GONE]))
    await service.dispatch()

    refused = service.mails("lines_refused")
    assert len(refused) == 1 and "  - GONE: GONE is not a product we sell\n" in refused[0].body


async def test_a_refusal_carried_by_ready_to_ship_is_mailed(pools):
    service = Notifications(await pools("notification"))
    await service.receive(placed("o1", "LAMP", "GONE"), OrderReadyToShip(order_id="o1", rejected_lines=[GONE]))
    await service.dispatch()

    assert [m.kind for m in service.mails()] == ["lines_refused"]
    assert "GONE is not a product we sell" in service.mails()[0].body


async def test_a_refusal_told_with_the_confirmation_is_not_told_again_when_the_order_ships(pools):
    service = Notifications(await pools("notification"))
    await service.receive(placed("o1", "LAMP", "GONE"), OrderConfirmed(order_id="o1", rejected_lines=[GONE]))
    await service.receive(OrderStatusChanged(order_id="o1", status="shipped", rejected_lines=[GONE]))
    await service.dispatch()

    assert [m.kind for m in service.mails()] == ["order_confirmed"]
    assert "GONE" in service.mails()[0].body


async def test_a_second_refusal_after_one_told_is_told_alone(pools):
    service = Notifications(await pools("notification"))
    await service.receive(placed("o1", "LAMP", "GONE", "RADIO"), product("RADIO", "Old Radio"))
    await service.receive(OrderStatusChanged(order_id="o1", status="partially_shipped", rejected_lines=[GONE]))
    await service.receive(OrderStatusChanged(order_id="o1", status="shipped", rejected_lines=[GONE, RADIO]))
    await service.dispatch()

    first, second = service.mails("lines_refused")
    assert "GONE" in first.body and "RADIO" not in first.body
    assert "Old Radio (RADIO): Old Radio is discontinued" in second.body and "GONE" not in second.body
    assert len(await service.sent_events("lines_refused")) == 2


async def test_a_refusal_redelivered_or_sent_again_under_a_new_id_is_not_told_again(pools):
    service = Notifications(await pools("notification"), channels=("email", "webhook"))
    status = OrderStatusChanged(order_id="o1", status="shipped", rejected_lines=[GONE])
    await service.receive(placed("o1", "LAMP", "GONE"))

    first = await service.receive(status, status)  # twice in a batch, two message ids
    await service.receive(*first)  # redelivered: the inbox drops it
    await service.receive(status)  # a new message id: past the inbox, the refusal is known told
    await service.dispatch()

    assert len(service.mails("lines_refused")) == 1 and len(service.webhook.sent) == 1
    assert [r["sku"] for r in await service.pool.fetch("SELECT sku FROM refusals_told WHERE order_id = 'o1'")] == ["GONE"]


async def test_a_refusal_another_batch_tells_meanwhile_fails_the_batch_which_is_retried_and_tells_nothing(pools):
    """Two consumers of one partition across a rebalance: each read no refusal told; the later to commit finds
    the other's row, and its batch fails with ConcurrencyError (which the consumer retries)."""
    pool = await pools("notification")
    service = Notifications(pool)
    await service.receive(placed("o1", "LAMP", "GONE"))
    status = partial(OrderStatusChanged, order_id="o1", rejected_lines=[GONE])

    async with pool.acquire() as first, pool.acquire() as second:
        racing_transaction = second.transaction()
        await racing_transaction.start()
        async with first.transaction():
            await handlers.handle(first, [message(ORDERS_EVENTS, status(status="partially_shipped"))], 0)
            # Reads nothing told (the first has not committed), then waits on the first's rows.
            racing = asyncio.create_task(handlers.handle(second, [message(ORDERS_EVENTS, status(status="shipped"))], 0))
            await asyncio.sleep(0.5)
            assert not racing.done()
        with pytest.raises(ConcurrencyError):
            await racing
        await racing_transaction.rollback()

    # The retried batch reads the row and tells nothing.
    await service.receive(status(status="shipped"))
    await service.dispatch()
    assert len(service.mails("lines_refused")) == 1
