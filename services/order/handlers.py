"""Order use cases, one transaction per batch: place orders, and record what inventory did for them."""

from datetime import date, timedelta

import asyncpg
import structlog
from pydantic import BaseModel

from contracts.commands import CancelOrder, PlaceOrder
from contracts.envelope import Envelope
from contracts.events import ORDER_EVENTS, Event
from services.order import domain, projections
from services.order.domain import Order
from services.runtime.eventstore import Streams, lock_appends, replay
from services.runtime.messages import Message, Unhandleable

log = structlog.get_logger()


def inbox_key(message: Message) -> str:
    # PlaceOrder is idempotent on order_id, whatever its message id. (Two CancelOrders for one order are
    # two requests: the second is refused if the first took everything.)
    if isinstance(message.body, PlaceOrder):
        return f"PlaceOrder:{message.body.order_id}"
    return message.envelope.id


async def handle(conn: asyncpg.Connection, messages: list[Message], goodwill_percent: int) -> None:
    orders: Streams[Order] = Streams(conn, Order)
    await orders.load(m.body.order_id for m in messages)
    for message in messages:
        order_id = message.body.order_id
        order = orders.get(order_id)
        if isinstance(message.body, PlaceOrder):
            events = domain.place(order, message.body)
            if events:
                orders.record(order_id, domain.evolve(None, events[0]), events, message.envelope)
            else:
                log.info("order placed before, nothing to do", order_id=order_id, message_id=message.envelope.id)
        elif isinstance(message.body, CancelOrder):
            if order is None:
                raise Unhandleable(f"CancelOrder for {order_id}: no such order")
            orders.record(order_id, order, domain.cancel(order, message.body), message.envelope)
        elif order is None:
            log.warning("allocation event for an unknown order skipped", order_id=order_id, type=message.type)
        else:
            events = domain.record_allocation(order, message.body, goodwill_percent)
            orders.record(order_id, order, events, message.envelope)
    changed = await orders.save()
    await projections.project(conn, changed.values())


async def offer_goodwill_for_long_waits(conn: asyncpg.Connection, today: date, wait_days: int, percent: int,
                                       limit: int = 500) -> int:
    """Offer goodwill to the orders whose backorder has waited `wait_days` or more; returns how many."""
    waiting = await projections.long_waits(conn, today - timedelta(days=wait_days), limit)
    if not waiting:
        return 0
    orders: Streams[Order] = Streams(conn, Order)
    await orders.load(waiting)
    review = Envelope.wrap(GoodwillReview(on=today), source="orderflow/order")
    for order_id in waiting:
        order = orders.get(order_id)
        orders.record(order_id, order, domain.offer_goodwill_for_wait(order, today, wait_days, percent), review)
    changed = await orders.save()
    await projections.project(conn, changed.values())
    return len(changed)


class GoodwillReview(BaseModel):
    """The cause recorded on goodwill offered by the periodic review rather than by a message."""

    on: date


def parse_event(type_: str, data: str) -> Event:
    return ORDER_EVENTS[type_].model_validate_json(data)


async def rebuild_projections(conn: asyncpg.Connection) -> None:
    """Drop and rebuild the read model from the event store; appends wait meanwhile."""
    async with conn.transaction():
        await lock_appends(conn)
        states = await replay(conn, parse_event, domain.evolve, lambda _: None)
        await projections.rebuild(conn, states.values())
