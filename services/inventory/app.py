"""The inventory service: products, receipts, counts and purchase orders in, allocation, cancellation and
shipping of placed orders, inventory events out, GET /availability/{sku}, the daily review of ETAs, and the
periodic planning job."""

import structlog
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from contracts import topics
from contracts.read_side import AvailabilityView, UnknownSku
from services.inventory import handlers, planner, projections
from services.inventory.planning import policy, report
from services.runtime import clock
from services.runtime.http import ReadEndpoint
from services.runtime.service import Runtime, Service, serve
from services.runtime.settings import load
from services.runtime.subscriptions import subscriptions_for

SETTINGS = load("inventory")
log = structlog.get_logger()


AVAILABILITY = ReadEndpoint("/availability/{sku}", "What a storefront should show for a SKU: in stock with a "
                            "quantity, backorderable with the ETA of an order placed now, or unavailable.",
                            AvailabilityView, UnknownSku,
                            find=lambda runtime, sku: projections.find(runtime.pool, sku),
                            missing=lambda sku: UnknownSku(sku=sku))


async def handle(conn, messages) -> None:
    await handlers.handle(conn, messages, today=clock.today())


async def review_etas(runtime: Runtime) -> None:
    """Every ETA_REVIEW_S: ETAs that passed without supply move once to the next credible date."""
    while True:
        try:
            while True:
                async with runtime.pool.acquire() as conn, conn.transaction():
                    moved = await handlers.review_overdue_etas(conn, clock.today())
                if not moved:
                    break
                runtime.relay.wake()
        except Exception as error:  # a database hiccup: the next review catches up
            log.warning("ETA review failed", error=repr(error))
        await clock.sleep(SETTINGS.eta_review_s)


async def plan_replenishment(runtime: Runtime) -> None:
    """Every PLANNING_S: forecasts (in a worker process), lead times, suggestions, overstock."""
    forecaster = planner.WorkerForecaster()
    settings = policy.Settings(overstock_days=runtime.settings.overstock_days)
    try:
        while True:
            await clock.sleep(runtime.settings.planning_s)
            try:
                if await planner.run(runtime.pool, clock.today(), forecaster, settings):
                    runtime.relay.wake()
            except Exception as error:  # a database hiccup or a failed forecast: the next run catches up
                log.warning("planning failed", error=repr(error))
    finally:
        forecaster.close()


def planning_page(runtime: Runtime) -> Route:
    """GET /planning: the plan of every SKU, status in colour, and the chart of one (?sku=, else the most urgent)."""
    async def get(request: Request) -> HTMLResponse:
        rows, chart_sku, png = await planner.view(runtime.pool, request.query_params.get("sku"))
        return HTMLResponse(report.page(rows, chart_sku, png))

    return Route("/planning", get)


SERVICE = Service(
    name="inventory",
    subscriptions=subscriptions_for(handlers.USE_CASES),
    handle=handle,
    inbox_key=handlers.inbox_key,
    events_topic=topics.INVENTORY_EVENTS,
    key_field="sku",
    reads=[AVAILABILITY],
    background=lambda runtime: [review_etas(runtime), plan_replenishment(runtime)],
    pages=lambda runtime: [planning_page(runtime)],
)

if __name__ == "__main__":
    serve(SERVICE)
