"""What to tell a customer, and when: pure functions from events to notifications, each refused line told
once, the backorders a batch leaves waiting, and the rule that coalesces ETA changes into one update per order."""

from collections.abc import Iterable, Mapping, Sequence, Set
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from uuid import NAMESPACE_URL, UUID, uuid5

from contracts.events import (
    BackorderCancelled,
    BackorderCreated,
    BackorderEtaChanged,
    BackorderFulfilled,
    DiscountOffered,
    Event,
    OrderBackordered,
    OrderCancelled,
    OrderConfirmed,
    OrderReadyToShip,
    OrderRejected,
    OrderShipped,
    OrderStatusChanged,
    RejectedLine,
    ReservationRevoked,
)

MAX_ALTERNATIVES = 3  # in-stock alternatives offered with a backorder


@dataclass(frozen=True)
class Notification:
    notification_id: UUID
    order_id: str
    kind: str
    subject: str
    body: str


def notification_id(kind: str, cause_id: str) -> UUID:
    """The same cause always gives the same notification: the key that stops a second send."""
    return uuid5(NAMESPACE_URL, f"orderflow:notification:{kind}:{cause_id}")


def named_skus(event: Event) -> set[str]:
    """The SKUs whose product names the notification for `event` would show."""
    match event:
        case BackorderCreated() | BackorderFulfilled() | ReservationRevoked():
            return {event.sku}
        case OrderCancelled() | OrderShipped():
            return {l.sku for l in event.lines} | {l.sku for l in refused(event)}
    return {l.sku for l in refused(event)}


def refused(event: Event) -> list[RejectedLine]:
    """The refused lines a status event carries: all of its order's refusals so far, one per SKU (the first), as
    each SKU is told once."""
    match event:
        case OrderRejected():
            lines = event.lines
        case OrderConfirmed() | OrderBackordered() | OrderReadyToShip() | OrderCancelled() | OrderStatusChanged():
            lines = event.rejected_lines
        case _:
            return []
    first: dict[str, RejectedLine] = {}
    for line in lines:
        first.setdefault(line.sku, line)
    return list(first.values())


def decide(event: Event, cause_id: str, names: Mapping[str, str] = {},
           alternatives: Mapping[str, Sequence[tuple[str, str]]] = {}, told: Set[str] = frozenset()
           ) -> Notification | None:
    """The notification `event` (carried by the message `cause_id`) calls for, if any. `names` are product
    names by SKU, where known; `alternatives` are (sku, name) by SKU of products in stock now that could
    replace a backordered one; `told` the SKUs of the order's refused lines told before, which it leaves out."""
    untold = [line for line in refused(event) if line.sku not in told]
    match event:
        case OrderConfirmed():
            kind = "order_confirmed"
            subject = f"Order {event.order_id} is confirmed"
            body = "Thank you: every item of your order is reserved from stock and will ship soon.\n"
            for line in untold:
                body += f"We could not accept {line.sku}: {line.message}.\n"
        case BackorderCreated():
            kind = "backorder_created"
            item = names.get(event.sku, event.sku)
            subject = f"Order {event.order_id}: {item} is backordered"
            body = (
                f"We could not ship {event.quantity} x {item} ({event.sku}) from stock, so we have backordered "
                f"them for you.\nEstimated ship date: {event.estimated_ship_date.isoformat()}.\n"
                "We will write again when they ship; backordered items ship expedited at no extra cost.\n"
            )
            if offered := list(alternatives.get(event.sku, ()))[:MAX_ALTERNATIVES]:
                body += "\nIn stock now, if you would rather not wait:\n"
                body += "".join(f"  - {name} ({sku})\n" for sku, name in offered)
        case DiscountOffered(cause="long_wait"):  # a slipped ETA's discount rides on the ETA update instead
            kind = "discount_offered"
            subject = f"Order {event.order_id}: thank you for your patience"
            body = (f"We are sorry your backorder is taking so long ({event.reason}).\n"
                    f"Use code {event.code} for {event.percent}% off your next purchase.\n")
        case ReservationRevoked():
            kind = "reservation_revoked"
            item = names.get(event.sku, event.sku)
            subject = f"Order {event.order_id}: {item} is backordered after a stock count"
            body = (
                f"A stock count found fewer {item} ({event.sku}) than we had set aside, so {event.quantity} of "
                f"yours are backordered, first in line.\nEstimated ship date: "
                f"{event.estimated_ship_date.isoformat()}. We are sorry; they will ship expedited.\n"
            )
        case BackorderFulfilled():
            kind = "backorder_fulfilled"
            item = names.get(event.sku, event.sku)
            subject = f"Order {event.order_id}: {item} ships now, expedited"
            body = f"Good news: {event.quantity} x {item} from your backorder ship now, by expedited shipping.\n"
            if event.remaining:
                body += f"{event.remaining} more are still on backorder; we will tell you when they ship.\n"
        case OrderShipped():
            kind = "order_shipped"
            # Told once per shipment, whichever message carries it (ids hold no whitespace: the pair is unique).
            cause_id = f"{event.order_id} {event.shipment_id}"
            if event.complete:
                subject, body = f"Order {event.order_id} has shipped", "Your order is on its way:\n"
            else:
                subject, body = f"Order {event.order_id}: part of it has shipped", "Part of your order is on its way:\n"
            body += "".join(f"  - {l.quantity} x {_item(l.sku, names)}\n" for l in event.lines)
            if event.carrier:
                body += f"Carrier: {event.carrier}\n"
            if event.tracking_number:
                body += f"Tracking number: {event.tracking_number}\n"
            if not event.complete:
                body += "The rest of your order follows; we will write again when it ships.\n"
        case OrderCancelled() if not event.lines:
            # Closed rather than cancelled: its last open line was refused after the rest had been cancelled
            # (and refunded, told then), so no refund is due now.
            kind = "order_cancelled"
            subject = f"Order {event.order_id} is closed"
            body = "Your order is closed: nothing of it is left to ship.\n"
            if event.reason:
                body += f"Reason: {event.reason.rstrip('.')}.\n"
            body += _refused(untold, names)
        case OrderCancelled():
            kind = "order_cancelled"
            subject = f"Order {event.order_id}: cancellation confirmed"
            what = "your order" if event.whole_order else ", ".join(
                f"{l.quantity} x {_item(l.sku, names)}" for l in event.lines)
            body = f"We have cancelled {what}.\n"
            if event.reason:
                body += f"Reason: {event.reason.rstrip('.')}.\n"
            if event.refund_amount is not None:
                amount = f"{event.refund_amount} {event.currency}" if event.currency else str(event.refund_amount)
                body += f"A refund of {amount} is on its way.\n"
            else:
                body += "Anything you paid for the cancelled items will be refunded.\n"
            body += _refused(untold, names)
        case OrderRejected() | OrderBackordered() | OrderReadyToShip() | OrderStatusChanged() if untold:
            # Refusals no mail of this order told yet, and no mail of its own carries: named after what it tells
            # (no line is told twice, so no two of these share it).
            kind, cause_id = "lines_refused", " ".join([event.order_id, *sorted(line.sku for line in untold)])
            if isinstance(event, OrderRejected):
                subject = f"Order {event.order_id} could not be accepted"
                rest = "Nothing of your order can be ordered, so nothing of it will ship.\n"
            else:
                subject = f"Order {event.order_id}: items we could not accept"
                rest = "The rest of your order is not affected.\n"
            body = _refused(untold, names) + rest
        case _:
            return None
    return Notification(notification_id(kind, cause_id), event.order_id, kind, subject, body)


def decide_each(events: Sequence[tuple[Event, str]], told: Mapping[str, Set[str]], names: Mapping[str, str] = {},
                alternatives: Mapping[str, Sequence[tuple[str, str]]] = {}
                ) -> tuple[list[Notification | None], list[tuple[str, str, UUID]]]:
    """`decide` for a batch's events (each with the id of the message that carried it), in order: each refused
    line is told by the first of them that carries it, unless its order's SKUs `told` before name it. Returns
    the notifications, one per event, and the refusals they tell, (order, SKU, notification id) each."""
    told_now = {order_id: set(skus) for order_id, skus in told.items()}
    notifications, newly_told = [], []
    for event, cause_id in events:
        lines = refused(event)
        order_told = told_now.setdefault(event.order_id, set()) if lines else set()
        notification = decide(event, cause_id, names, alternatives, order_told)
        for line in lines:
            if line.sku not in order_told:  # decide told it: an event carrying a line not told is always mailed
                order_told.add(line.sku)
                newly_told.append((event.order_id, line.sku, notification.notification_id))
        notifications.append(notification)
    return notifications, newly_told


def _item(sku: str, names: Mapping[str, str]) -> str:
    return f"{names[sku]} ({sku})" if sku in names else sku


def _refused(lines: Sequence[RejectedLine], names: Mapping[str, str]) -> str:
    """Which items could not be ordered, and why."""
    if not lines:
        return ""
    return "We could not order:\n" + "".join(f"  - {_item(l.sku, names)}: {l.message}\n" for l in lines)


# --- What waits ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Waiting:
    """Units of an order still waiting for a SKU, and their ETA (None: the one known before)."""

    quantity: int
    eta: date | None


def still_waiting(events: Iterable[Event]) -> dict[tuple[str, str], Waiting | None]:
    """What of each (order, SKU) backorder these events touch still waits after them, folded in order;
    None when nothing does. Units left by a fill or a cancellation wait on the ETA they had."""
    waits: dict[tuple[str, str], Waiting | None] = {}
    for event in events:
        match event:
            case BackorderCreated() | BackorderEtaChanged():
                waits[(event.order_id, event.sku)] = Waiting(event.quantity, event.estimated_ship_date)
            case ReservationRevoked():
                waits[(event.order_id, event.sku)] = Waiting(event.waiting, event.estimated_ship_date)
            case BackorderFulfilled() | BackorderCancelled():  # a partial cancellation leaves `remaining` too
                key = (event.order_id, event.sku)
                before = waits.get(key)
                waits[key] = Waiting(event.remaining, before.eta if before else None) if event.remaining > 0 else None
    return waits


# --- ETA updates --------------------------------------------------------------------------------
#
# The coalescing rule: ETA changes to one order within the update window make one mail. The first change
# queues the order's update, due a window later; a change that finds it still waiting joins it (and
# marks it touched). The update is written when it is sent, from the ETAs known then, so it tells the
# latest, and a goodwill discount for a slip rides on it. A change that touches an update while it is
# being sent gets a follow-up, due at once, so the latest ETA is never left untold. The outbox keeps
# one waiting update per order and channel; the dispatcher writes them with `eta_update`.

ETA_UPDATE = "eta_changed"


def calls_for_eta_update(event: Event) -> bool:
    """An ETA moved, or goodwill for a slip was offered (the update carries it). A review that kept the date (an
    overdue ETA already where the review puts it) tells the customer nothing."""
    if isinstance(event, DiscountOffered):
        return event.cause == "eta_slipped"
    return isinstance(event, BackorderEtaChanged) and event.estimated_ship_date != event.previous_estimated_ship_date


@dataclass(frozen=True)
class EtaUpdate:
    """The update an order's ETA changes call for: one per order, due `send_after`."""

    notification_id: UUID
    order_id: str
    correlation_id: str
    causation_id: str
    send_after: datetime


def eta_updates(changes: Iterable[tuple[str, str, str]], now: datetime, window_s: float) -> list[EtaUpdate]:
    """One update per order for the changes of a batch, each (order id, id of the message that changed
    it, correlation id), named after the first change and due a window from now."""
    updates: dict[str, EtaUpdate] = {}
    for order_id, cause_id, correlation_id in changes:
        if order_id not in updates:
            updates[order_id] = EtaUpdate(notification_id(ETA_UPDATE, cause_id), order_id, correlation_id, cause_id,
                                          now + timedelta(seconds=window_s))
    return list(updates.values())


def eta_update(order_id: str, waiting: list[tuple[str, int, date]], discount: tuple[str, int] | None
               ) -> tuple[str, str] | None:
    """Subject and body of the one update that tells the latest ETA of each waiting line (name, quantity,
    ETA), with a goodwill discount (code, percent) if one is due; None when nothing waits any more."""
    if not waiting:
        return None
    subject = f"Order {order_id}: new estimated ship date"
    body = "The estimated ship date of your backorder has changed:\n"
    body += "".join(f"  - {quantity} x {name}: now {eta.isoformat()}\n" for name, quantity, eta in waiting)
    if discount:
        code, percent = discount
        body += (f"\nWe are sorry for the wait. Use code {code} for {percent}% off your next purchase.\n")
    return subject, body
