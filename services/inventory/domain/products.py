"""Product facts: registering, changing and discontinuing a product, and what that does to what waits."""

from dataclasses import asdict, replace
from datetime import date

from contracts.commands import DiscontinueProduct, RegisterProduct, UpdateProduct
from contracts.events import Event, ProductDiscontinued, ProductRegistered, ProductUpdated
from services.inventory.domain.state import Refused, Sku, apply
from services.inventory.domain.supply import after_supply_changed


def register_product(state: Sku, cmd: RegisterProduct, today: date) -> list[Event]:
    """A new product; for one already registered, the same as UpdateProduct with every fact (and
    DiscontinueProduct with `discontinued=true`). Discontinuing is final: registering it back is refused."""
    facts = cmd.model_dump(exclude={"sku", "discontinued"})
    if state.product is None:
        return [ProductRegistered(sku=cmd.sku, discontinued=cmd.discontinued, **facts)]
    if state.product.discontinued and not cmd.discontinued:
        raise Refused(f"RegisterProduct for {cmd.sku}: the product is discontinued, and that is final")
    draft = state.draft()
    # Discontinued first: what it cancels is not told a new lead time's slip a moment before.
    events = apply(draft, discontinue_product(draft, DiscontinueProduct(sku=cmd.sku), today)) if cmd.discontinued else []
    return events + _update(draft, UpdateProduct(sku=cmd.sku, **facts), today)


def update_product(state: Sku, cmd: UpdateProduct, today: date) -> list[Event]:
    """New product facts; a new lead time moves the ETAs that rest on it (never to a day already past)."""
    if state.product is None:
        raise Refused(f"UpdateProduct for {cmd.sku}: no such product")
    return _update(state.draft(), cmd, today)


def _update(draft: Sku, cmd: UpdateProduct, today: date) -> list[Event]:
    changes = cmd.model_dump(exclude={"sku"}, exclude_none=True)
    product = replace(draft.product, **changes | {"alternatives": tuple(changes.get("alternatives", draft.product.alternatives))})
    if product == draft.product:
        return []
    lead_time_moved = product.lead_time_days != draft.product.lead_time_days
    events = apply(draft, [ProductUpdated(sku=cmd.sku, **asdict(product))])
    # Other facts (a name, backorderable) move no ETA: the queue is walked only for a new lead time.
    return events + (after_supply_changed(draft, None, today) if lead_time_moved else [])


def discontinue_product(state: Sku, cmd: DiscontinueProduct, today: date) -> list[Event]:
    """No new backorders. Waiting ones that purchase orders already expected will fill keep waiting; the
    units they cannot fill are cancelled, and the customers told why. A purchase order already overdue is
    expected where the daily review would expect it first: what it still fills is not promised a past day."""
    if state.product is None:
        raise Refused(f"DiscontinueProduct for {cmd.sku}: no such product")
    if state.product.discontinued:
        return []
    draft = state.draft()
    reach = draft.supply
    events = apply(draft, [ProductDiscontinued(sku=cmd.sku, reason=cmd.reason)])
    return events + after_supply_changed(draft, reach, today, cmd.reason)
