"""What to tell a customer, and when: pure functions from inventory events to notifications."""

from dataclasses import dataclass
from datetime import date
from uuid import NAMESPACE_URL, UUID, uuid5

from contracts.events import (
    BackorderCreated,
    BackorderFulfilled,
    DiscountOffered,
    Event,
    OrderCancelled,
    OrderConfirmed,
    ReservationRevoked,
)


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


def decide(event: Event, cause_id: str, product_name: str | None = None,
           alternatives: list[tuple[str, str]] = ()) -> Notification | None:
    """The notification `event` calls for, if any. `alternatives` are (sku, name) of products in stock
    now that could replace a backordered one."""
    match event:
        case OrderConfirmed():
            kind = "order_confirmed"
            subject = f"Order {event.order_id} is confirmed"
            body = "Thank you: every item of your order is reserved from stock and will ship soon.\n"
            for line in event.rejected_lines:
                body += f"We could not accept {line.sku}: {line.message}.\n"
        case BackorderCreated():
            kind = "backorder_created"
            item = product_name or event.sku
            subject = f"Order {event.order_id}: {item} is backordered"
            body = (
                f"We could not ship {event.quantity} x {item} ({event.sku}) from stock, so we have backordered "
                f"them for you.\nEstimated ship date: {event.estimated_ship_date.isoformat()}.\n"
                "We will write again when they ship; backordered items ship expedited at no extra cost.\n"
            )
            if alternatives:
                body += "\nIn stock now, if you would rather not wait:\n"
                body += "".join(f"  - {name} ({sku})\n" for sku, name in alternatives)
        case DiscountOffered(cause="long_wait"):  # a slipped ETA's discount rides on the ETA update instead
            kind = "discount_offered"
            subject = f"Order {event.order_id}: thank you for your patience"
            body = (f"We are sorry your backorder is taking so long ({event.reason}).\n"
                    f"Use code {event.code} for {event.percent}% off your next purchase.\n")
        case ReservationRevoked():
            kind = "reservation_revoked"
            item = product_name or event.sku
            subject = f"Order {event.order_id}: {item} is backordered after a stock count"
            body = (
                f"A stock count found fewer {item} ({event.sku}) than we had set aside, so {event.quantity} of "
                f"yours are backordered, first in line.\nEstimated ship date: "
                f"{event.estimated_ship_date.isoformat()}. We are sorry; they will ship expedited.\n"
            )
        case BackorderFulfilled():
            kind = "backorder_fulfilled"
            item = product_name or event.sku
            subject = f"Order {event.order_id}: {item} ships now, expedited"
            body = f"Good news: {event.quantity} x {item} from your backorder ship now, by expedited shipping.\n"
            if event.remaining:
                body += f"{event.remaining} more are still on backorder; we will tell you when they ship.\n"
        case OrderCancelled():
            kind = "order_cancelled"
            subject = f"Order {event.order_id}: cancellation confirmed"
            what = "your order" if event.whole_order else ", ".join(f"{l.quantity} x {l.sku}" for l in event.lines)
            body = f"We have cancelled {what}" + (f" ({event.reason}).\n" if event.reason else ".\n")
            if event.refund_amount is not None:
                body += f"A refund of {event.refund_amount} {event.currency or ''} is on its way.\n".replace(" \n", "\n")
            else:
                body += "Anything you paid for the cancelled items will be refunded.\n"
        case _:
            return None
    return Notification(notification_id(kind, cause_id), event.order_id, kind, subject, body)


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
