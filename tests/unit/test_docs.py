"""Each service described: AsyncAPI 3 and OpenAPI 3.1 documents generated from the code, checked in under
contracts/docs/ and kept from drifting."""

import json

import pytest
from openapi_spec_validator import validate

from services.inventory.app import SERVICE as INVENTORY
from services.notification.app import SERVICE as NOTIFICATION
from services.order.app import SERVICE as ORDER
from services.runtime import docs

SERVICES = (ORDER, INVENTORY, NOTIFICATION)


def test_checked_in_documents_match_the_code():
    checked_in = {p.name: p.read_text() for p in docs.DOCS.glob("*.json")}
    assert checked_in == docs.documents(), "contracts/docs/ drifted from the code: run `make schemas`"


@pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.name)
def test_openapi_documents_are_valid(service):
    validate(docs.openapi(service))


@pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.name)
def test_every_reference_in_the_documents_resolves(service):
    for document in (docs.asyncapi(service), docs.openapi(service)):
        text = json.dumps(document)
        for ref in {part.split('"')[0] for part in text.split('"$ref": "')[1:]}:
            node = document
            for key in ref.removeprefix("#/").split("/"):
                node = node[key]  # KeyError: a dangling reference


def test_asyncapi_names_what_each_service_reads_and_writes_and_its_dead_letter_topics():
    spec = docs.asyncapi(INVENTORY)
    assert {"receive orders.events", "receive inventory.commands", "send inventory.events",
            "send orders.events.dlq", "send inventory.commands.dlq"} == set(spec["operations"])
    shipped = spec["channels"]["orders.events"]["messages"]
    assert set(shipped) == {"OrderPlaced", "CancellationRequested", "OrderShipped"}
    assert spec["components"]["schemas"]["OrderShipped"]["properties"]["shipment_id"]
