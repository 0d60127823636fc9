"""The order service: PlaceOrder in, order events out, GET /orders/{order_id}."""

import asyncio
from datetime import UTC, datetime
from functools import partial

import structlog

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from contracts import topics
from services.order import handlers, projections
from services.runtime.subscriptions import subscriptions_for
from services.runtime.service import Runtime, Service, serve
from services.runtime.settings import load


def routes(runtime: Runtime) -> list[Route]:
    async def get_order(request: Request) -> JSONResponse:
        order = await projections.find(runtime.pool, request.path_params["order_id"])
        if order is None:
            return JSONResponse({"error": "order not found"}, status_code=404)
        return JSONResponse(order)

    return [Route("/orders/{order_id}", get_order)]


SETTINGS = load("order")
log = structlog.get_logger()


async def review_goodwill(runtime: Runtime) -> None:
    """Every GOODWILL_REVIEW_S: goodwill for the orders whose backorder has waited GOODWILL_WAIT_DAYS."""
    while True:
        await asyncio.sleep(SETTINGS.goodwill_review_s)
        try:
            async with runtime.pool.acquire() as conn, conn.transaction():
                offered = await handlers.offer_goodwill_for_long_waits(
                    conn, datetime.now(UTC).date(), SETTINGS.goodwill_wait_days, SETTINGS.goodwill_percent)
        except Exception as error:  # a database hiccup: the next review catches up
            log.warning("goodwill review failed", error=repr(error))
            continue
        if offered:
            runtime.relay.wake()


SERVICE = Service(
    name="order",
    subscriptions=subscriptions_for(handlers.USE_CASES),
    handle=partial(handlers.handle, goodwill_percent=SETTINGS.goodwill_percent),
    inbox_key=handlers.inbox_key,
    events_topic=topics.ORDERS_EVENTS,
    key_field="order_id",
    routes=routes,
    background=lambda runtime: [review_goodwill(runtime)],
)

if __name__ == "__main__":
    serve(SERVICE)
