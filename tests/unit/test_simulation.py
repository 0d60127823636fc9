"""The simulation runs the inventory's domain and planning code on a simulated clock, the same for a seed."""

from simulation.run import Simulation
from simulation.world import HISTORY_DAYS, products


def test_the_simulated_world_has_intermittent_skus_and_a_demand_shock():
    catalogue = products(10, 200, seed=3)
    assert sum(p.intermittent for p in catalogue) == 2
    assert all(len(p.demand) == HISTORY_DAYS + 200 for p in catalogue)
    shock = HISTORY_DAYS + 100
    jumped = [p.sku for p in catalogue if sum(p.demand[shock:shock + 28]) > 1.8 * sum(p.demand[shock - 28:shock])]
    assert len(jumped) >= 2  # three SKUs are shocked; an intermittent one may not show it


def test_a_seed_gives_the_same_year_and_planning_prevents_backorders():
    catalogue = products(4, 42, seed=1)
    first, again = (Simulation(catalogue, 42, planning=True, seed=1).run().figures() for _ in range(2))
    assert first == again
    without = Simulation(catalogue, 42, planning=False, seed=1).run().figures()
    assert first["backorder_rate"] < without["backorder_rate"]
    assert all(0 <= first[k] <= 1 for k in ("backorder_rate", "fill_rate", "eta_kept"))
