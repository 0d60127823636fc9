"""Inventory use cases, one transaction per batch: products, receipts, expected replenishments, and the
allocation of every placed order line. SKU rows are locked for the batch: stock is never over-allocated."""

from datetime import date

import asyncpg

from contracts.commands import ExpectReplenishment, ReceiveStock, RegisterProduct
from contracts.events import INVENTORY_EVENTS, CancellationRequested, Event, OrderPlaced
from services.inventory import domain, projections
from services.inventory.domain import Sku
from services.runtime.eventstore import Streams, replay
from services.runtime.messages import Message


def inbox_key(message: Message) -> str:
    # Receipts and purchase orders are idempotent on the sender's id, whatever the message id.
    match message.body:
        case ReceiveStock(receipt_id=receipt_id):
            return f"ReceiveStock:{receipt_id}"
        case ExpectReplenishment(po_id=po_id):
            return f"ExpectReplenishment:{po_id}"
    return message.envelope.id


def _skus(message: Message) -> list[str]:
    match message.body:
        case OrderPlaced(lines=lines):
            return [line.sku for line in lines]
        case CancellationRequested(skus=skus):
            return skus
    return [message.body.sku]


async def handle(conn: asyncpg.Connection, messages: list[Message], today: date) -> None:
    skus: Streams[Sku] = Streams(conn, Sku)
    await skus.load(sku for m in messages for sku in _skus(m))

    def state(sku: str) -> Sku:
        return skus.get(sku) or Sku(sku=sku)

    for message in messages:
        body, cause = message.body, message.envelope
        match body:
            case OrderPlaced():
                for line in body.lines:
                    s = state(line.sku)
                    skus.record(line.sku, s, domain.allocate(s, body, line.quantity, today), cause)
            case CancellationRequested():
                for sku in body.skus:
                    s = state(sku)
                    skus.record(sku, s, domain.cancel(s, body.order_id, today), cause)
            case RegisterProduct():
                s = state(body.sku)
                skus.record(body.sku, s, domain.register_product(s, body), cause)
            case ReceiveStock():
                s = state(body.sku)
                skus.record(body.sku, s, domain.receive_stock(s, body, today), cause)
            case ExpectReplenishment():
                s = state(body.sku)
                skus.record(body.sku, s, domain.expect_replenishment(s, body, today), cause)
    changed = await skus.save()
    await projections.project(conn, changed.values(), today)


def parse_event(type_: str, data: str) -> Event:
    return INVENTORY_EVENTS[type_].model_validate_json(data)


async def rebuild_projections(conn: asyncpg.Connection, today: date) -> None:
    states = await replay(conn, parse_event, domain.evolve, lambda sku: Sku(sku=sku))
    await projections.rebuild(conn, states.values(), today)
