"""A PNG chart of one SKU: its daily demand, the forecast ahead, and the stock that forecast leaves, with
the reorder point and safety stock. matplotlib (Agg, no display) is imported on first use."""

import io
from collections.abc import Sequence
from datetime import date, timedelta


def chart_png(sku: str, demand: Sequence[int], planned_on: date, forecast: Sequence[float], available: int,
              arrivals: Sequence[tuple[date, int]], reorder_point: int, safety_stock: int) -> bytes:
    """`demand`: the days up to `planned_on`; `forecast`: from `planned_on` on; `arrivals`: open purchase orders."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    past = [planned_on - timedelta(days=len(demand) - n) for n in range(len(demand))]
    ahead = [planned_on + timedelta(days=n) for n in range(len(forecast))]
    stock, projected = [], float(available)
    for n, (day, expected) in enumerate(zip(ahead, forecast)):
        # A purchase order already overdue is counted as coming on the first day.
        projected += sum(q for on, q in arrivals if on == day or (n == 0 and on < day)) - expected
        stock.append(projected)
    figure = Figure(figsize=(10, 4.5), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.bar(past, demand, width=1.0, color="#9db4d3", label="demand per day")
    axes.plot(ahead, forecast, color="#1f4e8c", linewidth=2, label="forecast per day")
    stock_axes = axes.twinx()
    stock_axes.plot(ahead, stock, color="#2e7d32", linewidth=2, label="projected available stock")
    stock_axes.axhline(reorder_point, color="#ef6c00", linestyle="--", label=f"reorder point {reorder_point}")
    stock_axes.axhline(safety_stock, color="#c62828", linestyle=":", label=f"safety stock {safety_stock}")
    axes.axvline(planned_on, color="#777777", linewidth=1)
    axes.set_title(f"{sku}: demand, forecast and stock")
    axes.set_ylabel("units per day")
    stock_axes.set_ylabel("units in stock")
    handles = axes.get_legend_handles_labels()
    more = stock_axes.get_legend_handles_labels()
    axes.legend(handles[0] + more[0], handles[1] + more[1], loc="upper left", fontsize=8)
    figure.autofmt_xdate()
    figure.tight_layout()
    out = io.BytesIO()
    figure.savefig(out, format="png")
    return out.getvalue()
