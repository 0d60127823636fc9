"""Planning without I/O: lead times learned from deliveries, safety stock and reorder points, findings told
once, and a forecast from statsforecast that beats the seasonal naive one."""

import asyncio
import math
import os
import random
import signal
from dataclasses import replace
from datetime import date, timedelta
from statistics import NormalDist

from hypothesis import given
from hypothesis import strategies as st

from contracts.events import (
    BackorderEtaChanged,
    LeadTimeLearned,
    OverstockDetected,
    ReplenishmentSuggested,
    SupplierDelayDetected,
)
from services.inventory import planner
from services.inventory.domain import supply
from services.inventory.planning import forecast as forecasting
from services.inventory.planning.demand import daily_series, is_intermittent
from services.inventory.planning.forecast import Forecast
from services.inventory.planning.lead_times import Delivery, LeadTime, days_overdue, learn
from services.inventory.planning.policy import Memory, OpenOrder, decide, learned, plan, safety_stock
from tests.unit.test_inventory_domain import TODAY, allocate, expect, product, receive, run


def delivered(days: int, n: int = 0, promised: int = 10) -> Delivery:
    ordered = TODAY - timedelta(days=100 + n)
    return Delivery(f"po{n}", ordered, ordered + timedelta(days=promised), ordered + timedelta(days=days))


def flat(rate: float, std: float = 0.0) -> Forecast:
    return Forecast((rate,) * 28, std, "test")


def test_safety_stock_combines_demand_and_lead_time_variability():
    lead = LeadTime(mean=9, std=2, on_time_rate=1, deliveries=5, quantile_days=12)
    # With no cycle demand to spare, z is z(0.95): 1.645 × √(9·3² + 10²·2²) = 1.645 × √481 = 36.08
    assert safety_stock(10, 3, lead, 0.95, cycle_demand=0) == 37
    assert safety_stock(10, 0, LeadTime(9, 0, 1, 0, 9), 0.95, cycle_demand=70) == 0


def units_short(safety: float, spread: float) -> float:
    """Expected units short in a cycle with this much safety stock: spread × G(safety / spread)."""
    z, unit = safety / spread, NormalDist()
    return spread * (unit.pdf(z) - z * (1 - unit.cdf(z)))


@given(st.floats(0.5, 50), st.floats(0.1, 20), st.floats(1, 60), st.floats(0, 10), st.integers(1, 30),
       st.sampled_from([0.8, 0.9, 0.95, 0.99]))
def test_safety_stock_is_the_least_that_serves_the_service_level_of_a_cycles_demand(d, sd, lead_mean, lead_std,
                                                                                     cycle_days, level):
    """At most (1 − service level) of a cycle's demand short, with one unit less more than that; never above
    z(service level) × the spread."""
    lead = LeadTime(lead_mean, lead_std, 1, 3, math.ceil(lead_mean))
    spread = math.sqrt(lead_mean * sd**2 + d**2 * lead_std**2)
    allowed, z = (1 - level) * d * cycle_days, NormalDist().inv_cdf(level)
    ss = safety_stock(d, sd, lead, level, d * cycle_days)
    assert ss <= math.ceil(z * spread)
    if ss < math.ceil(z * spread):
        assert units_short(ss, spread) <= allowed + 1e-9
        assert ss == 0 or units_short(ss - 1, spread) > allowed - 1e-9


@given(st.floats(0, 50), st.floats(0, 20), st.floats(1, 60), st.floats(0, 10), st.floats(0, 500))
def test_a_higher_service_level_never_needs_less_safety_stock(d, sd, lead_mean, lead_std, cycle):
    lead = LeadTime(lead_mean, lead_std, 1, 3, math.ceil(lead_mean))
    assert (safety_stock(d, sd, lead, 0.99, cycle) >= safety_stock(d, sd, lead, 0.95, cycle)
            >= safety_stock(d, sd, lead, 0.8, cycle))


def test_without_deliveries_the_product_lead_time_is_the_lead_time():
    assert learn([], prior_days=14) == LeadTime(14.0, 0.0, 1.0, 0, 14)


def test_late_deliveries_lengthen_the_learned_lead_time_and_its_high_quantile():
    lead = learn([delivered(d, n) for n, d in enumerate([14, 15, 13, 16, 14, 15])], prior_days=10)
    assert 13 < lead.mean < 15
    assert lead.quantile_days > lead.mean
    assert lead.on_time_rate == 0


def test_one_delivery_moves_the_lead_time_only_part_of_the_way_from_the_prior():
    assert 10 < learn([delivered(19)], prior_days=10).mean < 19


@given(st.lists(st.integers(0, 60), min_size=1, max_size=30), st.integers(0, 60))
def test_the_eta_quantile_is_never_below_the_mean_lead_time(days, prior):
    lead = learn([delivered(d, n) for n, d in enumerate(days)], prior)
    assert lead.quantile_days >= lead.mean - 1e-9
    assert 0 <= lead.on_time_rate <= 1


def test_a_purchase_order_is_overdue_only_beyond_the_usual_spread():
    lead = LeadTime(mean=10, std=2, on_time_rate=0.5, deliveries=8, quantile_days=13)
    ordered = TODAY - timedelta(days=14)
    assert days_overdue(lead, ordered, ordered + timedelta(days=10), TODAY) == 0  # 14 ≤ 10 + 2·2
    assert days_overdue(lead, ordered, ordered + timedelta(days=10), TODAY + timedelta(days=3)) == 3


def test_reorder_point_is_lead_time_demand_plus_safety_stock():
    state = product(lead_time_days=10)
    receive(state, 100)
    p = plan(state, flat(5, 2), learn([], 10))
    assert p.safety_stock == safety_stock(5, 2, learn([], 10), 0.95, cycle_demand=5 * 7)  # a week's orders
    assert p.reorder_point == 50 + p.safety_stock
    assert (p.position, p.status, p.days_of_cover) == (100, "ok", 20)


def test_a_product_nobody_orders_is_not_shown_as_to_reorder():
    """No demand, no stock: nothing is suggested, and the plan must not say reorder either."""
    p = plan(product(), Forecast((0.0,), 0.0, "none"), learn([], 14))
    assert (p.position, p.reorder_point, p.status) == (0, 0, "ok")
    assert decide(p, learn([], 14), [], Memory(), TODAY)[0] == []


def test_a_safety_stock_set_by_hand_overrides_the_computed_one():
    state = product(safety_stock=30)
    assert plan(state, flat(5, 2), learn([], 14)).safety_stock == 30


def test_position_counts_purchase_orders_and_waiting_backorders():
    state = product(lead_time_days=10)
    receive(state, 3)
    allocate(state, "o1", 5)  # 3 reserved, 2 waiting
    expect(state, "po1", 10, TODAY + timedelta(days=10))
    p = plan(state, flat(1), learn([], 10))
    assert (p.available, p.on_order, p.backordered, p.position, p.status) == (0, 10, 2, 8, "at_risk")


def test_a_suggestion_is_made_once_and_again_after_a_purchase_order_answers_it():
    state = product(lead_time_days=10)
    receive(state, 20)
    lead, p = learn([], 10), plan(state, flat(5, 1), learn([], 10))
    events, memory = decide(p, lead, [], Memory(), TODAY)
    assert [type(e) for e in events] == [ReplenishmentSuggested]
    assert events[0].quantity == p.target_level - 20
    assert events[0].expected_on == TODAY + timedelta(days=10)
    assert decide(p, lead, [], memory, TODAY)[0] == []  # no storm of repeats
    expect(state, "po1", 5, TODAY + timedelta(days=10))  # the buyer ordered less than suggested
    ordered = [OpenOrder("po1", TODAY, TODAY + timedelta(days=10))]
    again, _ = decide(plan(state, flat(5, 1), lead), lead, ordered, memory, TODAY)
    assert [type(e) for e in again] == [ReplenishmentSuggested]


def test_a_suggestion_is_repeated_when_the_need_grows_materially():
    state = product(lead_time_days=10)
    receive(state, 40)
    lead = learn([], 10)
    _, memory = decide(plan(state, flat(5, 1), lead), lead, [], Memory(), TODAY)
    assert decide(plan(state, flat(6, 1), lead), lead, [], memory, TODAY)[0] == []
    assert decide(plan(state, flat(12, 1), lead), lead, [], memory, TODAY)[0]


def test_a_position_wavering_at_the_reorder_point_is_not_a_new_situation():
    state = product(lead_time_days=10)
    lead = learn([], 10)
    p = plan(state, flat(5, 1), lead)
    p = replace(p, position=p.reorder_point)
    told, memory = decide(p, lead, [], Memory(), TODAY)
    assert [type(e) for e in told] == [ReplenishmentSuggested]
    # A unit given back (a cancellation) lifts the position one above the reorder point, an order takes it
    # back: the same situation, nothing told again.
    _, memory = decide(replace(p, position=p.reorder_point + 1), lead, [], memory, TODAY)
    assert decide(p, lead, [], memory, TODAY)[0] == []
    # Above the reorder point nothing is suggested, however much the target grew.
    above = replace(p, position=p.reorder_point + 3, target_level=p.reorder_point + 200)
    assert decide(above, lead, [], memory, TODAY)[0] == []
    # Stock that came without a purchase order (most of what was suggested) is a new situation.
    _, memory = decide(replace(p, position=p.position + told[0].quantity), lead, [], memory, TODAY)
    assert [type(e) for e in decide(p, lead, [], memory, TODAY)[0]] == [ReplenishmentSuggested]


def test_overstock_is_told_once_until_the_cover_falls_back():
    state = product()
    receive(state, 1000)
    lead, slow = learn([], 14), flat(2)
    events, memory = decide(plan(state, slow, lead), lead, [], Memory(), TODAY)
    assert events == [OverstockDetected(sku="A", days_of_cover=500.0, excess=820)]
    assert decide(plan(state, slow, lead), lead, [], memory, TODAY)[0] == []
    _, memory = decide(plan(state, flat(50), lead), lead, [], memory, TODAY)
    assert [type(e) for e in decide(plan(state, slow, lead), lead, [], memory, TODAY)[0]] == [OverstockDetected]


def test_overstock_is_not_told_again_when_demand_pauses_and_comes_back():
    """No demand forecast is more cover, not less: a SKU told overstocked stays told while its forecast is 0."""
    state = product()
    receive(state, 1000)
    lead = learn([], 14)
    events, memory = decide(plan(state, flat(2), lead), lead, [], Memory(), TODAY)
    assert [type(e) for e in events] == [OverstockDetected]
    events, memory = decide(plan(state, flat(0), lead), lead, [], memory, TODAY)
    assert events == []
    assert decide(plan(state, flat(1), lead), lead, [], memory, TODAY)[0] == []


def test_a_late_purchase_order_is_reported_once():
    state = product(lead_time_days=10)
    receive(state, 500)
    lead = LeadTime(10, 1, 1, 6, 12)
    late = [OpenOrder("po1", TODAY - timedelta(days=20), TODAY - timedelta(days=10))]
    events, memory = decide(plan(state, flat(5, 1), lead), lead, late, Memory(), TODAY)
    assert [e for e in events if isinstance(e, SupplierDelayDetected)] == [SupplierDelayDetected(
        sku="A", po_id="po1", ordered_on=TODAY - timedelta(days=20), expected_on=TODAY - timedelta(days=10),
        days_overdue=8, typical_lead_time_days=10.0)]
    assert not [e for e in decide(plan(state, flat(5, 1), lead), lead, late, memory, TODAY)[0]
                if isinstance(e, SupplierDelayDetected)]


def test_a_learned_lead_time_moves_the_etas_that_rest_on_the_lead_time():
    state = product(lead_time_days=10)
    allocate(state, "o1", 2)
    lead = learn([delivered(d, n) for n, d in enumerate([16, 17, 15, 18])], prior_days=10)
    [told] = learned(state, lead)
    events = run(state, supply.learn_lead_time, told, TODAY)
    assert events[0] == told
    assert events[1:] == [BackorderEtaChanged(order_id="o1", sku="A", quantity=2,
                                              previous_estimated_ship_date=TODAY + timedelta(days=10),
                                              estimated_ship_date=TODAY + timedelta(days=lead.quantile_days))]
    assert learned(state, lead) == []  # the same lead time is not learned twice
    allocate(state, "o2", 1)
    assert state.queue["o2"].eta == TODAY + timedelta(days=lead.quantile_days)
    assert isinstance(told, LeadTimeLearned)


def test_a_shorter_learned_lead_time_never_promises_a_day_already_past():
    state = product(lead_time_days=14)
    allocate(state, "o1", 2)  # promised TODAY + 14
    allocate(state, "o2", 1, today=TODAY + timedelta(days=8))  # promised TODAY + 22
    later = TODAY + timedelta(days=10)
    told = LeadTimeLearned(sku="A", lead_time_days=5, delay_days=0, mean_days=4.0, std_days=0.5, on_time_rate=1.0,
                           deliveries=6)
    events = run(state, supply.learn_lead_time, told, later)
    # o1 would rest on TODAY + 5, five days ago: it moves where the review would, today plus the lead time.
    assert events[1:] == [
        BackorderEtaChanged(order_id="o1", sku="A", quantity=2, previous_estimated_ship_date=TODAY + timedelta(days=14),
                            estimated_ship_date=later + timedelta(days=5), overdue_on=later),
        BackorderEtaChanged(order_id="o2", sku="A", quantity=1, previous_estimated_ship_date=TODAY + timedelta(days=22),
                            estimated_ship_date=TODAY + timedelta(days=13)),
    ]
    assert [b.eta for b in state.head()] == [eta for _, eta in supply.etas(state, reach=None)]


def test_daily_series_fills_days_without_demand_with_zeros():
    start = date(2026, 1, 1)
    assert daily_series({start: 3, start + timedelta(days=2): 1}, start, start + timedelta(days=3)) == [3, 0, 1, 0]
    assert is_intermittent([0, 0, 4, 0, 0, 1, 0]) and not is_intermittent([2, 3, 1, 0, 4, 2, 2])


def synthetic(days: int, seed: int) -> list[int]:
    """Trend, a weekly pattern and Poisson-like noise."""
    rnd = random.Random(seed)
    weekly = [1.0, 1.1, 1.0, 1.2, 1.4, 0.6, 0.5]
    return [sum(rnd.random() < (8 + 0.02 * n) * weekly[n % 7] / 40 for _ in range(40)) for n in range(days)]


def test_the_forecast_beats_the_seasonal_naive_one_on_held_out_days():
    histories = {f"S{n}": synthetic(240, n) for n in range(4)}
    accuracy = forecasting.backtest(histories, holdout=28)
    assert accuracy.wape < 0.85 * accuracy.wape_naive
    assert accuracy.mase < 1


def test_intermittent_demand_is_forecast_by_croston_and_short_histories_by_their_mean():
    rnd = random.Random(7)
    sparse = [rnd.choice([0, 0, 0, 0, 3]) for _ in range(120)]
    result = forecasting.forecast({"SPARSE": sparse, "NEW": [2, 4]}, horizon=7)
    assert result["SPARSE"].method == "Croston" and 0 < result["SPARSE"].rate < 3
    assert result["NEW"].daily == (3.0,) * 7


def test_a_single_day_of_demand_is_forecast_as_its_average_not_as_a_daily_rate():
    """Croston learns the interval between demands; with one demand there is none (a history starts at its
    first demand), and it would forecast that one order every day."""
    result = forecasting.forecast({"ONCE": [7] + [0] * 40}, horizon=7)
    assert result["ONCE"].rate == 7 / 41


def test_the_service_level_is_a_product_setting():
    lead = learn([], 10)
    assert plan(product(service_level=0.99), flat(5, 2), lead).safety_stock > plan(product(), flat(5, 2), lead).safety_stock


async def test_the_forecasting_worker_is_started_again_when_it_died():
    """The worker process may be killed (out of memory, say): the next planning run forecasts all the same,
    rather than every run failing until the service restarts."""
    forecaster = planner.WorkerForecaster()
    histories = {"S": synthetic(60, 1)}
    try:
        first = await forecaster(histories, 7)
        for pid in list(forecaster._workers._processes):
            os.kill(pid, signal.SIGKILL)
        await asyncio.sleep(0.5)
        assert await forecaster(histories, 7) == first
    finally:
        forecaster.close()
