"""Inventory use cases, one transaction per batch: products, receipts, expected replenishments, and the
allocation of every placed order line. SKU rows are locked for the batch: stock is never over-allocated."""

from collections.abc import Callable
from datetime import date
from functools import partial

import asyncpg

from contracts.commands import (
    AdjustStock,
    CancelReplenishment,
    DiscontinueProduct,
    ExpectReplenishment,
    ReceiveStock,
    RegisterProduct,
    RescheduleReplenishment,
    UpdateProduct,
)
from contracts.events import INVENTORY_EVENTS, CancellationRequested, Event, OrderPlaced
from services.inventory import domain, projections
from services.inventory.domain import Sku
from services.runtime.eventstore import Streams, lock_appends, replay
from services.runtime.messages import Message, Unhandleable


def inbox_key(message: Message) -> str:
    # Receipts and purchase orders are idempotent on the sender's id (per SKU: one purchase order or
    # receipt may cover several), whatever the message id.
    match message.body:
        case ReceiveStock(receipt_id=receipt_id, sku=sku):
            return f"ReceiveStock:{receipt_id}:{sku}"
        case ExpectReplenishment(po_id=po_id, sku=sku):
            return f"ExpectReplenishment:{po_id}:{sku}"
    return message.envelope.id


Decision = Callable[[Sku], list[Event]]


def _decisions(body: object, today: date) -> list[tuple[str, Decision]]:
    """What a message asks of each SKU it concerns."""
    match body:
        case OrderPlaced():
            return [(line.sku, partial(domain.allocate, order=body, quantity=line.quantity, today=today))
                    for line in body.lines]
        case CancellationRequested():
            return [(sku, partial(domain.cancel, order_id=body.order_id, today=today)) for sku in body.skus]
        case RegisterProduct():
            return [(body.sku, partial(domain.register_product, cmd=body))]
        case UpdateProduct():
            return [(body.sku, partial(domain.update_product, cmd=body, today=today))]
        case DiscontinueProduct():
            return [(body.sku, partial(domain.discontinue_product, cmd=body, today=today))]
        case ReceiveStock():
            return [(body.sku, partial(domain.receive_stock, cmd=body, today=today))]
        case AdjustStock():
            return [(body.sku, partial(domain.adjust_stock, cmd=body, today=today))]
        case ExpectReplenishment():
            return [(body.sku, partial(domain.expect_replenishment, cmd=body, today=today))]
        case RescheduleReplenishment():
            return [(body.sku, partial(domain.reschedule_replenishment, cmd=body, today=today))]
        case CancelReplenishment():
            return [(body.sku, partial(domain.cancel_replenishment, cmd=body, today=today))]
    raise TypeError(f"inventory does not handle {type(body).__name__}")


async def handle(conn: asyncpg.Connection, messages: list[Message], today: date) -> None:
    decided = [(message, _decisions(message.body, today)) for message in messages]
    skus: Streams[Sku] = Streams(conn, Sku)
    await skus.load(sku for _, decisions in decided for sku, _ in decisions)

    def state(sku: str) -> Sku:
        return skus.get(sku) or Sku(sku=sku)

    shown_before = {}
    last_cause = {}
    for message, decisions in decided:
        for sku, decide in decisions:
            current = state(sku)
            shown_before.setdefault(sku, domain.availability(current, today))
            try:
                events = decide(current)
            except domain.UnknownProduct as error:
                raise Unhandleable(str(error)) from None
            skus.record(sku, current, events, message.envelope)
            last_cause[sku] = message.envelope
    # Storefronts hear of a change in what they should show once per SKU and batch, not per order.
    for sku, cause in last_cause.items():
        skus.record(sku, state(sku), domain.availability_changes(shown_before[sku], state(sku), today), cause)
    changed = await skus.save()
    await projections.project(conn, changed.values(), today)


def parse_event(type_: str, data: str) -> Event:
    return INVENTORY_EVENTS[type_].model_validate_json(data)


async def rebuild_projections(conn: asyncpg.Connection, today: date) -> None:
    """Drop and rebuild the read model from the event store; appends wait meanwhile."""
    async with conn.transaction():
        await lock_appends(conn)
        states = await replay(conn, parse_event, domain.evolve, lambda sku: Sku(sku=sku))
        await projections.rebuild(conn, states.values(), today)
