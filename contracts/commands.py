"""Commands of contract v1: what storefronts and warehouse systems ask of orderflow."""

from datetime import date
from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

# Strict numbers: "5", 5.0 and true are not quantities.
Quantity = Annotated[int, Field(strict=True, gt=0, le=1_000_000)]
Sku = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$")]
Identifier = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"^[^\s]+$")]
Email = Annotated[str, StringConstraints(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")]
Price = Annotated[Decimal, Field(ge=0, max_digits=14, decimal_places=4)]


class Command(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _one_line_per_sku(cls, lines: list | None) -> list | None:
    skus = [line.sku for line in lines or ()]
    if len(set(skus)) != len(skus):
        raise ValueError("each sku may appear on one line only")
    return lines


class OrderLine(Command):
    sku: Sku
    quantity: Quantity
    unit_price: Price | None = None


class PlaceOrder(Command):
    """Place an order; `order_id` makes it idempotent."""

    order_id: Identifier
    customer_id: Identifier
    customer_email: Email
    lines: Annotated[list[OrderLine], Field(min_length=1, max_length=100)]
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] | None = None
    allow_backorder: bool = True

    _one_line_per_sku = field_validator("lines")(_one_line_per_sku)


class CancelOrder(Command):
    """Cancel a whole order, or one line of it when `sku` is given."""

    order_id: Identifier
    sku: Sku | None = None
    reason: Annotated[str, StringConstraints(max_length=500)] | None = None


class ShipmentLine(Command):
    sku: Sku
    quantity: Quantity


class ShipOrder(Command):
    """The warehouse shipped these units of the order (all that is reserved or filled and not yet shipped,
    when `lines` is left out); `shipment_id` makes it idempotent."""

    order_id: Identifier
    shipment_id: Identifier
    lines: Annotated[list[ShipmentLine], Field(min_length=1, max_length=100)] | None = None
    carrier: Annotated[str, StringConstraints(min_length=1, max_length=100)] | None = None
    tracking_number: Annotated[str, StringConstraints(min_length=1, max_length=100)] | None = None

    _one_line_per_sku = field_validator("lines")(_one_line_per_sku)


ServiceLevel = Annotated[float, Field(gt=0.5, lt=1)]


class RegisterProduct(Command):
    """Register a product. Registering an existing SKU again changes it as UpdateProduct (and
    DiscontinueProduct, with `discontinued=true`) would; a discontinued product cannot be registered back."""

    sku: Sku
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    backorderable: bool = True
    discontinued: bool = False
    lead_time_days: Annotated[int, Field(strict=True, ge=0, le=365)]
    # Set by hand, it overrides the safety stock planning computes (0: computed); available stock at or below
    # it shows as `low_stock` on GET /availability/{sku}.
    safety_stock: Annotated[int, Field(strict=True, ge=0, le=1_000_000)] = 0
    alternatives: Annotated[list[Sku], Field(max_length=10)] = []
    # The chance planning aims for that stock covers the demand of a lead time (its safety stock).
    service_level: ServiceLevel = 0.95


class UpdateProduct(Command):
    """Change what is known of a product; fields left out keep their value."""

    sku: Sku
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    backorderable: bool | None = None
    lead_time_days: Annotated[int, Field(strict=True, ge=0, le=365)] | None = None
    safety_stock: Annotated[int, Field(strict=True, ge=0, le=1_000_000)] | None = None
    alternatives: Annotated[list[Sku], Field(max_length=10)] | None = None
    service_level: ServiceLevel | None = None


class DiscontinueProduct(Command):
    """No new backorders from now on; waiting ones are filled from replenishments already expected, or
    cancelled with a refund."""

    sku: Sku
    reason: Annotated[str, StringConstraints(max_length=500)] | None = None


class ReceiveStock(Command):
    """Stock arrived at the warehouse; `receipt_id` makes it idempotent. `po_id` names the purchase order it
    delivers, if known, and closes it: what it did not bring is no longer expected. Without one, it counts
    against the earliest expected replenishments."""

    receipt_id: Identifier
    sku: Sku
    quantity: Quantity
    po_id: Identifier | None = None


class AdjustStock(Command):
    """A physical count found `counted_quantity` units on hand."""

    sku: Sku
    counted_quantity: Annotated[int, Field(strict=True, ge=0, le=100_000_000)]
    reason: Annotated[str, StringConstraints(min_length=1, max_length=500)]


class ExpectReplenishment(Command):
    """A purchase order will deliver `quantity` of `sku` on `expected_on`; `po_id` makes it idempotent."""

    po_id: Identifier
    sku: Sku
    quantity: Quantity
    expected_on: date


class RescheduleReplenishment(Command):
    """A purchase order will arrive on another day (a supplier delay, or earlier than planned)."""

    po_id: Identifier
    sku: Sku
    expected_on: date


class CancelReplenishment(Command):
    """A purchase order will not arrive."""

    po_id: Identifier
    sku: Sku


ORDER_COMMANDS: dict[str, type[Command]] = {c.__name__: c for c in (PlaceOrder, CancelOrder, ShipOrder)}
INVENTORY_COMMANDS: dict[str, type[Command]] = {
    c.__name__: c
    for c in (RegisterProduct, UpdateProduct, DiscontinueProduct, ReceiveStock, AdjustStock, ExpectReplenishment,
              RescheduleReplenishment, CancelReplenishment)
}
