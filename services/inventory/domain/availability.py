"""What a storefront should show for a SKU: in stock, backorderable with an ETA, or unavailable."""

from datetime import date
from typing import NamedTuple

from contracts.events import AvailabilityChanged, Event
from services.inventory.domain.state import Sku
from services.inventory.domain.supply import eta_of_new_backorder


class Shown(NamedTuple):
    status: str  # in_stock | backorderable | unavailable
    available: int
    estimated_ship_date: date | None


def availability(state: Sku, today: date) -> Shown:
    if state.product is None:
        return Shown("unavailable", 0, None)
    if state.available > 0:
        return Shown("in_stock", state.available, None)
    if state.product.discontinued or not state.product.backorderable:
        return Shown("unavailable", 0, None)
    return Shown("backorderable", 0, eta_of_new_backorder(state, 1, today))


def low_stock(state: Sku) -> bool:
    """Available stock at or below the product's safety stock (a product with none set is never low)."""
    return bool(state.product and state.product.safety_stock and state.available <= state.product.safety_stock)


def availability_changes(shown_before: Shown, state: Sku, today: date) -> list[Event]:
    """AvailabilityChanged when what a storefront should show differs from `shown_before`."""
    shown = availability(state, today)
    if shown == shown_before:
        return []
    return [AvailabilityChanged(sku=state.sku, **shown._asdict())]
