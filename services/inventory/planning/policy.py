"""Safety stock, reorder point and the stock position of a SKU, its status, and the findings published once
each: ReplenishmentSuggested, OverstockDetected, SupplierDelayDetected, LeadTimeLearned."""

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from statistics import NormalDist
from typing import Literal

from contracts.events import (
    Event,
    LeadTimeLearned,
    OverstockDetected,
    ReplenishmentSuggested,
    SupplierDelayDetected,
)
from services.inventory.domain.state import Sku
from services.inventory.planning.forecast import Forecast
from services.inventory.planning.lead_times import LeadTime, days_overdue

Status = Literal["ok", "reorder", "at_risk", "overstock"]


@dataclass(frozen=True, slots=True)
class Settings:
    overstock_days: int = 90  # more days of cover than this is overstock
    cycle_days: int = 7  # a suggestion brings the position up to the reorder point plus this many days of demand
    material_change: float = 0.5  # a suggestion is repeated only when the need grew by this share of it


@dataclass(frozen=True, slots=True)
class Plan:
    sku: str
    available: int  # on hand less reserved
    on_order: int  # open purchase orders
    backordered: int  # waiting backorders
    position: int  # available + on order - backordered
    daily_demand: float
    days_of_cover: float  # available stock over forecast daily demand
    lead_time_days: float
    safety_stock: int
    reorder_point: int
    target_level: int
    status: Status


def safety_stock(daily_demand: float, demand_std: float, lead: LeadTime, service_level: float,
                 cycle_demand: float) -> int:
    """z × √(L·σd² + d²·σL²): the spread of demand over a lead time (demand and lead-time variability) times
    the z that serves `service_level` of the demand from stock. The units short in a replenishment cycle are
    spread × G(z) (G the standard normal loss function); z is the smallest that keeps them to (1 − service
    level) of the demand of a cycle (`cycle_demand`, what an order brings), and never more than
    z(service level), the z that runs out in no more than that share of cycles."""
    spread = math.sqrt(lead.mean * demand_std**2 + daily_demand**2 * lead.std**2)
    z = NormalDist().inv_cdf(service_level)
    if spread == 0 or z <= 0:
        return 0
    allowed_short = (1 - service_level) * cycle_demand
    low, high = 0.0, z
    if spread * _loss(high) > allowed_short:
        return math.ceil(z * spread)
    if spread * _loss(low) <= allowed_short:
        return 0  # a cycle's order covers the shortfall the spread makes likely
    for _ in range(40):  # G falls as z grows: bisect for the smallest z short by no more than allowed
        middle = (low + high) / 2
        low, high = (middle, high) if spread * _loss(middle) > allowed_short else (low, middle)
    return math.ceil(high * spread)


def _loss(z: float) -> float:
    """G(z) = φ(z) − z·(1 − Φ(z)): expected units short of a standard normal demand with z of stock."""
    unit = NormalDist()
    return unit.pdf(z) - z * (1 - unit.cdf(z))


def plan(state: Sku, forecast: Forecast, lead: LeadTime, settings: Settings = Settings()) -> Plan:
    """Where a SKU stands. Safety stock is the product's when set by hand, else computed; the reorder point
    is the demand expected over the lead time plus safety stock."""
    d = forecast.rate
    manual = state.product.safety_stock if state.product else 0
    service_level = state.product.service_level if state.product else 0.95
    ss = manual or safety_stock(d, forecast.std, lead, service_level, d * settings.cycle_days)
    reorder_point = math.ceil(forecast.over(lead.mean)) + ss
    target = reorder_point + math.ceil(d * settings.cycle_days)
    position = state.available + state.supply - state.backordered
    cover = state.available / d if d > 0 else (math.inf if state.available > 0 else 0.0)
    if cover > settings.overstock_days:
        status: Status = "overstock"
    elif state.backordered or position < ss:
        status = "at_risk"
    elif position <= reorder_point < target:  # at the reorder point, and something to order (as a suggestion)
        status = "reorder"
    else:
        status = "ok"
    return Plan(state.sku, state.available, state.supply, state.backordered, position, d, cover, lead.mean, ss,
                reorder_point, target, status)


@dataclass(frozen=True, slots=True)
class OpenOrder:
    """A purchase order not yet received, and when it was placed."""

    po_id: str
    ordered_on: date
    expected_on: date


@dataclass(frozen=True, slots=True)
class Memory:
    """What planning already told about a SKU, so that it tells each finding once."""

    suggested: int = 0  # units of the suggestion not yet answered by a purchase order
    orders_seen: frozenset[str] = frozenset()  # open purchase orders when it was made
    overstocked: bool = False
    delays: frozenset[str] = field(default_factory=frozenset)  # purchase orders reported late


def decide(p: Plan, lead: LeadTime, open_orders: Sequence[OpenOrder], memory: Memory, today: date,
           settings: Settings = Settings()) -> tuple[list[Event], Memory]:
    """The findings to publish about a SKU today, and what is remembered of them. A suggestion is not
    repeated until a purchase order is expected after it (then the position is looked at anew) or the need
    grew materially, or the position rose materially above the reorder point (a unit given back and taken
    again is the same situation); overstock is told once until the cover falls back; a late purchase order
    once."""
    events: list[Event] = []
    orders = frozenset(o.po_id for o in open_orders)
    if memory.suggested and orders - memory.orders_seen:
        memory = replace(memory, suggested=0)  # answered
    if p.position > p.reorder_point + settings.material_change * memory.suggested:
        memory = replace(memory, suggested=0)  # stock came (without a purchase order): a new situation
    need = p.target_level - p.position
    if p.position <= p.reorder_point and need > 0 and need >= memory.suggested * (1 + settings.material_change):
        events.append(ReplenishmentSuggested(
            sku=p.sku, quantity=need, position=p.position, reorder_point=p.reorder_point, safety_stock=p.safety_stock,
            expected_on=today + timedelta(days=lead.quantile_days),
            reason=f"position {p.position} at or below the reorder point {p.reorder_point} "
                   f"({p.daily_demand:.1f}/day over a {p.lead_time_days:.0f}-day lead time, safety stock {p.safety_stock})"))
        memory = replace(memory, suggested=need, orders_seen=orders)
    if p.status != "overstock":
        memory = replace(memory, overstocked=False)
    elif p.daily_demand > 0 and not memory.overstocked:  # without demand, cover and excess have no number yet
        excess = p.available - math.ceil(p.daily_demand * settings.overstock_days)
        events.append(OverstockDetected(sku=p.sku, days_of_cover=round(p.days_of_cover, 1), excess=excess))
        memory = replace(memory, overstocked=True)
    for order in open_orders:
        if order.po_id not in memory.delays and (late := days_overdue(lead, order.ordered_on, order.expected_on, today)):
            events.append(SupplierDelayDetected(sku=p.sku, po_id=order.po_id, ordered_on=order.ordered_on,
                                                expected_on=order.expected_on, days_overdue=late,
                                                typical_lead_time_days=round(lead.mean, 1)))
            memory = replace(memory, delays=memory.delays | {order.po_id})
    return events, replace(memory, delays=memory.delays & orders)


def learned(state: Sku, lead: LeadTime) -> list[LeadTimeLearned]:
    """LeadTimeLearned when the deliveries give a lead time other than the one ETAs use now."""
    if not lead.deliveries or (state.lead_time, state.supplier_delay) == (timedelta(days=lead.quantile_days),
                                                                       timedelta(days=lead.delay_days)):
        return []
    return [LeadTimeLearned(sku=state.sku, lead_time_days=lead.quantile_days, delay_days=lead.delay_days,
                            mean_days=round(lead.mean, 2),
                            std_days=round(lead.std, 2), on_time_rate=round(lead.on_time_rate, 3),
                            deliveries=lead.deliveries)]
