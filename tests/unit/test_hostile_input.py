"""Hostile commands: each is refused before any handler with a reason naming the field (the dead letter's), or
decided to a clear refusal or a credible date; none raises anything else."""

import json
from datetime import date, timedelta

import pytest

from contracts.commands import INVENTORY_COMMANDS, ORDER_COMMANDS, ExpectReplenishment, RegisterProduct, RescheduleReplenishment
from contracts.envelope import STRUCTURED_CONTENT_TYPE
from contracts.topics import INVENTORY_COMMANDS as INVENTORY_TOPIC
from contracts.topics import ORDERS_COMMANDS
from services.inventory.domain import products, supply
from services.inventory.domain.state import Refused, Sku, apply
from services.runtime.messages import Subscription, Unhandleable, parse

SUBSCRIPTIONS = {**{name: Subscription(INVENTORY_TOPIC, INVENTORY_COMMANDS, strict=True) for name in INVENTORY_COMMANDS},
                 **{name: Subscription(ORDERS_COMMANDS, ORDER_COMMANDS, strict=True) for name in ORDER_COMMANDS}}
TODAY = date(2026, 11, 25)
LINE = {"sku": "ANVIL", "quantity": 1}
VALID = {
    "PlaceOrder": {"order_id": "o1", "customer_id": "c1", "customer_email": "c@example.com", "lines": [LINE]},
    "ReceiveStock": {"receipt_id": "r1", "sku": "ANVIL", "quantity": 1},
    "AdjustStock": {"sku": "ANVIL", "counted_quantity": 1, "reason": "count"},
    "ExpectReplenishment": {"po_id": "p1", "sku": "ANVIL", "quantity": 1, "expected_on": "2026-12-01"},
    "ShipOrder": {"order_id": "o1", "shipment_id": "s1", "lines": [LINE]},
    "RegisterProduct": {"sku": "ANVIL", "name": "Anvil", "lead_time_days": 5},
}
HUGE = [2**31, 2**63, 2**64, 10**100]


def record(type_: str, data: dict) -> bytes:
    return json.dumps({"specversion": "1.0", "id": "m1", "source": "storefront", "type": type_,
                       "datacontenttype": "application/json", "data": data}).encode()


def refusal(type_: str, data: dict) -> str:
    with pytest.raises(Unhandleable) as refused:
        parse(SUBSCRIPTIONS[type_], record(type_, data), [("content-type", STRUCTURED_CONTENT_TYPE.encode())])
    return str(refused.value)


def test_the_valid_commands_the_cases_start_from_are_read():
    for type_, data in VALID.items():
        assert parse(SUBSCRIPTIONS[type_], record(type_, data)).body is not None


QUANTITY_FIELDS = [("PlaceOrder", "lines.0.quantity"), ("ShipOrder", "lines.0.quantity"), ("ReceiveStock", "quantity"),
                   ("ExpectReplenishment", "quantity"), ("AdjustStock", "counted_quantity"),
                   ("RegisterProduct", "lead_time_days")]
NOT_QUANTITIES = [0, -1, -(2**63), *HUGE, "5", 5.0, 1.5, True, None, [], "1e3"]


@pytest.mark.parametrize("type_, path, quantity", [
    (type_, path, quantity) for type_, path in QUANTITY_FIELDS for quantity in NOT_QUANTITIES
    if not (quantity == 0 and path in ("counted_quantity", "lead_time_days"))  # a count and a lead time may be 0
])
def test_a_quantity_that_is_not_a_positive_bounded_whole_number_is_refused_naming_the_field(type_, path, quantity):
    if path.startswith("lines"):
        data = VALID[type_] | {"lines": [LINE | {"quantity": quantity}]}
    else:
        data = VALID[type_] | {path: quantity}
    assert refusal(type_, data).startswith(f"invalid {type_}: {path}:")


@pytest.mark.parametrize("sku", ["", " ", "A B", "-A", "../A", "A\tB", "Ä", "A" * 65, "a;DROP TABLE skus", "A\n", 7, None])
@pytest.mark.parametrize("type_", ["PlaceOrder", "ReceiveStock", "AdjustStock", "ExpectReplenishment", "RegisterProduct"])
def test_a_sku_with_odd_characters_or_too_long_is_refused_naming_the_field(sku, type_):
    if type_ == "PlaceOrder":
        data, path = VALID[type_] | {"lines": [LINE | {"sku": sku}]}, "lines.0.sku"
    else:
        data, path = VALID[type_] | {"sku": sku}, "sku"
    assert refusal(type_, data).startswith(f"invalid {type_}: {path}:")


def test_an_order_with_two_lines_of_one_sku_is_refused_rather_than_one_line_overwriting_the_other():
    data = VALID["PlaceOrder"] | {"lines": [LINE, LINE | {"quantity": 5}]}
    assert "each sku may appear on one line only" in refusal("PlaceOrder", data)


@pytest.mark.parametrize("expected_on", ["0000-01-01", "10000-01-01", "2026-02-30", "yesterday", 20261201, None])
def test_a_date_that_is_not_a_calendar_date_is_refused_naming_the_field(expected_on):
    data = VALID["ExpectReplenishment"] | {"expected_on": expected_on}
    assert refusal("ExpectReplenishment", data).startswith("invalid ExpectReplenishment: expected_on:")


def anvil() -> Sku:
    state = Sku(sku="ANVIL")
    apply(state, products.register_product(state, RegisterProduct(sku="ANVIL", name="Anvil", lead_time_days=5), TODAY))
    return state


@pytest.mark.parametrize("expected_on", [date.min, date(1970, 1, 1), TODAY - timedelta(days=1)])
def test_a_purchase_order_dated_in_the_past_is_expected_where_the_daily_review_would_expect_it(expected_on):
    state = anvil()
    apply(state, supply.expect_replenishment(state, ExpectReplenishment(po_id="p1", sku="ANVIL", quantity=3,
                                                                        expected_on=expected_on), TODAY))
    assert [r.expected_on for r in state.replenishments] == [TODAY + timedelta(days=5)]
    apply(state, supply.reschedule_replenishment(state, RescheduleReplenishment(po_id="p1", sku="ANVIL",
                                                                                expected_on=date.min), TODAY))
    assert [r.expected_on for r in state.replenishments] == [TODAY + timedelta(days=5)]


@pytest.mark.parametrize("expected_on", [date.max, TODAY + supply.FURTHEST_EXPECTED + timedelta(days=1)])
def test_a_purchase_order_dated_centuries_ahead_is_refused_with_the_reason(expected_on):
    with pytest.raises(Refused, match="more than 100 years after today"):
        supply.expect_replenishment(anvil(), ExpectReplenishment(po_id="p1", sku="ANVIL", quantity=3,
                                                                 expected_on=expected_on), TODAY)
