"""One simulated year through the inventory's domain (allocation, receipts, purchase orders, the daily ETA
review) and, with planning, its planning code: the same functions the service runs, on a simulated clock."""

import math
import random
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta

from contracts.commands import ExpectReplenishment, OrderLine, ReceiveStock, RegisterProduct
from contracts.events import (
    BackorderCreated,
    BackorderFulfilled,
    Event,
    OrderPlaced,
    ReplenishmentSuggested,
    StockReserved,
)
from services.inventory.domain import allocation, products, supply
from services.inventory.domain.state import Sku, apply
from services.inventory.planning import forecast as forecasting
from services.inventory.planning.forecast import Forecast
from services.inventory.planning.lead_times import Delivery, learn
from services.inventory.planning.policy import Memory, OpenOrder, decide, learned, plan
from simulation.world import HISTORY_DAYS, Product, shipment

START = date(2026, 1, 5)  # a Monday, the first simulated day
FORECAST_EVERY = 7  # days: a weekly re-forecast, as the service's planning job would
FORECAST_HORIZON = 35
PAST_DELIVERIES = 4  # per SKU, in the history period, expected after the product's lead time
NAIVE_COVER_DAYS = 30  # without planning, a SKU that runs out is reordered for a month of its usual demand


@dataclass
class Outcome:
    demanded: int = 0
    backordered: int = 0
    lines: int = 0
    lines_from_stock: int = 0
    on_hand_days: int = 0  # units on hand summed over SKUs and days
    sku_days: int = 0
    promised: dict[str, tuple[int, date]] = field(default_factory=dict)  # backorder -> units, first ETA
    kept_units: int = 0
    due_units: int = 0  # backordered units filled, or whose first ETA has passed
    purchase_orders: int = 0
    findings: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def figures(self) -> dict[str, float]:
        return {
            "backorder_rate": self.backordered / self.demanded,
            "fill_rate": self.lines_from_stock / self.lines,
            "mean_on_hand": self.on_hand_days / self.sku_days,
            "eta_kept": self.kept_units / self.due_units if self.due_units else 1.0,
        }


@dataclass
class OpenPurchase:
    po_id: str
    sku: str
    quantity: int
    ordered_on: date
    expected_on: date
    arrivals: list[tuple[date, int, bool]]  # day, units, closes the purchase order


@dataclass
class Day:
    """The commands of one simulated day, in the order the simulation applied them: the receipts in the
    morning, the orders, and the buyer's purchase orders after the day's planning."""

    receipts: list[ReceiveStock] = field(default_factory=list)
    orders: list[OrderPlaced] = field(default_factory=list)
    purchases: list[ExpectReplenishment] = field(default_factory=list)


@dataclass
class Script:
    """What a run did, to be played again through the real services (simulation/slice.py): the products,
    the deliveries of the history period, each day's commands, and every event the domain decided."""

    products: list[RegisterProduct] = field(default_factory=list)
    past_deliveries: dict[str, list[Delivery]] = field(default_factory=dict)
    days: dict[date, Day] = field(default_factory=lambda: defaultdict(Day))
    published: list[tuple[date, Event]] = field(default_factory=list)

    def day(self, today: date) -> Day:
        return self.days[today]


def _history(p: Product, n: int) -> list[int]:
    """The demand planning reads on day n, as the service's history does: the forecast window's days before
    today, from the first with demand (services/inventory/history.demand)."""
    window = list(p.demand[max(0, HISTORY_DAYS + n - forecasting.WINDOW):HISTORY_DAYS + n])
    first = next((i for i, q in enumerate(window) if q), len(window))
    return window[first:]


class Simulation:
    """The warehouse of one scenario: SKU states evolved only through the domain's decisions."""

    def __init__(self, catalogue: list[Product], days: int, planning: bool, seed: int,
                 forecast_every: int = FORECAST_EVERY) -> None:
        self.catalogue = {p.sku: p for p in catalogue}
        self.days, self.planning, self.forecast_every = days, planning, forecast_every
        self.rnd = random.Random(seed)  # suppliers and the buyer; demand is the same in both scenarios
        self.skus: dict[str, Sku] = {}
        self.outcome = Outcome()
        self.open: dict[str, OpenPurchase] = {}
        self.deliveries: dict[str, list[Delivery]] = defaultdict(list)
        self.memory: dict[str, Memory] = defaultdict(Memory)
        self.forecasts: dict[str, Forecast] = {}
        self.buyer: list[tuple[date, ReplenishmentSuggested]] = []
        self.order_seq = 0
        self.script = Script()
        for p in catalogue:
            self.deliveries[p.sku] = self._past_deliveries(p)
            self.script.past_deliveries[p.sku] = list(self.deliveries[p.sku])
            state = self.skus[p.sku] = Sku(sku=p.sku)
            registration = RegisterProduct(sku=p.sku, name=p.sku, lead_time_days=p.lead_time_days)
            self.script.products.append(registration)
            self._apply(state, products.register_product(state, registration, START), START)
            opening = math.ceil(p.history_mean * NAIVE_COVER_DAYS)
            if opening:
                self._receive(p.sku, f"opening-{p.sku}", opening, None, START)

    def _past_deliveries(self, p: Product) -> list[Delivery]:
        """Deliveries of the history period, as the service would have recorded them: what planning learns
        its first lead times from (without planning nobody looks at them)."""
        past = []
        for n in range(PAST_DELIVERIES):
            ordered = START - timedelta(days=HISTORY_DAYS - n * HISTORY_DAYS // PAST_DELIVERIES)
            how = shipment(self.rnd, p)
            past.append(Delivery(f"past-{p.sku}-{n}", ordered, ordered + timedelta(days=p.lead_time_days),
                                 ordered + timedelta(days=how.days + how.rest_after)))
        return past

    def run(self) -> Outcome:
        for n in range(self.days):
            today = START + timedelta(days=n)
            self._arrivals(today)
            for p in self.catalogue.values():
                self._orders(p, p.demand[HISTORY_DAYS + n], today)
            self._ship(today)
            self._review(today)
            if self.planning:
                self._plan(n, today)
            else:
                self._reorder_when_out(today)
            self.outcome.on_hand_days += sum(s.on_hand for s in self.skus.values())
            self.outcome.sku_days += len(self.skus)
        end = START + timedelta(days=self.days)
        self.outcome.due_units += sum(q for q, eta in self.outcome.promised.values() if eta < end)
        return self.outcome

    def _apply(self, state: Sku, events: list[Event], today: date) -> None:
        apply(state, events)
        self.script.published.extend((today, e) for e in events)
        for e in events:
            if isinstance(e, BackorderCreated):
                self.outcome.promised[e.order_id] = (e.quantity, e.estimated_ship_date)
            elif isinstance(e, BackorderFulfilled):
                quantity, first_eta = self.outcome.promised[e.order_id]
                self.outcome.kept_units += e.quantity if today <= first_eta else 0
                self.outcome.due_units += e.quantity
                self.outcome.promised[e.order_id] = (quantity - e.quantity, first_eta)

    def _orders(self, p: Product, demand: int, today: date) -> None:
        """Today's demand as orders of one to four units."""
        state = self.skus[p.sku]
        while demand > 0:
            quantity = min(demand, self.rnd.randint(1, 4))
            demand -= quantity
            self.order_seq += 1
            order = OrderPlaced(order_id=f"o{self.order_seq}", customer_id="c", customer_email="c@example.com",
                                lines=[OrderLine(sku=p.sku, quantity=quantity)])
            self.script.day(today).orders.append(order)
            events = allocation.allocate(state, order, quantity, today)
            self._apply(state, events, today)
            reserved = sum(e.quantity for e in events if isinstance(e, StockReserved))
            self.outcome.demanded += quantity
            self.outcome.backordered += quantity - reserved
            self.outcome.lines += 1
            self.outcome.lines_from_stock += reserved == quantity

    def _ship(self, today: date) -> None:
        """The warehouse ships everything reserved or filled the same day."""
        for state in self.skus.values():
            for held in list(state.reservations.values()):
                self._apply(state, allocation.ship(state, held.order_id, held.held, today), today)

    def _review(self, today: date) -> None:
        """The daily ETA review the service runs."""
        for state in self.skus.values():
            overdue = [b.order_id for b in state.queue.values() if b.eta < today]
            if overdue or any(r.expected_on < today for r in state.replenishments):
                self._apply(state, supply.review_overdue(state, today, overdue), today)

    def _arrivals(self, today: date) -> None:
        for po in list(self.open.values()):
            for day, units, closes in [a for a in po.arrivals if a[0] == today]:
                self._receive(po.sku, f"{po.po_id}-{day}", units, po.po_id if closes else None, today)
                if closes:
                    del self.open[po.po_id]
                    self.deliveries[po.sku].append(Delivery(po.po_id, po.ordered_on, po.expected_on, today))

    def _receive(self, sku: str, receipt_id: str, quantity: int, po_id: str | None, today: date) -> None:
        state = self.skus[sku]
        cmd = ReceiveStock(receipt_id=receipt_id, sku=sku, quantity=quantity, po_id=po_id)
        self.script.day(today).receipts.append(cmd)
        self._apply(state, allocation.receive_stock(state, cmd, today), today)

    def _purchase(self, sku: str, quantity: int, expected_on: date, today: date) -> None:
        """The buyer's purchase order; the supplier decides when it really comes, and in how many parts."""
        self.outcome.purchase_orders += 1
        po_id = f"po-{sku}-{self.outcome.purchase_orders}"
        how = shipment(self.rnd, self.catalogue[sku])
        first = max(1, round(quantity * how.first_share)) if how.rest_after else quantity
        arrive = today + timedelta(days=how.days)
        arrivals = [(arrive, first, not how.rest_after)]
        if how.rest_after:
            arrivals.append((arrive + timedelta(days=how.rest_after), quantity - first, True))
        self.open[po_id] = OpenPurchase(po_id, sku, quantity, today, expected_on, arrivals)
        state = self.skus[sku]
        cmd = ExpectReplenishment(po_id=po_id, sku=sku, quantity=quantity, expected_on=expected_on)
        self.script.day(today).purchases.append(cmd)
        self._apply(state, supply.expect_replenishment(state, cmd, today), today)

    def _reorder_when_out(self, today: date) -> None:
        """Without planning: a SKU that ran out, with nothing on order, is reordered for a month of its usual
        demand, expected after the product's lead time."""
        for sku, state in self.skus.items():
            p = self.catalogue[sku]
            if state.available <= 0 and not state.replenishments:
                quantity = max(1, math.ceil(p.history_mean * NAIVE_COVER_DAYS))
                self._purchase(sku, quantity, today + timedelta(days=p.lead_time_days), today)

    def _plan(self, n: int, today: date) -> None:
        """The planning job at the end of each day, as the service's (services/inventory/handlers.plan_skus):
        a forecast (weekly here, to keep a year quick), then for every SKU the lead time its deliveries
        taught, where it stands and what to tell; the buyer turns each suggestion into a purchase order after
        a review of one to three days, for the date planning called credible."""
        if n % self.forecast_every == 0:
            self.forecasts = forecasting.forecast({p.sku: _history(p, n) for p in self.catalogue.values()},
                                                  FORECAST_HORIZON)
        for sku, state in self.skus.items():
            lead = learn(self.deliveries[sku], self.catalogue[sku].lead_time_days)
            for told in learned(state, lead):
                self._apply(state, supply.learn_lead_time(state, told, today), today)
            open_orders = [OpenOrder(po.po_id, po.ordered_on, po.expected_on) for po in self.open.values()
                           if po.sku == sku]
            events, self.memory[sku] = decide(plan(state, self.forecasts[sku], lead), lead, open_orders,
                                              self.memory[sku], today)
            self.script.published.extend((today, e) for e in events)
            for e in events:
                self.outcome.findings[type(e).__name__] += 1
                if isinstance(e, ReplenishmentSuggested):
                    self.buyer.append((today + timedelta(days=self.rnd.randint(1, 3)), e))
        for _, suggestion in [b for b in self.buyer if b[0] <= today]:
            lead = learn(self.deliveries[suggestion.sku], self.catalogue[suggestion.sku].lead_time_days)
            self._purchase(suggestion.sku, suggestion.quantity, today + timedelta(days=lead.quantile_days), today)
        self.buyer = [b for b in self.buyer if b[0] > today]

