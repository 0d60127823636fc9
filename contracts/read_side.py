"""The HTTP read side of contract v1: what GET /orders/{order_id} and GET /availability/{sku} answer."""

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict


class View(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Rejection(View):
    reason: str
    message: str


class OrderLineView(View):
    sku: str
    quantity: int
    unit_price: str | None  # a decimal string, as sent
    reserved: int  # from stock, not yet shipped
    backordered: int  # still waiting for stock
    fulfilled: int  # backordered units since filled, not yet shipped
    shipped: int
    cancelled: int
    shipping: Literal["standard", "expedited"]  # expedited while filled backorder units wait to ship
    estimated_ship_date: date | None  # of the units still waiting
    rejection: Rejection | None


class OrderView(View):
    order_id: str
    customer_id: str
    status: Literal["placed", "confirmed", "backordered", "ready_to_ship", "partially_shipped", "shipped", "rejected",
                    "cancelled"]
    currency: str | None
    updated_at: datetime
    lines: list[OrderLineView]


class AvailabilityView(View):
    sku: str
    name: str | None
    status: Literal["in_stock", "backorderable", "unavailable"]
    available: int
    on_hand: int
    reserved: int
    backordered: int
    low_stock: bool  # available at or below the safety stock: the product's when set, else the one planning computed
    estimated_ship_date: date | None  # for an order placed now, when backorderable
    updated_at: datetime


class NotFound(View):
    error: str


class UnknownSku(View):
    sku: str
    status: Literal["unavailable"] = "unavailable"
    known: Literal[False] = False
