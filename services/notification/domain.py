"""What to tell a customer, and when: pure functions from inventory events to notifications."""

from dataclasses import dataclass
from uuid import NAMESPACE_URL, UUID, uuid5

from contracts.events import BackorderCreated, BackorderFulfilled, Event, OrderCancelled, OrderConfirmed


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


def decide(event: Event, cause_id: str) -> Notification | None:
    match event:
        case OrderConfirmed():
            kind = "order_confirmed"
            subject = f"Order {event.order_id} is confirmed"
            body = "Thank you: every item of your order is reserved from stock and will ship soon.\n"
            for line in event.rejected_lines:
                body += f"We could not accept {line.sku}: {line.message}.\n"
        case BackorderCreated():
            kind = "backorder_created"
            subject = f"Order {event.order_id}: {event.sku} is backordered"
            body = (
                f"We could not ship {event.quantity} x {event.sku} from stock, so we have backordered them "
                f"for you.\nEstimated ship date: {event.estimated_ship_date.isoformat()}.\n"
                "We will write again when they ship; backordered items ship expedited at no extra cost.\n"
            )
        case BackorderFulfilled():
            kind = "backorder_fulfilled"
            subject = f"Order {event.order_id}: {event.sku} ships now, expedited"
            body = f"Good news: {event.quantity} x {event.sku} from your backorder ship now, by expedited shipping.\n"
            if event.remaining:
                body += f"{event.remaining} more are still on backorder; we will tell you when they ship.\n"
        case OrderCancelled():
            kind = "order_cancelled"
            subject = f"Order {event.order_id}: cancellation confirmed"
            what = "your order" if event.whole_order else ", ".join(f"{l.quantity} x {l.sku}" for l in event.lines)
            body = f"We have cancelled {what} as you asked.\n"
            if event.refund_amount is not None:
                body += f"A refund of {event.refund_amount} {event.currency or ''} is on its way.\n".replace(" \n", "\n")
            else:
                body += "Anything you paid for the cancelled items will be refunded.\n"
        case _:
            return None
    return Notification(notification_id(kind, cause_id), event.order_id, kind, subject, body)
