"""Inventory use cases, one transaction per batch: products, receipts, counts, purchase orders, and the
allocation, cancellation and shipping of placed orders. SKU roots are locked for the batch: stock is never
over-allocated. Which message does what is the table USE_CASES."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from functools import partial

import asyncpg
from pydantic import BaseModel

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
from contracts.envelope import Envelope
from contracts.events import INVENTORY_EVENTS, CancellationRequested, Event, OrderPlaced, OrderShipped
from services.inventory import history, projections, store
from services.inventory.domain import allocation, availability, products, supply
from services.inventory.domain.state import NotLoaded, Refused, Sku, evolve
from services.inventory.planning import lead_times, policy
from services.inventory.planning.forecast import Forecast
from services.inventory.store import Batch, Want
from services.runtime.eventstore import lock_appends, replay
from services.runtime.messages import Message, Unhandleable


@dataclass(frozen=True)
class Step:
    """What a message asks of one SKU, and what of the SKU that needs loaded."""

    sku: str
    decide: Callable[[Sku], list[Event]]
    order_id: str | None = None  # the order whose rows it reads
    walks_queue: bool = True  # reads the head of the queue (fills, ETAs)
    counts: bool = False  # reads every reservation


def place_order(e: OrderPlaced, today: date) -> list[Step]:
    return [Step(line.sku, partial(allocation.allocate, order=e, quantity=line.quantity, today=today),
                 walks_queue=False) for line in e.lines]


def cancel_order(e: CancellationRequested, today: date) -> list[Step]:
    # Beyond the supply-covered head a cancellation walks nothing: the head is loaded only if it asks.
    return [Step(sku, partial(allocation.cancel, order_id=e.order_id, today=today), order_id=e.order_id,
                 walks_queue=False) for sku in e.skus]


def ship_order(e: OrderShipped, today: date) -> list[Step]:
    return [Step(line.sku, partial(allocation.ship, order_id=e.order_id, quantity=line.quantity, today=today),
                 order_id=e.order_id, walks_queue=False) for line in e.lines]


def count_stock(cmd: AdjustStock, today: date) -> list[Step]:
    return [Step(cmd.sku, partial(allocation.adjust_stock, cmd=cmd, today=today), counts=True)]


def per_sku(decide: Callable[..., list[Event]]) -> Callable[[BaseModel, date], list[Step]]:
    """A command about one SKU, decided by `decide(state, cmd=..., today=...)`."""
    return lambda cmd, today: [Step(cmd.sku, partial(decide, cmd=cmd, today=today))]


USE_CASES: dict[type[BaseModel], Callable[[BaseModel, date], list[Step]]] = {
    OrderPlaced: place_order,
    CancellationRequested: cancel_order,
    OrderShipped: ship_order,
    RegisterProduct: per_sku(products.register_product),
    UpdateProduct: per_sku(products.update_product),
    DiscontinueProduct: per_sku(products.discontinue_product),
    ReceiveStock: per_sku(allocation.receive_stock),
    AdjustStock: count_stock,
    ExpectReplenishment: per_sku(supply.expect_replenishment),
    RescheduleReplenishment: per_sku(supply.reschedule_replenishment),
    CancelReplenishment: per_sku(supply.cancel_replenishment),
}


def inbox_key(message: Message) -> str:
    # Receipts and purchase orders are idempotent on the sender's id (per SKU: one purchase order or
    # receipt may cover several), whatever the message id.
    match message.body:
        case ReceiveStock(receipt_id=receipt_id, sku=sku):
            return f"ReceiveStock:{receipt_id}:{sku}"
        case ExpectReplenishment(po_id=po_id, sku=sku):
            return f"ExpectReplenishment:{po_id}:{sku}"
    return message.envelope.id


async def handle(conn: asyncpg.Connection, messages: list[Message], today: date) -> None:
    planned = [(message.envelope, USE_CASES[type(message.body)](message.body, today)) for message in messages]
    wants: dict[str, Want] = {}
    for _, steps in planned:
        for step in steps:
            want = wants.setdefault(step.sku, Want())
            want.orders |= {step.order_id} if step.order_id else set()
            if step.walks_queue and want.head_rows == 0:
                want.head_rows = store.FIRST_HEAD_ROWS
            want.all_reservations |= step.counts
    await _decide_and_save(conn, wants, planned, today)


async def review_overdue_etas(conn: asyncpg.Connection, today: date, limit: int = 1000) -> int:
    """Move each ETA that passed without supply to the next credible date, once; returns how many SKUs had
    such ETAs."""
    wants = await store.overdue(conn, today, limit)
    review = Envelope.wrap(EtaReview(on=today), source="orderflow/inventory")
    planned = [(review, [Step(sku, partial(supply.review_overdue, today=today, order_ids=want.orders), walks_queue=False)
                         for sku, want in wants.items()])]
    return len(await _decide_and_save(conn, wants, planned, today))


class EtaReview(BaseModel):
    """The cause recorded on ETAs moved by the daily review rather than by a message."""

    on: date


class PlanningRun(BaseModel):
    """The cause recorded on what a planning run found and learned."""

    on: date


async def plan_skus(conn: asyncpg.Connection, skus: list[str], forecasts: dict[str, Forecast], today: date,
                    settings: policy.Settings) -> int:
    """For each SKU: the lead time its deliveries taught (ETAs resting on it move), then where it stands and
    what to tell: a replenishment suggestion, overstock, a late purchase order, each once. Saves the plans.
    What was told and the purchase orders are read with the SKUs locked: a run of another instance that
    overlapped this one has told what it found, and it is not told again."""
    await conn.execute(store.LOCK_ROOTS, sorted(skus))
    delivered, open_orders = await history.supplier_orders(conn, skus)
    memories = await history.memories(conn, skus)
    plans: dict[str, tuple] = {}

    def plan_one(state: Sku) -> list[Event]:
        sku = state.sku
        lead = lead_times.learn(delivered.get(sku, []), state.product.lead_time_days)
        learned = [e for told in policy.learned(state, lead) for e in supply.learn_lead_time(state, told, today)]
        forecast = forecasts.get(sku) or Forecast((0.0,), 0.0, "none")
        where = policy.plan(state, forecast, lead, settings)
        findings, memory = policy.decide(where, lead, open_orders.get(sku, []), memories.get(sku, policy.Memory()),
                                         today, settings)
        plans[sku] = (state.product.name, where, forecast, memory)  # the last decision, if made again
        return learned + findings

    run = Envelope.wrap(PlanningRun(on=today), source="orderflow/inventory")
    await _decide_and_save(conn, {sku: Want() for sku in skus}, [(run, [Step(sku, plan_one, walks_queue=False)
                                                                         for sku in skus])], today)
    await history.save_plans(conn, list(plans.values()), today)
    return len(plans)


async def _decide_and_save(conn: asyncpg.Connection, wants: dict[str, Want],
                           planned: list[tuple[Envelope, list[Step]]], today: date) -> list[Sku]:
    batch = Batch(conn)
    while True:
        await batch.load(wants)
        missing = _decide(batch, planned, today)
        if not missing:
            break
        for sku, more in missing.items():  # decide again with more of those SKUs loaded
            wants[sku].widen(more)
    changed = await batch.save()
    await projections.project(conn, changed, today)
    await history.record(conn, batch.events, today)
    return changed


def _decide(batch: Batch, planned: list[tuple[Envelope, list[Step]]], today: date) -> dict[str, NotLoaded]:
    """Every step's decision in message order, each applied before the next decides; then availability
    changes, once per SKU and batch, not per order. Returns what each SKU that needs more loaded needs (the
    other SKUs decided on meanwhile: one reload for all of them, not one each, while their roots are locked)."""
    shown_before, last_cause = {}, {}
    missing: dict[str, NotLoaded] = {}
    for cause, steps in planned:
        for step in steps:
            if step.sku in missing:
                continue
            state = batch.skus[step.sku]
            shown_before.setdefault(step.sku, availability.availability(state, today))
            try:
                events = step.decide(state)
            except Refused as refused:
                raise Unhandleable(str(refused)) from None
            except NotLoaded as more:
                missing[step.sku] = more
                continue
            for event in events:
                evolve(state, event)
            batch.record(step.sku, events, cause)
            last_cause[step.sku] = cause
    if missing:
        return missing
    for sku, cause in last_cause.items():
        batch.record(sku, availability.availability_changes(shown_before[sku], batch.skus[sku], today), cause)
    return {}


def parse_event(type_: str, data: str) -> Event:
    return INVENTORY_EVENTS[type_].model_validate_json(data)


async def replay_skus(conn: asyncpg.Connection, progress: Callable[[int, int], None] = lambda done, total: None
                      ) -> dict[str, Sku]:
    """Every SKU folded from its first event."""
    return await replay(conn, parse_event, evolve, lambda sku: Sku(sku=sku), progress)


async def rebuild(conn: asyncpg.Connection, today: date,
                  progress: Callable[[int, int], None] = lambda done, total: None) -> None:
    """Rebuild the SKU rows and the read model from the event store; appends wait meanwhile."""
    async with conn.transaction():
        await lock_appends(conn)
        states = await replay_skus(conn, progress)
        await store.rewrite(conn, list(states.values()))
        await projections.rebuild(conn, states.values(), today)
