"""The plan for people: a text table per SKU (`make plan`) and the same as an HTML page with the chart
(GET /planning), status in colour."""

import base64
import html
import math
from collections.abc import Mapping, Sequence

COLUMNS = (("sku", "SKU"), ("available", "available"), ("on_order", "on order"), ("backordered", "backordered"),
           ("daily_demand", "forecast/day"), ("days_of_cover", "days of cover"), ("safety_stock", "safety stock"),
           ("reorder_point", "reorder point"), ("status", "status"))
STATUS_COLOURS = {"ok": "#c8e6c9", "reorder": "#ffe0b2", "at_risk": "#ffcdd2", "overstock": "#bbdefb"}
STATUS_ORDER = ("at_risk", "reorder", "overstock", "ok")  # what needs a person first


def shown(column: str, value: object) -> str:
    if column == "daily_demand":
        return f"{value:.1f}"
    if column == "days_of_cover":
        return "∞" if value is None or math.isinf(value) else f"{value:.0f}"
    return str(value)


def most_urgent(rows: Sequence[Mapping]) -> Mapping | None:
    """The SKU a person should look at first: the worst status, then the highest demand."""
    return min(rows, key=lambda r: (STATUS_ORDER.index(r["status"]), -r["daily_demand"]), default=None)


def table(rows: Sequence[Mapping]) -> str:
    cells = [[label for _, label in COLUMNS]] + [[shown(c, r[c]) for c, _ in COLUMNS] for r in rows]
    widths = [max(len(row[n]) for row in cells) for n in range(len(COLUMNS))]
    numbers = range(1, len(COLUMNS) - 1)  # right-aligned; the SKU and status are words
    lines = ["  ".join(cell.rjust(w) if n in numbers else cell.ljust(w) for n, (cell, w) in enumerate(zip(row, widths)))
             for row in cells]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])


def page(rows: Sequence[Mapping], chart_sku: str | None, chart: bytes | None) -> str:
    head = "".join(f"<th>{html.escape(label)}</th>" for _, label in COLUMNS)
    body = "".join(
        f'<tr class="{r["status"]}" style="background:{STATUS_COLOURS[r["status"]]}">'
        + "".join(f'<td><a href="?sku={html.escape(r["sku"])}">{html.escape(r["sku"])}</a></td>' if c == "sku"
                  else f"<td>{html.escape(shown(c, r[c]))}</td>" for c, _ in COLUMNS)
        + "</tr>" for r in rows)
    figure = (f'<h2>{html.escape(chart_sku)}</h2><img id="chart" alt="{html.escape(chart_sku)}: demand, forecast and '
              f'stock" src="data:image/png;base64,{base64.b64encode(chart).decode()}">') if chart else ""
    planned = f"planned on {rows[0]['planned_on']}" if rows else "not planned yet: planning runs every PLANNING_S"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>orderflow planning</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; }}
table {{ border-collapse: collapse; }}
th, td {{ padding: 4px 10px; border: 1px solid #999; text-align: right; }}
td:first-child, th:first-child, td:last-child, th:last-child {{ text-align: left; }}
</style></head>
<body><h1>Planning</h1><p>{html.escape(planned)}</p>
<table id="plan"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>
{figure}
</body></html>"""
