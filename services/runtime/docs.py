"""Each service described for people and tools: an AsyncAPI 3 document of the topics it reads and writes
(dead-letter topics included) with the message schemas of `contracts/`, an OpenAPI 3.1 document of its HTTP
side, and a page at /docs that shows both. `python -m services.runtime.docs` writes them to contracts/docs/,
where a test keeps them from drifting."""

import html
import json
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from contracts.envelope import STRUCTURED_CONTENT_TYPE, Envelope
from contracts.topics import dead_letter, messages_on

if TYPE_CHECKING:
    from services.runtime.service import Service

DOCS = Path(__file__).parent.parent.parent / "contracts" / "docs"
REF = "#/components/schemas/{model}"


def asyncapi(service: "Service") -> dict:
    reads = {s.topic: s.models for s in service.subscriptions}
    writes = {service.events_topic: messages_on(service.events_topic)}
    models = {name: model for types in (*reads.values(), *writes.values()) for name, model in types.items()}
    schemas = _schemas([Envelope, *models.values()])
    channels, operations = {}, {}
    for action, topics in (("receive", reads), ("send", writes)):
        for topic, types in topics.items():
            channels[topic] = {"address": topic, "messages": {n: {"$ref": f"#/components/messages/{n}"} for n in types}}
            operations[f"{action} {topic}"] = {
                "action": action, "channel": {"$ref": f"#/channels/{topic}"},
                "messages": [{"$ref": f"#/channels/{topic}/messages/{n}"} for n in types]}
    for topic in reads:  # what can never be handled goes to the topic's dead-letter topic, unchanged
        channels[dead_letter(topic)] = {"address": dead_letter(topic),
                                        "messages": {"DeadLetter": {"$ref": "#/components/messages/DeadLetter"}}}
        operations[f"send {dead_letter(topic)}"] = {
            "action": "send", "channel": {"$ref": f"#/channels/{dead_letter(topic)}"},
            "messages": [{"$ref": f"#/channels/{dead_letter(topic)}/messages/DeadLetter"}]}
    messages = {name: {
        "name": name, "title": name, "summary": (model.__doc__ or name).strip().split("\n")[0],
        "contentType": STRUCTURED_CONTENT_TYPE,
        "payload": {"allOf": [{"$ref": REF.format(model="Envelope")},
                              {"type": "object", "properties": {"type": {"const": name},
                                                                "data": {"$ref": REF.format(model=name)}}}]},
    } for name, model in sorted(models.items())}
    messages["DeadLetter"] = {
        "name": "DeadLetter", "title": "DeadLetter",
        "summary": "A record that can never be handled: the original value and headers, with the reason.",
        "headers": {"type": "object", "required": ["dlq.error", "dlq.original.topic"], "properties": {
            h: {"type": "string"} for h in ("dlq.error", "dlq.service", "dlq.original.topic", "dlq.original.partition",
                                            "dlq.original.offset")}},
        "payload": {"description": "The original record's value, unchanged."},
    }
    return {
        "asyncapi": "3.0.0",
        "info": {"title": f"orderflow {service.name} service", "version": "1",
                 "description": "Every value is a CloudEvents 1.0 envelope in structured mode; the Kafka key is the "
                                "aggregate id (order_id on orders.*, sku on inventory.*)."},
        "defaultContentType": STRUCTURED_CONTENT_TYPE,
        "channels": dict(sorted(channels.items())),
        "operations": dict(sorted(operations.items())),
        "components": {"messages": messages, "schemas": schemas},
    }


def openapi(service: "Service") -> dict:
    schemas = _schemas([model for read in service.reads for model in (read.view, read.missing_view)])
    paths = {read.path: {"get": {
        "summary": read.summary,
        "parameters": [{"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
                       for p in _path_params(read.path)],
        "responses": {
            "200": {"description": "Found", "content": {"application/json": {
                "schema": {"$ref": REF.format(model=read.view.__name__)}}}},
            "404": {"description": "Not known", "content": {"application/json": {
                "schema": {"$ref": REF.format(model=read.missing_view.__name__)}}}},
        }}} for read in service.reads}
    paths["/health"] = {"get": {"summary": "200 while the service works; 503 with why when not (database, a stopped "
                                           "loop, a stalled consumer).", "responses": {"200": {"description": "ok"},
                                                                                       "503": {"description": "unavailable"}}}}
    paths["/metrics"] = {"get": {"summary": "Prometheus metrics.", "responses": {"200": {"description": "text"}}}}
    return {"openapi": "3.1.0", "info": {"title": f"orderflow {service.name} service", "version": "1"},
            "paths": paths, "components": {"schemas": schemas}}


def page(service: "Service") -> str:
    """/docs: both documents, for a person."""
    spec = asyncapi(service)
    rows = "".join(
        f"<tr><td>{html.escape(op['action'])}</td><td><code>{html.escape(op['channel']['$ref'].split('/')[-1])}</code>"
        f"</td><td>{', '.join(html.escape(m['$ref'].split('/')[-1]) for m in op['messages'])}</td></tr>"
        for op in spec["operations"].values())
    endpoints = "".join(f"<tr><td>GET</td><td><code>{html.escape(path)}</code></td>"
                        f"<td>{html.escape(op['get']['summary'])}</td></tr>"
                        for path, op in openapi(service)["paths"].items())
    return (f"<!doctype html><meta charset=utf-8><title>orderflow {service.name}</title>"
            f"<h1>orderflow {service.name} service</h1>"
            "<p>Machine-readable: <a href=/docs/asyncapi.json>AsyncAPI 3</a>, <a href=/docs/openapi.json>OpenAPI 3.1</a>."
            "</p><h2>Kafka</h2><table border=1 cellpadding=4><tr><th>does</th><th>topic</th><th>messages</th></tr>"
            f"{rows}</table><h2>HTTP</h2><table border=1 cellpadding=4><tr><th></th><th>path</th><th>answers</th></tr>"
            f"{endpoints}</table>")


def _schemas(models: list[type[BaseModel]]) -> dict:
    """JSON Schemas of the models and what they refer to, by name, with references between them."""
    unique = list(dict.fromkeys(models))
    _, top = models_json_schema([(m, "serialization") for m in unique], ref_template=REF)
    return dict(sorted(top.get("$defs", {}).items()))


def _path_params(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{")]


def documents() -> dict[str, str]:
    """File name -> text of every service's documents."""
    from services.inventory.app import SERVICE as INVENTORY
    from services.notification.app import SERVICE as NOTIFICATION
    from services.order.app import SERVICE as ORDER

    out = {}
    for service in (ORDER, INVENTORY, NOTIFICATION):
        out[f"{service.name}.asyncapi.json"] = json.dumps(asyncapi(service), indent=2) + "\n"
        out[f"{service.name}.openapi.json"] = json.dumps(openapi(service), indent=2) + "\n"
    return out


if __name__ == "__main__":
    DOCS.mkdir(exist_ok=True)
    for name, text in documents().items():
        (DOCS / name).write_text(text)
    print(f"wrote {len(documents())} documents to contracts/docs/")
