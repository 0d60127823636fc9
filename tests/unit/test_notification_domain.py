"""What the notification service tells customers, and when: its pure rules, no I/O."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from contracts.events import (
    BackorderCancelled,
    BackorderCreated,
    BackorderEtaChanged,
    BackorderFulfilled,
    CancelledLine,
    DiscountOffered,
    OrderCancelled,
    OrderConfirmed,
    OrderReadyToShip,
    OrderRejected,
    OrderShipped,
    OrderStatusChanged,
    RejectedLine,
    ReservationRevoked,
    ShippedLine,
)
from services.notification import domain
from services.notification.domain import Waiting

ETA = date(2026, 12, 9)
LATER = date(2026, 12, 23)
NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def backordered(sku: str = "LAMP", quantity: int = 2, order_id: str = "o1") -> BackorderCreated:
    return BackorderCreated(order_id=order_id, sku=sku, quantity=quantity, estimated_ship_date=ETA,
                            backordered_on=date(2026, 11, 25))


def test_eta_changes_to_one_order_in_a_batch_make_one_update_named_after_the_first_and_due_a_window_later():
    updates = domain.eta_updates([("o1", "m1", "c1"), ("o2", "m2", "c2"), ("o1", "m3", "c3")], NOW, 60)

    assert [(u.order_id, u.causation_id) for u in updates] == [("o1", "m1"), ("o2", "m2")]
    assert updates[0].notification_id == domain.notification_id(domain.ETA_UPDATE, "m1")
    assert {u.send_after for u in updates} == {NOW + timedelta(seconds=60)}


def test_an_eta_move_and_goodwill_for_a_slip_call_for_the_eta_update_but_goodwill_for_a_long_wait_does_not():
    slip = DiscountOffered(order_id="o1", code="X", percent=10, cause="eta_slipped", reason="late")
    wait = DiscountOffered(order_id="o1", code="X", percent=10, cause="long_wait", reason="long")
    move = BackorderEtaChanged(order_id="o1", sku="LAMP", quantity=2, previous_estimated_ship_date=ETA,
                               estimated_ship_date=LATER)
    # A review that kept the date (inventory records it; the customer has nothing to learn).
    kept = move.model_copy(update={"estimated_ship_date": ETA, "overdue_on": ETA})

    assert [domain.calls_for_eta_update(e) for e in (move, slip, wait, backordered(), kept)] == [
        True, True, False, False, False]


def test_the_eta_update_tells_each_waiting_line_its_latest_eta_and_the_discount_and_nothing_when_none_waits():
    subject, body = domain.eta_update("o1", [("Desk Lamp", 2, LATER)], ("SORRY-1", 10))

    assert subject == "Order o1: new estimated ship date"
    assert f"2 x Desk Lamp: now {LATER.isoformat()}" in body and "SORRY-1 for 10% off" in body
    assert domain.eta_update("o1", [], ("SORRY-1", 10)) is None


def test_units_left_by_a_fill_wait_on_the_eta_they_had_and_a_full_fill_leaves_nothing_waiting():
    revoked = ReservationRevoked(order_id="o2", sku="LAMP", quantity=1, estimated_ship_date=LATER,
                                 revoked_on=date(2026, 11, 26), waiting=3)
    waits = domain.still_waiting([
        backordered(quantity=3),
        BackorderFulfilled(order_id="o1", sku="LAMP", quantity=1, remaining=2),
        revoked,
        BackorderFulfilled(order_id="o2", sku="LAMP", quantity=3, remaining=0),
    ])

    assert waits == {("o1", "LAMP"): Waiting(2, ETA), ("o2", "LAMP"): None}


def test_a_partial_cancellation_keeps_the_units_that_still_wait_with_their_eta():
    waits = domain.still_waiting([backordered(quantity=2),
                                  BackorderCancelled(order_id="o1", sku="LAMP", quantity=1, remaining=1)])

    assert waits == {("o1", "LAMP"): Waiting(1, ETA)}


def test_a_partial_cancellation_of_a_backorder_learnt_earlier_keeps_the_eta_known_before():
    waits = domain.still_waiting([BackorderCancelled(order_id="o1", sku="LAMP", quantity=1, remaining=1)])

    assert waits == {("o1", "LAMP"): Waiting(1, None)}  # None: the ETA already recorded stays


def test_a_cancellation_that_leaves_nothing_waiting_drops_the_backorder():
    waits = domain.still_waiting([backordered(quantity=2),
                                  BackorderCancelled(order_id="o1", sku="LAMP", quantity=2, remaining=0)])

    assert waits == {("o1", "LAMP"): None}


def test_a_backorder_mail_names_the_product_and_offers_at_most_three_alternatives_in_stock():
    alternatives = {"LAMP": [(f"ALT{i}", f"Lamp {i}") for i in range(5)]}

    mail = domain.decide(backordered(), "m1", {"LAMP": "Desk Lamp"}, alternatives)

    assert mail.subject == "Order o1: Desk Lamp is backordered"
    assert "Lamp 2 (ALT2)" in mail.body and "ALT3" not in mail.body


def shipped(shipment_id: str = "s1", complete: bool = True, **kw) -> OrderShipped:
    return OrderShipped(order_id="o1", shipment_id=shipment_id, complete=complete,
                        lines=[ShippedLine(sku="LAMP", quantity=2), ShippedLine(sku="BULB", quantity=1)], **kw)


def test_a_shipment_mail_tells_what_shipped_by_name_with_the_carrier_and_tracking_number():
    mail = domain.decide(shipped(carrier="DHL", tracking_number="JD0146"), "m1", {"LAMP": "Desk Lamp"})

    assert (mail.kind, mail.subject) == ("order_shipped", "Order o1 has shipped")
    assert "  - 2 x Desk Lamp (LAMP)\n  - 1 x BULB\n" in mail.body
    assert "Carrier: DHL\n" in mail.body and "Tracking number: JD0146\n" in mail.body
    assert "rest" not in mail.body


def test_a_partial_shipment_mail_says_the_rest_follows_and_leaves_out_what_the_warehouse_did_not_give():
    mail = domain.decide(shipped(complete=False), "m1")

    assert mail.subject == "Order o1: part of it has shipped"
    assert "The rest of your order follows" in mail.body
    assert "Carrier" not in mail.body and "Tracking" not in mail.body


def test_a_shipment_is_one_notification_whichever_message_carries_it():
    first, again, other = (domain.decide(shipped(), "m1"), domain.decide(shipped(), "m2"),
                           domain.decide(shipped("s2"), "m1"))

    assert first.notification_id == again.notification_id != other.notification_id


def test_a_cancellation_mail_states_the_stores_reason_and_the_refund_amount():
    cancelled = OrderCancelled(order_id="o1", lines=[CancelledLine(sku="RADIO", quantity=1)], whole_order=True,
                               reason="Old Radio is discontinued: no longer made", refund_amount=Decimal("5.00"),
                               currency="EUR")

    mail = domain.decide(cancelled, "m1", {"RADIO": "Old Radio"})

    assert mail.kind == "order_cancelled" and mail.subject == "Order o1: cancellation confirmed"
    assert "Reason: Old Radio is discontinued: no longer made.\n" in mail.body
    assert "A refund of 5.00 EUR is on its way." in mail.body


def test_a_cancellation_of_one_line_names_it_and_without_prices_promises_a_refund_of_what_was_paid():
    cancelled = OrderCancelled(order_id="o1", lines=[CancelledLine(sku="LAMP", quantity=2)], whole_order=False)

    mail = domain.decide(cancelled, "m1", {"LAMP": "Desk Lamp"})

    assert mail.body.startswith("We have cancelled 2 x Desk Lamp (LAMP).\n")
    assert "Reason" not in mail.body and "will be refunded" in mail.body


def test_an_order_closed_by_a_refused_last_line_says_which_items_could_not_be_ordered_and_why_and_no_refund():
    closed = OrderCancelled(order_id="o1", lines=[], whole_order=True, rejected_lines=[
        RejectedLine(sku="RADIO", reason="discontinued", message="Old Radio is discontinued and only 0 are left"),
        RejectedLine(sku="GONE", reason="unknown_sku", message="GONE is not a product we sell"),
    ])

    mail = domain.decide(closed, "m1", {"RADIO": "Old Radio"})

    assert mail.kind == "order_cancelled" and mail.subject == "Order o1 is closed"
    assert "  - Old Radio (RADIO): Old Radio is discontinued and only 0 are left\n" in mail.body
    assert "  - GONE: GONE is not a product we sell\n" in mail.body
    assert "refund" not in mail.body.lower()


GONE = RejectedLine(sku="GONE", reason="unknown_sku", message="GONE is not a product we sell")
RADIO = RejectedLine(sku="RADIO", reason="discontinued", message="Old Radio is discontinued and only 0 are left")


def test_a_rejected_order_is_mailed_every_line_that_could_not_be_ordered():
    mail = domain.decide(OrderRejected(order_id="o1", reason="no line of the order can be ordered",
                                       lines=[GONE, RADIO]), "m1", {"RADIO": "Old Radio"})

    assert (mail.kind, mail.subject) == ("lines_refused", "Order o1 could not be accepted")
    assert "  - GONE: GONE is not a product we sell\n  - Old Radio (RADIO): Old Radio is discontinued" in mail.body


def test_mails_leave_out_the_refusals_told_before_and_a_status_naming_none_new_calls_for_no_mail():
    confirmed = domain.decide(OrderConfirmed(order_id="o1", rejected_lines=[GONE, RADIO]), "m1", told={"GONE"})
    assert "RADIO" in confirmed.body and "GONE" not in confirmed.body
    assert domain.decide(OrderReadyToShip(order_id="o1", rejected_lines=[GONE, RADIO]), "m2",
                         told={"GONE", "RADIO"}) is None


def test_a_batch_tells_each_refusal_with_the_first_event_that_carries_it_whatever_was_told_before():
    events = [(OrderConfirmed(order_id="o1", rejected_lines=[GONE]), "m1"),
              (OrderStatusChanged(order_id="o1", status="partially_shipped", rejected_lines=[GONE]), "m2"),
              (OrderStatusChanged(order_id="o1", status="shipped", rejected_lines=[GONE, RADIO]), "m3"),
              (OrderReadyToShip(order_id="o2", rejected_lines=[GONE, RADIO]), "m4")]

    mails, told = domain.decide_each(events, {"o2": {"RADIO"}})

    assert [m and m.kind for m in mails] == ["order_confirmed", None, "lines_refused", "lines_refused"]
    assert told == [("o1", "GONE", mails[0].notification_id), ("o1", "RADIO", mails[2].notification_id),
                    ("o2", "GONE", mails[3].notification_id)]
    assert "GONE" not in mails[2].body and "RADIO" not in mails[3].body
    # Named after what it tells: the same lines told again (a redelivery) are the same notification.
    assert mails[2].notification_id == domain.notification_id("lines_refused", "o1 RADIO")
