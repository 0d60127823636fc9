"""A service's HTTP read side, declared once: the route, and what it answers for the OpenAPI document."""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


@dataclass(frozen=True)
class ReadEndpoint:
    """GET `path`: `find(runtime, **path params)` gives the view, or None, answered 404 with `missing(**params)`."""

    path: str
    summary: str
    view: type[BaseModel]
    missing_view: type[BaseModel]
    find: Callable[..., Awaitable[BaseModel | None]]
    missing: Callable[..., BaseModel]

    def route(self, runtime: Any) -> Route:
        async def get(request: Request) -> JSONResponse:
            found = await self.find(runtime, **request.path_params)
            if found is None:
                return JSONResponse(self.missing(**request.path_params).model_dump(mode="json"), status_code=404)
            return JSONResponse(found.model_dump(mode="json"))

        return Route(self.path, get)
