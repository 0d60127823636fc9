"""Days of the simulated year through the real services on Kafka, to show the wiring holds: the order and
inventory services run as processes on a broker and a database, on a simulated clock
(services/runtime/clock.py), and are sent through the public command topics what the in-process simulation
played on those days (its products, receipts, orders, and the buyer's purchase orders). What inventory
publishes is then compared, day by day and SKU by SKU, with what the simulation's domain and planning decided.

Each day: the clock is set to the morning, the day's receipts and then its orders are sent and their outcomes
awaited; the clock is set to the evening, when the service's daily ETA review and planning run (PLANNING_S
and ETA_REVIEW_S are a simulated day), and the buyer's purchase orders of that day follow the planning run,
as in the simulation. The demand and deliveries of the history period before the slice are written into the
planning tables directly, as the service would have recorded them (120 days of orders through Kafka would
take long and prove nothing more).

Orders of one SKU on one day may be allocated in any order (they travel on the order id's partitions), so
what is compared is per day and SKU: units backordered and their ETAs, ETA moves, units filled, and every
suggestion, lead time learned, supplier delay and overstock finding."""

import asyncio
import dataclasses
import shutil
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as time_of_day
from pathlib import Path

import asyncpg

from contracts import topics
from contracts.client import Client
from contracts.commands import PlaceOrder
from contracts.events import (
    BackorderCreated,
    BackorderEtaChanged,
    BackorderFulfilled,
    Event,
    LeadTimeLearned,
    OverstockDetected,
    ReplenishmentExpected,
    ReplenishmentSuggested,
    StockReceived,
    StockReserved,
    SupplierDelayDetected,
)
from infra import STATE, kafka, postgres
from infra.chaos import stack
from infra.ports import free_port
from infra.services import start_service, stop_services, wait_healthy
from infra.topics import create_topics
from services.runtime import db
from services.runtime.clock import SIMULATED_CLOCK, set_simulated_time
from simulation.run import START, Day, Script, Simulation
from simulation.world import HISTORY_DAYS, Product

MORNING = time_of_day(8)  # receipts and orders come in
EVENING = time_of_day(23, 30)  # the daily ETA review and planning; then the buyer's purchase orders
SIMULATED_DAY_S = str(24 * 3600)
SERVICES = ("order", "inventory")  # the notification service takes no part in what is compared
WAIT_S = 180  # for one phase of one day: a forecast in a busy worker may take a while

Key = tuple[date, str, str, object]  # day, SKU, what, its detail


def compared(events: Iterable[tuple[date, Event]]) -> Counter[Key]:
    """What is compared, per day and SKU: backordered units by ETA, units whose ETA moved by the new ETA,
    units filled, and each planning finding with its figures."""
    seen: Counter[Key] = Counter()
    for day, e in events:
        match e:
            case BackorderCreated():
                seen[day, e.sku, "backordered, ETA", e.estimated_ship_date] += e.quantity
            case BackorderEtaChanged():
                seen[day, e.sku, "ETA moved to", e.estimated_ship_date] += e.quantity
            case BackorderFulfilled():
                seen[day, e.sku, "filled", None] += e.quantity
            case ReplenishmentSuggested():
                seen[day, e.sku, "suggested (quantity, position, reorder point, expected)",
                     (e.quantity, e.position, e.reorder_point, e.expected_on)] += 1
            case LeadTimeLearned():
                seen[day, e.sku, "lead time learned (days, delay)", (e.lead_time_days, e.delay_days)] += 1
            case SupplierDelayDetected():
                seen[day, e.sku, "supplier delay (po, days)", (e.po_id, e.days_overdue)] += 1
            case OverstockDetected():
                seen[day, e.sku, "overstock (cover, excess)", (e.days_of_cover, e.excess)] += 1
    return seen


@dataclass
class SliceOutcome:
    days: int
    skus: int
    simulated: Counter[Key]  # what the in-process simulation decided
    published: Counter[Key]  # what the services published
    wall_s: float

    def differences(self) -> list[str]:
        lines = []
        for key in sorted(set(self.simulated) | set(self.published), key=str):
            if self.simulated[key] != self.published[key]:
                day, sku, what, detail = key
                lines.append(f"{day} {sku} {what} {detail if detail is not None else ''}: simulation "
                             f"{self.simulated[key]}, services {self.published[key]}")
        return lines

    def totals(self) -> dict[str, tuple[int, int]]:
        """Per kind of finding: (simulation, services), summed over days and SKUs."""
        kinds: dict[str, list[int]] = {}
        for source, counter in enumerate((self.simulated, self.published)):
            for (_, _, what, _), n in counter.items():
                kinds.setdefault(what, [0, 0])[source] += n
        return {what: (a, b) for what, (a, b) in sorted(kinds.items())}


def reference(catalogue: list[Product], days: int, seed: int) -> Script:
    """The in-process simulation of those days with planning, re-forecasting every day as the service does."""
    simulation = Simulation(catalogue, days, planning=True, seed=seed, forecast_every=1)
    simulation.run()
    return simulation.script


def renamed(catalogue: list[Product], prefix: str) -> list[Product]:
    """The catalogue with SKUs of a run of their own: a broker shared with other runs keeps them apart."""
    return [dataclasses.replace(p, sku=f"{prefix}{p.sku}") for p in catalogue]


class Inventory:
    """The inventory events of the slice's SKUs as they arrive, each with the simulated day it came on."""

    def __init__(self, client: Client, skus: set[str]) -> None:
        self.client, self.skus = client, skus
        self.today = START
        self.events: list[tuple[date, Event]] = []
        self.allocated: Counter[str] = Counter()  # order -> units reserved or backordered
        self.received: set[str] = set()
        self.expected: set[str] = set()

    async def collect(self) -> None:
        async for _, event in self.client.events(topics.INVENTORY_EVENTS, from_beginning=True):
            if getattr(event, "sku", None) not in self.skus:
                continue
            self.events.append((self.today, event))
            match event:
                case StockReserved() | BackorderCreated():
                    self.allocated[event.order_id] += event.quantity
                case StockReceived():
                    self.received.add(event.receipt_id)
                case ReplenishmentExpected():
                    self.expected.add(event.po_id)


async def until(what: str, done: Callable[[], bool | Awaitable[bool]], timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while True:
        result = done()
        if await result if isinstance(result, Awaitable) else result:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"the slice waited {timeout:.0f} s for {what}")
        await asyncio.sleep(0.05)


async def write_history(admin: asyncpg.Connection, catalogue: list[Product], script: Script) -> None:
    """The history period as the inventory service would have recorded it: daily demand, and the purchase
    orders delivered before the slice (what planning learns its first lead times from)."""
    schema = db.schema("inventory")
    first = START - timedelta(days=HISTORY_DAYS)
    demand = [(p.sku, first + timedelta(days=n), q) for p in catalogue for n, q in enumerate(p.demand[:HISTORY_DAYS])
              if q]
    await admin.executemany(f"INSERT INTO {schema}.demand_daily (sku, day, quantity) VALUES ($1, $2, $3)", demand)
    await admin.executemany(
        f"INSERT INTO {schema}.supplier_orders (sku, po_id, ordered_on, expected_on, received_on) "
        "VALUES ($1, $2, $3, $4, $5)",
        [(sku, d.po_id, d.ordered_on, d.expected_on, d.received_on)
         for sku, deliveries in script.past_deliveries.items() for d in deliveries])


@dataclass
class Slice:
    """A stack to play days on: a broker and an admin URL of a database for this slice alone."""

    bootstrap_servers: str
    admin_url: str
    folder: Path
    kafka_env: dict[str, str] = field(default_factory=dict)  # KAFKA_ENABLE_IDEMPOTENCE=false on Tansu
    log: Callable[[str], None] = print

    async def play(self, catalogue: list[Product], days: int, seed: int, prefix: str = "") -> SliceOutcome:
        catalogue = renamed(catalogue, prefix)
        started = time.monotonic()
        script = reference(catalogue, days, seed)
        self.log(f"  the simulation of {days} days in process: {time.monotonic() - started:.0f} s")
        logins = {f"{service.upper()}_DATABASE_URL": db.local_url(self.admin_url, service) for service in SERVICES}
        for service in SERVICES:
            await db.set_up(self.admin_url, service, logins[f"{service.upper()}_DATABASE_URL"])
        await create_topics(self.bootstrap_servers)
        admin = await asyncpg.connect(self.admin_url)
        clock = self.folder / "clock"
        set_simulated_time(clock, at(START - timedelta(days=1), EVENING))
        env = {"KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers, **self.kafka_env, **logins,
               SIMULATED_CLOCK: str(clock), "PLANNING_S": SIMULATED_DAY_S, "ETA_REVIEW_S": SIMULATED_DAY_S,
               "GOODWILL_REVIEW_S": SIMULATED_DAY_S, "KAFKA_SESSION_TIMEOUT_MS": "2000", "LOG_LEVEL": "warning",
               **{f"{service.upper()}_HTTP_PORT": str(free_port()) for service in SERVICES}}
        processes = {}
        try:
            await write_history(admin, catalogue, script)
            processes = {service: start_service(service, env, self.folder) for service in SERVICES}
            await asyncio.to_thread(wait_healthy, env, processes)
            played = time.monotonic()
            idempotent = self.kafka_env.get("KAFKA_ENABLE_IDEMPOTENCE") != "false"
            async with Client(self.bootstrap_servers, source="orderflow/simulation", idempotent=idempotent) as client:
                inventory = Inventory(client, {p.sku for p in catalogue})
                collecting = asyncio.create_task(inventory.collect())
                try:
                    for n in range(days):
                        today = START + timedelta(days=n)
                        await self._day(client, admin, inventory, clock, script, today, prefix, len(catalogue))
                        self.log(f"  day {n + 1}/{days} ({today}) through the services")
                finally:
                    collecting.cancel()
            self.log(f"  {days} days through the services: {time.monotonic() - played:.0f} s")
        finally:
            stop_services(processes)
            await admin.close()
        last = START + timedelta(days=days)
        return SliceOutcome(days, len(catalogue), compared((d, e) for d, e in script.published if d < last),
                            compared(inventory.events), time.monotonic() - started)

    async def _day(self, client: Client, admin: asyncpg.Connection, inventory: Inventory, clock: Path,
                   script: Script, today: date, prefix: str, skus: int) -> None:
        day = script.days.get(today, Day())
        set_simulated_time(clock, at(today, MORNING))
        inventory.today = today
        if today == START:
            for product in script.products:
                await client.send(product)
        for receipt in day.receipts:
            await client.send(receipt)
        await until(f"the receipts of {today}", lambda: {r.receipt_id for r in day.receipts} <= inventory.received)
        orders = [PlaceOrder(order_id=f"{prefix}{o.order_id}", customer_id=o.customer_id,
                             customer_email=o.customer_email, lines=o.lines) for o in day.orders]
        await asyncio.gather(*(client.send(order) for order in orders))
        await until(f"the orders of {today} allocated", lambda: all(
            inventory.allocated[o.order_id] == o.lines[0].quantity for o in orders))
        await self._published(admin, inventory)
        set_simulated_time(clock, at(today, EVENING))
        await until(f"the planning run of {today}", lambda: planned(admin, today, skus))
        await self._published(admin, inventory)
        for purchase in day.purchases:
            await client.send(purchase)
        await until(f"the purchase orders of {today}", lambda: {p.po_id for p in day.purchases} <= inventory.expected)
        await self._published(admin, inventory)

    async def _published(self, admin: asyncpg.Connection, inventory: Inventory) -> None:
        """Until every event the inventory service stored has come back from the topic."""
        stored = await admin.fetchval(f"SELECT count(*) FROM {db.schema('inventory')}.events")
        await until("the inventory's events published", lambda: len(inventory.events) >= stored)


async def planned(admin: asyncpg.Connection, today: date, skus: int) -> bool:
    return await admin.fetchval(f"SELECT count(*) FROM {db.schema('inventory')}.planning WHERE planned_on = $1",
                                today) >= skus


def at(day: date, when: time_of_day) -> datetime:
    return datetime.combine(day, when, tzinfo=UTC)


async def on_a_stack(catalogue: list[Product], days: int, seed: int, server_url: str, what: str = "PostgreSQL",
                     log: Callable[[str], None] = lambda line: print(line, flush=True)) -> SliceOutcome:
    """The slice on a broker of its own and a database of its own on the server of `server_url` (an admin's),
    both removed afterwards; the services' logs are kept when the services differ from the simulation."""
    run = stack.run_id()
    folder = STATE / "simulate" / run
    folder.mkdir(parents=True)
    log(f"a slice of {days} days through the services (run {run}, logs in {folder})")
    broker = await asyncio.to_thread(kafka.start_broker_on_free_ports, folder / "broker")
    name = f"orderflow_simulate_{run}"
    database_url = await postgres.create_database(server_url, name)
    log(f"  broker {broker.kind} on {broker.bootstrap_servers}; database {name} on {what}")
    try:
        kafka_env = {"KAFKA_ENABLE_IDEMPOTENCE": "false"} if broker.kind == "Tansu" else {}
        outcome = await Slice(broker.bootstrap_servers, database_url, folder, kafka_env, log).play(catalogue, days, seed)
    finally:
        broker.stop()
        await postgres.drop_database(database_url)
    if not outcome.differences():
        shutil.rmtree(folder, ignore_errors=True)
    return outcome
