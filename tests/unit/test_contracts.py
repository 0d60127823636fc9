"""The public contract: strict commands, and JSON Schemas in the repository that match the models."""

import pytest
from pydantic import ValidationError

from contracts.commands import PlaceOrder, ReceiveStock, RegisterProduct
from contracts.envelope import Envelope
from contracts.export import SCHEMAS, schemas


def test_exported_json_schemas_match_the_models():
    exported = {p.name: p.read_text() for p in SCHEMAS.glob("*.json")}
    assert exported == schemas(), "contracts/schemas/ drifted from the models: run `make schemas`"


GOOD_ORDER = {"order_id": "o1", "customer_id": "c1", "customer_email": "a@example.com",
              "lines": [{"sku": "A-1", "quantity": 2, "unit_price": "9.90"}]}


def test_a_valid_order_parses_with_backorders_allowed_by_default():
    order = PlaceOrder.model_validate(GOOD_ORDER)
    assert order.allow_backorder is True and str(order.lines[0].unit_price) == "9.90"


@pytest.mark.parametrize("change", [
    {"lines": [{"sku": "A-1", "quantity": 0}]},
    {"lines": [{"sku": "A-1", "quantity": -1}]},
    {"lines": [{"sku": "A-1", "quantity": "2"}]},
    {"lines": [{"sku": "A-1", "quantity": 2.5}]},
    {"lines": []},
    {"lines": [{"sku": "A-1", "quantity": 1}] * 101},
    {"lines": [{"sku": "A-1", "quantity": 1}, {"sku": "A-1", "quantity": 1}]},
    {"lines": [{"sku": "A 1", "quantity": 1}]},
    {"customer_email": "not-an-address"},
    {"order_id": "x" * 101},
    {"currency": "euro"},
    {"surprise": True},
])
def test_invalid_orders_are_refused(change):
    with pytest.raises(ValidationError):
        PlaceOrder.model_validate(GOOD_ORDER | change)


def test_inventory_commands_refuse_nonsense():
    with pytest.raises(ValidationError):
        ReceiveStock.model_validate({"receipt_id": "r", "sku": "A", "quantity": 0})
    with pytest.raises(ValidationError):
        RegisterProduct.model_validate({"sku": "A", "name": "x", "lead_time_days": -1})


def test_envelope_round_trips_as_cloudevents_structured_json():
    order = PlaceOrder.model_validate(GOOD_ORDER)
    envelope = Envelope.wrap(order, source="storefront-eu", subject="o1", correlationid="corr-1")
    parsed = Envelope.model_validate_json(envelope.to_bytes())
    assert parsed.type == "PlaceOrder" and parsed.specversion == "1.0"
    assert PlaceOrder.model_validate(parsed.data) == order
