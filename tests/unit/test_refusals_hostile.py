"""Refused lines told once, against what the order service never sends but a status event could carry: every event
type with refused lines, the same SKU twice, an empty SKU, thousands of lines."""

import typing

import pytest

from contracts import events as contract
from contracts.events import OrderConfirmed, OrderRejected, OrderStatusChanged, RejectedLine
from services.notification import domain
from tests.unit.test_refusals_told_once import refusals_named


def rejected(sku: str, message: str | None = None) -> RejectedLine:
    return RejectedLine(sku=sku, reason="unknown_sku", message=message or f"{sku} is not a product we sell")


def carrying(event_type: type, lines: list[RejectedLine]) -> contract.Event:
    """An event of `event_type` for order o1 carrying `lines` in its field of refused lines."""
    field = next(name for name, info in event_type.model_fields.items() if info.annotation == list[RejectedLine])
    required = {"reason": "r", "status": "shipped", "backordered_lines": [], "lines": [], "whole_order": False}
    fields = {name: required[name] for name, info in event_type.model_fields.items()
              if info.is_required() and name != "order_id"}
    return event_type(order_id="o1", **{**fields, field: lines})


EVENTS_WITH_REFUSALS = [cls for cls in vars(contract).values()
                        if isinstance(cls, type) and issubclass(cls, contract.Event)
                        and any(info.annotation == list[RejectedLine] for info in cls.model_fields.values())]


def test_the_events_carrying_refused_lines_are_the_six_status_events():
    assert {cls.__name__ for cls in EVENTS_WITH_REFUSALS} == {
        "OrderConfirmed", "OrderBackordered", "OrderReadyToShip", "OrderRejected", "OrderCancelled",
        "OrderStatusChanged"}


@pytest.mark.parametrize("event_type", EVENTS_WITH_REFUSALS, ids=lambda cls: cls.__name__)
def test_every_event_carrying_a_refusal_not_told_is_mailed_naming_it_and_then_not_again(event_type):
    """decide_each notes a line told by the event's mail: an event type whose decide gave no mail would crash it."""
    event = carrying(event_type, [rejected("GONE"), rejected("RADIO")])
    assert [line.sku for line in domain.refused(event)] == ["GONE", "RADIO"]

    [mail], told = domain.decide_each([(event, "m1")], {"o1": {"RADIO"}})

    assert [sku for sku, _ in refusals_named(mail)] == ["GONE"]
    assert told == [("o1", "GONE", mail.notification_id)]
    [again], told_again = domain.decide_each([(event, "m2")], {"o1": {"GONE", "RADIO"}})
    assert told_again == [] and (again is None or refusals_named(again) == [])


@pytest.mark.parametrize("event_type", EVENTS_WITH_REFUSALS, ids=lambda cls: cls.__name__)
def test_a_sku_refused_twice_in_one_event_is_named_once(event_type):
    event = carrying(event_type, [rejected("GONE", "first"), rejected("GONE", "second"), rejected("RADIO")])

    [mail], told = domain.decide_each([(event, "m1")], {})

    assert [sku for sku, _ in refusals_named(mail)] == ["GONE", "RADIO"], mail.body
    assert [(sku, n) for _, sku, n in told] == [("GONE", mail.notification_id), ("RADIO", mail.notification_id)]


def test_an_empty_sku_is_told_once_and_its_mail_is_not_another_orders():
    blank = OrderStatusChanged(order_id="o1", status="shipped", rejected_lines=[rejected("", "no SKU given")])
    other = OrderStatusChanged(order_id="o1", status="shipped", rejected_lines=[rejected("X")])

    mails, told = domain.decide_each([(blank, "m1"), (blank, "m2"), (other, "m3")], {})

    assert mails[1] is None and [sku for _, sku, _ in told] == ["", "X"]
    assert mails[0].notification_id != mails[2].notification_id


def test_thousands_of_refused_lines_are_told_in_one_mail_once():
    lines = [rejected(f"SKU-{n:05}") for n in range(5000)]

    [mail, again], told = domain.decide_each([(OrderRejected(order_id="o1", reason="r", lines=lines), "m1"),
                                              (OrderConfirmed(order_id="o1", rejected_lines=lines), "m2")], {})

    assert len(refusals_named(mail)) == 5000 and refusals_named(again) == []
    assert len(told) == 5000 and {n for _, _, n in told} == {mail.notification_id}
