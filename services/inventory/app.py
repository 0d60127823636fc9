"""The inventory service: products, receipts and replenishments in, allocation of placed orders,
inventory events out, GET /availability/{sku}."""

from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from contracts import topics
from contracts.commands import INVENTORY_COMMANDS
from contracts.events import CancellationRequested, OrderPlaced
from services.inventory import handlers, projections
from services.runtime.messages import Subscription
from services.runtime.service import Runtime, Service, serve


def routes(runtime: Runtime) -> list[Route]:
    async def get_availability(request: Request) -> JSONResponse:
        availability = await projections.find(runtime.pool, request.path_params["sku"])
        if availability is None:
            return JSONResponse({"sku": request.path_params["sku"], "status": "unavailable", "known": False},
                                status_code=404)
        return JSONResponse(availability)

    return [Route("/availability/{sku}", get_availability)]


async def handle(conn, messages) -> None:
    await handlers.handle(conn, messages, today=datetime.now(UTC).date())


SERVICE = Service(
    name="inventory",
    subscriptions=[
        Subscription(topics.INVENTORY_COMMANDS, INVENTORY_COMMANDS, strict=True),
        Subscription(topics.ORDERS_EVENTS, {e.__name__: e for e in (OrderPlaced, CancellationRequested)}, strict=False),
    ],
    handle=handle,
    inbox_key=handlers.inbox_key,
    events_topic=topics.INVENTORY_EVENTS,
    key_field="sku",
    routes=routes,
)

if __name__ == "__main__":
    serve(SERVICE)
