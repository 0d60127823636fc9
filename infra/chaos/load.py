"""A steady mixed load at a set rate of orders, through the public command topics: orders in stock, partial
and backordered (and some refused), with receipts, purchase orders and their reschedules and cancellations,
order cancellations, stock counts, shipments and product changes in between. Every command is sent until
the broker takes it, the same record again after a failure (a broker that stops for a while holds the load
up; it loses none of it)."""

import asyncio
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

from aiokafka import AIOKafkaProducer
from pydantic import BaseModel

from contracts import topics
from contracts.commands import (
    AdjustStock,
    CancelOrder,
    CancelReplenishment,
    DiscontinueProduct,
    ExpectReplenishment,
    OrderLine,
    PlaceOrder,
    ReceiveStock,
    RegisterProduct,
    RescheduleReplenishment,
    ShipmentLine,
    ShipOrder,
    UpdateProduct,
)
from contracts.envelope import STRUCTURED_CONTENT_TYPE, Envelope

STRUCTURED_MODE = [("content-type", STRUCTURED_CONTENT_TYPE.encode())]

# Per order placed, how likely each other command is sent beside it.
MIX = {
    "ship": 0.10,
    "cancel": 0.06,
    "receive": 0.08,
    "expect": 0.02,
    "reschedule": 0.01,
    "cancel_po": 0.004,
    "count": 0.01,
    "update_product": 0.002,
    "resend_order": 0.01,  # the same PlaceOrder again, a new message id: placed once
}


@dataclass
class Sent:
    """What the load sent and the broker took, by command type."""

    commands: Counter = field(default_factory=Counter)
    orders: list[str] = field(default_factory=list)  # placed, in order
    retries: int = 0


class Load:
    def __init__(self, bootstrap_servers: str, skus: int, seed: int,
                 on_hand: Callable[[str], Awaitable[int]]) -> None:
        self._bootstrap = bootstrap_servers
        self._on_hand = on_hand  # what the warehouse holds of a SKU now, for counts that find about as much
        self._random = random.Random(seed)
        self.skus = [f"SKU-{i:03}" for i in range(skus)]
        self.sent = Sent()
        self._placed: dict[str, PlaceOrder] = {}  # once the broker took it
        self._placed_ids: list[str] = []  # the same, in the order taken
        self._open_pos: dict[str, str] = {}  # po -> SKU, once the broker took it
        self._in_flight: set[asyncio.Task] = set()
        self._counter = 0

    async def __aenter__(self) -> "Load":
        self._producer = AIOKafkaProducer(bootstrap_servers=self._bootstrap, acks="all", linger_ms=5,
                                          enable_idempotence=False, request_timeout_ms=10_000)
        await self._producer.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self._producer.stop()

    async def set_up(self, stock_per_sku: int) -> None:
        """The catalogue: most products backorderable, every tenth not (its lines are refused when short),
        some alternatives; stock for most, none for some (their orders wait at once)."""
        for i, sku in enumerate(self.skus):
            self._send(RegisterProduct(sku=sku, name=f"Product {i}", lead_time_days=5 + i % 15,
                                       backorderable=i % 10 != 9, safety_stock=2,
                                       alternatives=[self.skus[(i + 1) % len(self.skus)]]))
        for i, sku in enumerate(self.skus):
            if i % 7:
                self._send(ReceiveStock(receipt_id=self._id("rcpt"), sku=sku, quantity=stock_per_sku))
        await self.drain()

    async def run(self, orders: int, rate: float, on_order=lambda i: None) -> None:
        """Place `orders` orders at `rate` a second, the other commands in between; returns once the broker
        took them all."""
        started = time.monotonic()
        for i in range(orders):
            if (ahead := started + i / rate - time.monotonic()) > 0:
                await asyncio.sleep(ahead)
            self._place()
            for kind, chance in MIX.items():
                if self._random.random() < chance:
                    getattr(self, f"_{kind}")()
            if i == orders // 2:
                self._send(DiscontinueProduct(sku=self.skus[1], reason="the supplier stopped making it"))
            on_order(i)
        await self.drain()

    async def drain(self) -> None:
        while self._in_flight:
            await asyncio.gather(*list(self._in_flight))

    def _id(self, prefix: str) -> str:
        self._counter += 1
        return f"{prefix}-{self._counter}"

    def _place(self) -> None:
        r = self._random
        order_id = self._id("ord")
        skus = r.sample(self.skus, r.choice((1, 1, 2, 2, 3)))
        priced = r.random() < 0.3
        order = PlaceOrder(order_id=order_id, customer_id=f"c-{order_id}", customer_email=f"{order_id}@example.com",
                           lines=[OrderLine(sku=s, quantity=r.randint(1, 4),
                                            unit_price=Decimal(f"{r.randint(100, 9999)}.99") / 100 if priced else None)
                                  for s in skus],
                           currency="EUR" if priced else None, allow_backorder=r.random() > 0.1)
        self.sent.orders.append(order_id)
        self._send(order, on_taken=lambda: self._taken(order))

    def _taken(self, order: PlaceOrder) -> None:
        self._placed[order.order_id] = order
        self._placed_ids.append(order.order_id)

    def _resend_order(self) -> None:
        if self._placed:
            # A storefront's retry: the same order again, in a message of its own.
            self._send(self._placed[self._random.choice(self._placed_ids[-50:])])

    def _an_order(self) -> tuple[str, list[str]] | None:
        """One the broker took, more likely a recent one."""
        if not self._placed:
            return None
        recent = self._placed_ids[-500:]
        order_id = recent[int(len(recent) * self._random.random() ** 0.5)]
        return order_id, [line.sku for line in self._placed[order_id].lines]

    def _ship(self) -> None:
        if picked := self._an_order():
            order_id, skus = picked
            lines = None if self._random.random() < 0.8 else [ShipmentLine(sku=skus[0], quantity=1)]
            self._send(ShipOrder(order_id=order_id, shipment_id=self._id("shp"), lines=lines, carrier="DHL",
                                 tracking_number=self._id("JD")))

    def _cancel(self) -> None:
        if picked := self._an_order():
            order_id, skus = picked
            sku = self._random.choice(skus) if self._random.random() < 0.5 else None
            self._send(CancelOrder(order_id=order_id, sku=sku, reason="changed my mind"))

    def _receive(self) -> None:
        sku = self._random.choice(self.skus)
        po_id = next((po for po, s in self._open_pos.items() if s == sku), None)
        if po_id and self._random.random() < 0.5:
            del self._open_pos[po_id]
        else:
            po_id = None
        self._send(ReceiveStock(receipt_id=self._id("rcpt"), sku=sku, quantity=self._random.randint(10, 80),
                                po_id=po_id))

    def _expect(self) -> None:
        sku, po_id = self._random.choice(self.skus), self._id("po")
        self._send(ExpectReplenishment(po_id=po_id, sku=sku, quantity=self._random.randint(10, 60),
                                       expected_on=date.today() + timedelta(days=self._random.randint(2, 30))),
                   on_taken=lambda: self._open_pos.__setitem__(po_id, sku))

    def _reschedule(self) -> None:
        if self._open_pos:
            po_id = self._random.choice(list(self._open_pos))
            self._send(RescheduleReplenishment(po_id=po_id, sku=self._open_pos[po_id],
                                               expected_on=date.today() + timedelta(days=self._random.randint(1, 40))))

    def _cancel_po(self) -> None:
        if self._open_pos:
            po_id = self._random.choice(list(self._open_pos))
            self._send(CancelReplenishment(po_id=po_id, sku=self._open_pos.pop(po_id)))

    def _count(self) -> None:
        """A count finds a few units fewer or more than the books say, as counts do; one that found far fewer
        would send a SKU's every reservation back to the queue."""
        sku, off_by = self._random.choice(self.skus), self._random.randint(-3, 3)

        async def count() -> None:
            counted = max(0, await self._on_hand(sku) + off_by)
            self._send(AdjustStock(sku=sku, counted_quantity=counted, reason="cycle count"))

        task = asyncio.create_task(count())
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    def _update_product(self) -> None:
        self._send(UpdateProduct(sku=self._random.choice(self.skus), lead_time_days=self._random.randint(3, 25)))

    def _send(self, command: BaseModel, on_taken=lambda: None) -> None:
        topic, key = ((topics.ORDERS_COMMANDS, command.order_id) if hasattr(command, "order_id")
                      else (topics.INVENTORY_COMMANDS, command.sku))
        value = Envelope.wrap(command, source="chaos", subject=key).to_bytes()
        task = asyncio.create_task(self._until_taken(topic, value, key, type(command).__name__, on_taken))
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    async def _until_taken(self, topic: str, value: bytes, key: str, type_: str, on_taken) -> None:
        while True:
            try:
                await self._producer.send_and_wait(topic, value, key=key.encode(), headers=STRUCTURED_MODE)
                break
            except Exception:  # the broker is away: the same record again, its id unchanged
                self.sent.retries += 1
                await asyncio.sleep(1)
        self.sent.commands[type_] += 1
        on_taken()
