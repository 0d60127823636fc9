"""The order service: PlaceOrder in, order events out, GET /orders/{order_id}."""

from functools import partial

import structlog

from contracts import topics
from contracts.read_side import NotFound, OrderView
from services.order import handlers, projections
from services.runtime import clock
from services.runtime.subscriptions import subscriptions_for
from services.runtime.http import ReadEndpoint
from services.runtime.service import Runtime, Service, serve
from services.runtime.settings import load


ORDER = ReadEndpoint("/orders/{order_id}", "The order as a storefront sees it: status, and per line what is "
                     "reserved, backordered (with the ETA), filled, shipped and cancelled.", OrderView, NotFound,
                     find=lambda runtime, order_id: projections.find(runtime.pool, order_id),
                     missing=lambda order_id: NotFound(error="order not found"))


SETTINGS = load("order")
log = structlog.get_logger()


async def review_goodwill(runtime: Runtime) -> None:
    """Every GOODWILL_REVIEW_S: goodwill for the orders whose backorder has waited GOODWILL_WAIT_DAYS."""
    while True:
        await clock.sleep(SETTINGS.goodwill_review_s)
        try:
            async with runtime.pool.acquire() as conn, conn.transaction():
                offered = await handlers.offer_goodwill_for_long_waits(
                    conn, clock.today(), SETTINGS.goodwill_wait_days, SETTINGS.goodwill_percent)
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
    reads=[ORDER],
    background=lambda runtime: [review_goodwill(runtime)],
)

if __name__ == "__main__":
    serve(SERVICE)
