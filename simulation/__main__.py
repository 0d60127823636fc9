"""`make simulate`: a year with planning and without, the same demand and suppliers, and the forecast's
accuracy on held-out days; a table, and with --json a last line that is one JSON object."""

import argparse
import asyncio
import json
import time

from infra import postgres

from services.inventory.planning import forecast as forecasting
from simulation.run import Simulation
from simulation.slice import SliceOutcome, on_a_stack
from simulation.world import HISTORY_DAYS, products

HOLDOUT_DAYS = 28


def main() -> None:
    parser = argparse.ArgumentParser(prog="make simulate", description=__doc__)
    parser.add_argument("--skus", type=int, default=24)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="end with the figures as one JSON object")
    parser.add_argument("--slice", type=int, nargs="?", const=30, metavar="DAYS",
                        help="play the first DAYS (30) days through the real services on Kafka and compare")
    args = parser.parse_args()

    catalogue = products(args.skus, args.days, args.seed)
    if args.slice:
        server, what = postgres.ensure_database()
        outcome = asyncio.run(on_a_stack(catalogue, min(args.slice, args.days), args.seed, server, what))
        print_slice(outcome, args.json)
        raise SystemExit(1 if outcome.differences() else 0)
    started = time.monotonic()
    outcomes = {name: Simulation(catalogue, args.days, planning, args.seed).run()
                for name, planning in (("planning", True), ("none", False))}
    simulated = time.monotonic() - started
    accuracy = forecasting.backtest({p.sku: list(p.demand) for p in catalogue}, holdout=HOLDOUT_DAYS)
    figures = {name: o.figures() for name, o in outcomes.items()}

    print(f"{args.skus} SKUs, {args.days} days (+{HISTORY_DAYS} of history), seed {args.seed}: "
          f"simulated in {simulated:.0f} s")
    print(f"{'':24}{'planning':>12}{'none':>12}")
    for key, label in (("backorder_rate", "backorder rate"), ("fill_rate", "fill rate (lines)"),
                       ("mean_on_hand", "mean on hand (units)"), ("eta_kept", "ETA kept")):
        print(f"{label:24}{figures['planning'][key]:>12.3f}{figures['none'][key]:>12.3f}")
    print(f"{'purchase orders':24}{outcomes['planning'].purchase_orders:>12}{outcomes['none'].purchase_orders:>12}")
    for kind, count in sorted(outcomes["planning"].findings.items()):
        print(f"{kind:24}{count:>12}")
    print(f"forecast over the last {HOLDOUT_DAYS} days: WAPE {accuracy.wape:.3f} (seasonal naive "
          f"{accuracy.wape_naive:.3f}), MASE {accuracy.mase:.3f}")
    if args.json:
        print(json.dumps({
            **{key: {name: round(figures[name][key], 4) for name in ("planning", "none")}
               for key in ("backorder_rate", "fill_rate", "mean_on_hand", "eta_kept")},
            "forecast": {"wape": round(accuracy.wape, 4), "wape_naive": round(accuracy.wape_naive, 4),
                         "mase": round(accuracy.mase, 4)},
        }))


def print_slice(outcome: SliceOutcome, as_json: bool) -> None:
    print(f"{outcome.skus} SKUs, {outcome.days} days through the services in {outcome.wall_s:.0f} s")
    print(f"{'summed over days and SKUs':56}{'simulation':>12}{'services':>12}")
    for what, (simulated, published) in outcome.totals().items():
        print(f"{what:56}{simulated:>12}{published:>12}")
    differences = outcome.differences()
    print(f"{len(differences)} differences" + (":" if differences else ": the services published what the "
                                                "simulation decided, day by day and SKU by SKU"))
    for line in differences:
        print(f"  {line}")
    if as_json:
        print(json.dumps({"slice": {"days": outcome.days, "skus": outcome.skus, "differences": len(differences),
                                    "totals": {what: {"simulation": a, "services": b}
                                               for what, (a, b) in outcome.totals().items()}}}))


if __name__ == "__main__":
    main()
