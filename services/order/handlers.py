"""Order use cases, one transaction per batch: place, cancel and ship orders, and record what inventory did
for them. Which message does what is the table USE_CASES."""

from collections.abc import Callable
from datetime import date, timedelta

import asyncpg
import structlog
from pydantic import BaseModel

from contracts.commands import CancelOrder, PlaceOrder, ShipOrder
from contracts.envelope import Envelope
from contracts.events import (
    ORDER_EVENTS,
    BackorderCreated,
    BackorderEtaChanged,
    BackorderFulfilled,
    Event,
    OutOfStock,
    ReservationRevoked,
    StockReleased,
    StockReserved,
    StockShipped,
)
from services.order import projections
from services.order.domain import decisions
from services.order.domain.state import Order, evolve
from services.runtime.eventstore import Streams, lock_appends, replay
from services.runtime.messages import Message, Unhandleable

log = structlog.get_logger()

# A use case: the order (None if unknown) and the message in, the events to record out.
UseCase = Callable[[Order | None, BaseModel, int], list[Event]]


def place_order(order: Order | None, cmd: PlaceOrder, goodwill_percent: int) -> list[Event]:
    if order is not None:
        log.info("order placed before, nothing to do", order_id=cmd.order_id)
    return decisions.place(order, cmd)


def cancel_order(order: Order | None, cmd: CancelOrder, goodwill_percent: int) -> list[Event]:
    if order is None:
        raise Unhandleable(f"CancelOrder for {cmd.order_id}: no such order")
    return decisions.cancel(order, cmd)


def ship_order(order: Order | None, cmd: ShipOrder, goodwill_percent: int) -> list[Event]:
    if order is None:
        raise Unhandleable(f"ShipOrder for {cmd.order_id}: no such order")
    return decisions.ship(order, cmd)


def record_allocation(order: Order | None, event: Event, goodwill_percent: int) -> list[Event]:
    if order is None:
        log.warning("allocation event for an unknown order skipped", order_id=event.order_id, type=type(event).__name__)
        return []
    return decisions.record_allocation(order, event, goodwill_percent)


USE_CASES: dict[type[BaseModel], UseCase] = {
    PlaceOrder: place_order,
    CancelOrder: cancel_order,
    ShipOrder: ship_order,
    StockReserved: record_allocation,
    BackorderCreated: record_allocation,
    BackorderEtaChanged: record_allocation,
    BackorderFulfilled: record_allocation,
    OutOfStock: record_allocation,
    StockReleased: record_allocation,
    ReservationRevoked: record_allocation,
    StockShipped: record_allocation,
}


def inbox_key(message: Message) -> str:
    # PlaceOrder is idempotent on order_id, and ShipOrder on shipment_id, whatever the message id. (Two
    # CancelOrders for one order are two requests: the second is refused if the first took everything.)
    match message.body:
        case PlaceOrder(order_id=order_id):
            return f"PlaceOrder:{order_id}"
        case ShipOrder(order_id=order_id, shipment_id=shipment_id):
            return f"ShipOrder:{order_id}:{shipment_id}"
    return message.envelope.id


async def handle(conn: asyncpg.Connection, messages: list[Message], goodwill_percent: int) -> None:
    orders: Streams[Order] = Streams(conn, Order)
    await orders.load(m.body.order_id for m in messages)
    for message in messages:
        order_id = message.body.order_id
        order = orders.get(order_id)
        events = USE_CASES[type(message.body)](order, message.body, goodwill_percent)
        for event in events:
            order = evolve(order, event)
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
        events = decisions.offer_goodwill_for_wait(order, today, wait_days, percent)
        for event in events:
            evolve(order, event)
        orders.record(order_id, order, events, review)
    changed = await orders.save()
    await projections.project(conn, changed.values())
    return len(changed)


class GoodwillReview(BaseModel):
    """The cause recorded on goodwill offered by the periodic review rather than by a message."""

    on: date


def parse_event(type_: str, data: str) -> Event:
    return ORDER_EVENTS[type_].model_validate_json(data)


async def rebuild(conn: asyncpg.Connection, progress: Callable[[int, int], None] = lambda done, total: None) -> None:
    """Drop and rebuild the read model from the event store; appends wait meanwhile."""
    async with conn.transaction():
        await lock_appends(conn)
        states = await replay(conn, parse_event, evolve, lambda _: None, progress)
        await projections.rebuild(conn, states.values())
