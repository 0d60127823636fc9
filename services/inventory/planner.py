"""The planning job, off the order path: it reads the demand and delivery history, forecasts in a worker
process of its own (statsforecast's start-up, CPU and memory stay out of the service's event loop), then
decides for each SKU in short transactions: the lead time ETAs use, suggestions, overstock and late
purchase orders, each told once, and the plan GET /planning and `make plan` show."""

import asyncio
import contextlib
import multiprocessing
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import date

import asyncpg

from services.inventory import handlers, history, store
from services.inventory.planning import forecast, policy, report
from services.inventory.planning.chart import chart_png

CHART_DAYS = 91  # of demand history in a chart
HORIZON_DAYS = 35  # forecast ahead: beyond the longest lead time a plan looks at, at its rate
CHUNK = 200  # SKUs per transaction: their roots are locked only while their plans are decided

Forecaster = Callable[[dict[str, list[int]], int], Awaitable[dict[str, forecast.Forecast]]]


# One instance plans at a time: a forecast costs each instance that makes it seconds of CPU and its worker's
# memory, and what it finds is the same. A session lock, held for the run and given up at its end, or with its
# connection when the instance dies or the connection drops (then the next run of any instance takes over).
TRY_LOCK = "SELECT pg_try_advisory_lock(hashtext(current_schema() || '.planning'))"
UNLOCK = "SELECT pg_advisory_unlock(hashtext(current_schema() || '.planning'))"


async def run(pool: asyncpg.Pool, today: date, forecaster: Forecaster, settings: policy.Settings) -> int | None:
    """One planning run for every product still sold; returns how many SKUs were planned, or None when
    another instance's run is under way (it plans them)."""
    async with pool.acquire() as lock:
        try:
            if not await lock.fetchval(TRY_LOCK):
                return None
            planned = await _plan_all(pool, today, forecaster, settings)
            await lock.execute(UNLOCK)
            return planned
        except BaseException:
            # Cut short (cancelled, failed, the connection lost), the run may hold the lock without knowing it: the
            # session ends, and the lock with it, rather than going back to the pool (which does not reset it) held.
            with contextlib.suppress(asyncpg.InterfaceError):  # already gone with its connection
                lock.terminate()
            raise


async def _plan_all(pool: asyncpg.Pool, today: date, forecaster: Forecaster, settings: policy.Settings) -> int:
    async with pool.acquire() as conn:
        skus = await store.planned_skus(conn)
        await history.forget_discontinued(conn)
        demand = await history.demand(conn, forecast.WINDOW, today)
    forecasts = await forecaster({sku: demand.get(sku, []) for sku in skus}, HORIZON_DAYS)
    planned = 0
    for start in range(0, len(skus), CHUNK):
        async with pool.acquire() as conn, conn.transaction():
            planned += await handlers.plan_skus(conn, skus[start:start + CHUNK], forecasts, today, settings)
    return planned


class WorkerForecaster:
    """Forecasts in one worker process, started on first use and kept for the next runs."""

    def __init__(self) -> None:
        self._workers: ProcessPoolExecutor | None = None

    async def __call__(self, histories: dict[str, list[int]], horizon: int) -> dict[str, forecast.Forecast]:
        if not any(len(series) >= forecast.MIN_HISTORY for series in histories.values()):
            return forecast.forecast(histories, horizon)  # plain means: no model, no worker needed yet
        try:
            return await self._in_worker(histories, horizon)
        except BrokenProcessPool:  # the worker died (killed, out of memory): a new one, or no run would forecast
            self.close()
            return await self._in_worker(histories, horizon)

    async def _in_worker(self, histories: dict[str, list[int]], horizon: int) -> dict[str, forecast.Forecast]:
        if self._workers is None:
            self._workers = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
        return await asyncio.get_running_loop().run_in_executor(self._workers, forecast.forecast, histories, horizon)

    def close(self) -> None:
        if self._workers:
            self._workers.shutdown(cancel_futures=True)
            self._workers = None


async def in_process(histories: dict[str, list[int]], horizon: int) -> dict[str, forecast.Forecast]:
    """Forecast in this process: for `make plan` and tests, where nothing else waits on the event loop."""
    return forecast.forecast(histories, horizon)


async def view(pool: asyncpg.Pool, sku: str | None = None) -> tuple[list[asyncpg.Record], str | None, bytes | None]:
    """The plans of every SKU, and the chart of `sku` (else of the most urgent one) as a PNG."""
    rows = await history.plans(pool)
    chosen = next((r for r in rows if r["sku"] == sku), None) if sku else report.most_urgent(rows)
    if chosen is None:
        return rows, None, None
    async with pool.acquire() as conn:
        demand = (await history.demand(conn, CHART_DAYS, chosen["planned_on"], chosen["sku"])).get(chosen["sku"], [])
        arrivals = await history.arrivals(conn, chosen["sku"])
    png = await asyncio.to_thread(chart_png, chosen["sku"], demand, chosen["planned_on"], chosen["forecast"],
                                  chosen["available"], arrivals, chosen["reorder_point"], chosen["safety_stock"])
    return rows, chosen["sku"], png
