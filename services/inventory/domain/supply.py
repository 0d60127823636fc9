"""Purchase orders, and the ETAs they give waiting backorders.

A backorder's ETA is the expected date of the purchase order that covers its last unit, the queue served
oldest first, else the day it was placed plus the supplier lead time (once a review moved it, the day of
that review: the lead time counts from the day a supplier could have been asked). Only the head of the queue that
supply covers can have ETAs that depend on purchase orders: a change costs in proportion to that head, not
to the length of the queue."""

from collections.abc import Iterable, Iterator
from datetime import date, timedelta

from contracts.commands import CancelReplenishment, ExpectReplenishment, RescheduleReplenishment
from contracts.events import (
    BackorderCancelled,
    BackorderEtaChanged,
    Event,
    LeadTimeLearned,
    ReplenishmentCancelled,
    ReplenishmentExpected,
    ReplenishmentRescheduled,
    StockReleased,
)
from services.inventory.domain.state import Backorder, NotLoaded, Refused, Sku, apply

# A purchase order expected further ahead than this is a mistake (a date such as 9999-12-31 would be promised to
# customers, and the supplier's learned lateness added to it would overflow the calendar). Generous: tests and
# benchmarks park purchase orders in 2099.
FURTHEST_EXPECTED = timedelta(days=36525)


def expect_replenishment(state: Sku, cmd: ExpectReplenishment, today: date) -> list[Event]:
    if any(r.po_id == cmd.po_id for r in state.replenishments):
        return []  # the same purchase order again
    _credible(cmd, today)
    return _changed(state, ReplenishmentExpected(**cmd.model_dump()), today)


def reschedule_replenishment(state: Sku, cmd: RescheduleReplenishment, today: date) -> list[Event]:
    _credible(cmd, today)
    replenishment = next((r for r in state.replenishments if r.po_id == cmd.po_id), None)
    if replenishment is None or replenishment.expected_on == cmd.expected_on:
        return []  # unknown, already delivered, or no change
    return _changed(state, ReplenishmentRescheduled(**cmd.model_dump()), today)


def cancel_replenishment(state: Sku, cmd: CancelReplenishment, today: date) -> list[Event]:
    if not any(r.po_id == cmd.po_id for r in state.replenishments):
        return []
    return _changed(state, ReplenishmentCancelled(**cmd.model_dump()), today)


def _credible(cmd: ExpectReplenishment | RescheduleReplenishment, today: date) -> None:
    if cmd.expected_on > today + FURTHEST_EXPECTED:
        raise Refused(f"{type(cmd).__name__} {cmd.po_id} for {cmd.sku}: expected_on {cmd.expected_on} is more than "
                      f"100 years after today ({today})")


def learn_lead_time(state: Sku, learned: LeadTimeLearned, today: date) -> list[Event]:
    """A new learned lead time or supplier delay: the ETAs that rest on them move, as with a product's new
    lead time. The same numbers of days again change nothing. A shorter lead time never promises a day
    already past (a backorder placed before it was learned): such an ETA moves where the daily review would
    move it, today plus the lead time."""
    if (state.learned_lead_time_days, state.learned_delay_days) == (learned.lead_time_days, learned.delay_days):
        return []
    draft = state.draft()
    return apply(draft, [learned]) + after_supply_changed(draft, None, today)


def _changed(state: Sku, change: Event, today: date) -> list[Event]:
    """A change of supply and the ETAs it moves."""
    draft = state.draft()
    reach = draft.supply
    return apply(draft, [change]) + after_supply_changed(draft, reach, today)


def after_supply_changed(draft: Sku, reach: int | None, today: date, reason: str | None = None,
                         etas_move: bool = True) -> list[Event]:
    """After stock, supply, the queue or the lead time changed, applied to `draft`: what supply no longer
    covers of a discontinued product is cancelled first (nobody is told a slip for units being cancelled);
    then the ETAs of what still waits move. Before any ETA is walked, a purchase order that did not come by
    its date is expected where the daily review would expect it (today plus the lead time): customers are
    not promised a day already past, to be told of a slip tomorrow. `reach`: see `eta_changes`."""
    events = apply(draft, cancel_uncovered(draft, reason))
    if not etas_move and not events:
        return events
    events += apply(draft, overdue_rescheduled(draft, today))
    return events + apply(draft, eta_changes(draft, reach, today))


def eta_changes(state: Sku, reach: int | None, today: date) -> list[Event]:
    """BackorderEtaChanged for each waiting backorder whose ETA moved. Only the first `reach` units of the
    queue (as covered before the change), or those supply covers now, can have moved; beyond, ETAs rest on
    the lead time as they did. `reach=None` walks the whole queue (the lead time changed). An ETA that would
    be a day before `today` (a lead time shortened since the backorder was placed, or one placed long ago
    that moves back onto the lead time) moves where the daily review would move it, today plus the lead
    time: an overdue move, kept even when the date stays, as it records the review, without which the next
    walk would compute the past day again."""
    changes = []
    for b, eta in etas(state, reach):
        overdue_on = None
        if eta < today:
            eta, overdue_on = today + state.lead_time, today
        if eta != b.eta or overdue_on:
            changes.append(BackorderEtaChanged(order_id=b.order_id, sku=state.sku, quantity=b.quantity,
                                               previous_estimated_ship_date=b.eta, estimated_ship_date=eta,
                                               overdue_on=overdue_on))
    return changes


def etas(state: Sku, reach: int | None) -> Iterator[tuple[Backorder, date]]:
    """Each waiting backorder of the head with the ETA it should have, as far as `reach` (see above)."""
    if reach is None and not state.queue_complete:
        raise NotLoaded(state.sku, "queue", whole=True)
    bound = None if reach is None else max(reach, state.supply)
    covers = _covers(state)
    cover = next(covers, None)
    ahead = 0
    rows = state.head()
    while bound is None or ahead < bound:
        backorder = next(rows, None)
        if backorder is None:
            return
        ahead += backorder.quantity
        while cover and cover[0] < ahead:
            cover = next(covers, None)
        computed = cover[1] if cover else backorder.reviewed_on + state.lead_time
        yield backorder, promised(backorder, computed)


def promised(backorder: Backorder, computed: date) -> date:
    """The ETA to tell: the computed one, unless it is earlier than the day the backorder was placed or last
    reviewed (a purchase order overdue by then): then the date promised that day stands."""
    return computed if computed >= backorder.reviewed_on else backorder.fallback_eta


def eta_of_new_backorder(state: Sku, quantity: int, today: date) -> date:
    """The ETA of a backorder of `quantity` placed today behind the waiting ones, without walking the queue:
    those take the first `state.backordered` units of expected supply. A purchase order already overdue
    gives no credible date: today plus the lead time does, where the daily review will expect it."""
    for covered, expected_on in _covers(state):
        if covered >= state.backordered + quantity:
            return expected_on if expected_on >= today else today + state.lead_time
    return today + state.lead_time


def _covers(state: Sku) -> Iterator[tuple[int, date]]:
    """(units of the queue covered so far, by the purchase order expected on this date), earliest first; the
    date is the purchase order's plus the lateness learned of its supplier."""
    covered = 0
    for replenishment in state.replenishments:
        covered += replenishment.quantity
        yield covered, replenishment.expected_on + state.supplier_delay


def review_overdue(state: Sku, today: date, order_ids: Iterable[str]) -> list[Event]:
    """The daily review. A purchase order that did not come by its date is expected at the next credible
    one, today plus the lead time (the earliest a supplier asked now could deliver), until the warehouse
    says otherwise; the ETAs resting on it move with it. Then each ETA that still passed without supply (it
    rested on the lead time) is a slip: it moves once, to the same date, and stays there until supply gives
    a credible one. `order_ids` are the backorders found overdue, loaded by name."""
    draft = state.draft()
    events = apply(draft, reschedule_overdue(draft, today))
    overdue = [b for b in map(draft.backorder, order_ids) if b and b.eta < today]
    return events + [
        BackorderEtaChanged(order_id=b.order_id, sku=state.sku, quantity=b.quantity,
                            previous_estimated_ship_date=b.eta, estimated_ship_date=today + state.lead_time,
                            overdue_on=today)
        for b in sorted(overdue, key=lambda b: b.seq)
    ]


def reschedule_overdue(state: Sku, today: date) -> list[Event]:
    """Purchase orders that did not come by their date are expected today plus the lead time; the ETAs
    resting on them move with them. The review does this, and so does the first backorder of the day that
    would otherwise be promised a date before those ahead of it."""
    late = overdue_rescheduled(state, today)
    if not late:
        return []
    draft = state.draft()
    reach = draft.supply
    return apply(draft, late) + eta_changes(draft, reach, today)


def overdue_rescheduled(state: Sku, today: date) -> list[Event]:
    return [ReplenishmentRescheduled(po_id=r.po_id, sku=state.sku, expected_on=today + state.lead_time, overdue_on=today)
            for r in state.replenishments if r.expected_on < today]


def cancel_uncovered(state: Sku, reason: str | None = None) -> list[Event]:
    """For a discontinued product: waiting units that no expected purchase order will fill are cancelled,
    and the customers told why."""
    if not (state.product and state.product.discontinued) or state.backordered <= state.supply:
        return []
    why = f"{state.product.name} is discontinued" + (f": {reason}" if reason else "")
    supply = state.supply
    cancellations: list[Event] = []
    for backorder in state.head():
        covered = min(backorder.quantity, supply)
        supply -= covered
        if uncovered := backorder.quantity - covered:
            cancellations += [
                BackorderCancelled(order_id=backorder.order_id, sku=state.sku, quantity=uncovered, remaining=covered),
                StockReleased(order_id=backorder.order_id, sku=state.sku, quantity=0, backorder_cancelled=uncovered,
                              kept=0, reason=why, requested=False),
            ]
    return cancellations
