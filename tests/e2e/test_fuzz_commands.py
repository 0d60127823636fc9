"""Fuzz of every command topic through the running services: arbitrary bytes, arbitrary JSON, CloudEvents envelopes
of every command type with mutated data, lying binary-mode headers, deep nesting, values near and beyond the
broker's limit. Each message ends in the DLQ with a reason, or was handled (an event it caused, or the inbox
holds it: a refusal, a rejection, or a repeat); and a valid sentinel sent behind each batch on the same
partition is handled: no message stalls a service.

FUZZ_EXAMPLES (default 12 batches per topic and broker) raises the budget."""

import asyncio
import copy
import json
import os
import uuid
from dataclasses import dataclass

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from contracts.commands import INVENTORY_COMMANDS as INVENTORY_TYPES
from contracts.commands import ORDER_COMMANDS as ORDER_TYPES
from contracts.commands import OrderLine, PlaceOrder, RegisterProduct
from contracts.envelope import STRUCTURED_CONTENT_TYPE, Envelope
from contracts.topics import INVENTORY_COMMANDS, INVENTORY_EVENTS, ORDERS_COMMANDS, ORDERS_EVENTS, dead_letter
from services.inventory import handlers as inventory
from services.order import handlers as order
from services.runtime.messages import Subscription, parse
from services.runtime.settings import HTTP_PORTS
from tests.support import eventually, unique

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "12"))
BROKER_MAX_BYTES = 1024 * 1024  # Kafka's default message.max.bytes, which our topics keep

Headers = list[tuple[str, bytes | None]]


def valid_data(type_: str, run: str, ident: uuid.UUID) -> dict:
    """Data that a command of this type would be handled with; the fuzz mutates it."""
    sku, ident = f"fuzz-{run}", f"fuzz-{run}-{ident.hex[:8]}"
    return {
        "PlaceOrder": {"order_id": ident, "customer_id": "c", "customer_email": "fuzz@example.com",
                       "lines": [{"sku": sku, "quantity": 1, "unit_price": "1.50"}], "currency": "EUR"},
        "CancelOrder": {"order_id": ident, "sku": sku, "reason": "fuzz"},
        "ShipOrder": {"order_id": ident, "shipment_id": ident, "lines": [{"sku": sku, "quantity": 1}], "carrier": "DHL"},
        "RegisterProduct": {"sku": sku, "name": "Fuzz", "lead_time_days": 3, "alternatives": []},
        "UpdateProduct": {"sku": sku, "name": "Fuzz", "safety_stock": 1},
        "DiscontinueProduct": {"sku": sku, "reason": "fuzz"},
        "ReceiveStock": {"receipt_id": ident, "sku": sku, "quantity": 2},
        "AdjustStock": {"sku": sku, "counted_quantity": 1, "reason": "count"},
        "ExpectReplenishment": {"po_id": ident, "sku": sku, "quantity": 2, "expected_on": "2099-01-01"},
        "RescheduleReplenishment": {"po_id": ident, "sku": sku, "expected_on": "2099-02-01"},
        "CancelReplenishment": {"po_id": ident, "sku": sku},
    }[type_]


ALL_TYPES = sorted({*ORDER_TYPES, *INVENTORY_TYPES})
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20)
odd_text = st.sampled_from(["", " ", "\x00", "\ud800", "é" * 300, "x" * 10_000, "🛒", "a\nb", "ǅ", "\u202e"]) \
    | st.text(max_size=40)
odd_numbers = st.sampled_from([0, -1, -(10**6), 10**6 + 1, 2**31, 2**63, 10**40, -(10**40), 1.5, 1e308, -0.0]) \
    | st.integers()


@st.composite
def mutated(draw, data: dict) -> dict:
    """The data with one of: a field of the wrong type, missing, odd text, an odd number; or an extra field."""
    data = copy.deepcopy(data)
    target = data
    if "lines" in data and draw(st.booleans()):
        target = data["lines"][0]
    field = draw(st.sampled_from(sorted(target)))
    match draw(st.sampled_from(["wrong type", "missing", "odd text", "odd number", "extra", "nested"])):
        case "wrong type":
            target[field] = draw(json_values)
        case "missing":
            del target[field]
        case "odd text":
            target[field] = draw(odd_text)
        case "odd number":
            target[field] = draw(odd_numbers)
        case "extra":
            target[draw(odd_text)] = draw(json_values)
        case "nested":  # deep, within what JSON decoding takes
            target[field] = json.loads("[" * 500 + "]" * 500)
    return data


@st.composite
def envelopes(draw, run: str) -> dict:
    """A CloudEvents envelope of any command type (of either topic), its data or its attributes mutated."""
    type_ = draw(st.sampled_from(ALL_TYPES))
    envelope = {"specversion": "1.0", "id": str(draw(st.uuids())), "source": "fuzz", "type": type_,
                "data": valid_data(type_, run, draw(st.uuids()))}
    match draw(st.sampled_from(["data", "data", "data", "attribute", "type"])):
        case "data":
            envelope["data"] = draw(mutated(envelope["data"]))
        case "attribute":
            name = draw(st.sampled_from(["specversion", "id", "source", "time", "data", "datacontenttype", "subject"]))
            if draw(st.booleans()):
                envelope.pop(name, None)
            else:
                envelope[name] = draw(json_values | odd_text)
        case "type":
            envelope["type"] = draw(odd_text | st.sampled_from([t.lower() for t in ALL_TYPES]))
    return envelope


@st.composite
def lying_binary_mode(draw, run: str) -> tuple[bytes, Headers]:
    """Binary mode whose headers do not tell the truth about the value, or about themselves."""
    type_ = draw(st.sampled_from(ALL_TYPES))
    headers: Headers = [("ce_specversion", b"1.0"), ("ce_id", str(draw(st.uuids())).encode()), ("ce_source", b"fuzz"),
                        ("ce_type", type_.encode())]
    value = json.dumps(valid_data(draw(st.sampled_from(ALL_TYPES)), run, draw(st.uuids()))).encode()  # of another type?
    match draw(st.sampled_from(["content-type", "value", "twice", "not utf-8", "version", "none", "missing"])):
        case "content-type":
            headers.append(("content-type", draw(st.sampled_from(
                [b"text/plain", b"application/json; charset=latin-1", b"application/xml", b"", b"\xff"]))))
        case "value":
            value = draw(st.binary(max_size=200) | st.just(b"[" * 5000))
        case "twice":
            headers.append((draw(st.sampled_from(["ce_id", "CE_TYPE", "ce_source"])), b"other"))
        case "not utf-8":
            headers.append((draw(st.sampled_from(["ce_id", "ce_subject", "ce_time", "traceparent"])), b"\xff\xfe"))
        case "version":
            headers[0] = ("ce_specversion", draw(st.sampled_from([b"0.3", b"", b"2.0", None])))
        case "none":
            headers.append(("ce_time", None))
        case "missing":
            del headers[draw(st.integers(1, 3))]
    return value, headers


def fuzz_messages(run: str):
    structured = [("content-type", STRUCTURED_CONTENT_TYPE.encode())]
    return st.one_of(
        st.binary(max_size=300).map(lambda v: (v, [])),
        json_values.map(lambda v: (json.dumps(v).encode(), structured)),
        envelopes(run).map(lambda e: (json.dumps(e).encode(), structured)),
        envelopes(run).map(lambda e: (json.dumps(e).encode(), [])),  # no content-type: read as structured
        lying_binary_mode(run),
    )


@dataclass
class Sent:
    topic: str
    partition: int
    offset: int
    value: bytes
    headers: Headers


class Fuzzer:
    """Sends fuzz to one command topic on one key, a sentinel behind it, and checks what became of each."""

    def __init__(self, stack, topic: str, producer: AIOKafkaProducer, database: asyncpg.Pool) -> None:
        self.stack, self.topic, self.producer, self.database = stack, topic, producer, database
        self.service = "order" if topic == ORDERS_COMMANDS else "inventory"
        self.subscription = Subscription(topic, ORDER_TYPES if topic == ORDERS_COMMANDS else INVENTORY_TYPES, True)

    async def send(self, value: bytes, headers: Headers, key: str) -> Sent:
        meta = await self.producer.send_and_wait(self.topic, value, key=key.encode(), headers=headers)
        return Sent(self.topic, meta.partition, meta.offset, value, headers)

    async def batch(self, messages: list[tuple[bytes, Headers]]) -> None:
        key = unique("fuzz-key")
        sent = [await self.send(value, headers, key) for value, headers in messages]
        await self.sentinel(key)
        for s in sent:
            await eventually(lambda s=s: self.ended(s), timeout=10)

    async def sentinel(self, key: str) -> None:
        """A valid command on the same partition, handled: nothing before it stalls the service."""
        if self.topic == ORDERS_COMMANDS:
            order_id = unique("sentinel")
            await self.stack.bus.send(ORDERS_COMMANDS, PlaceOrder(order_id=order_id, customer_id="c",
                                      customer_email="s@example.com", lines=[OrderLine(sku="SENTINEL", quantity=1)]),
                                      key)
            await self.stack.bus.wait_for(ORDERS_EVENTS, "OrderPlaced", order_id=order_id, timeout=60)
        else:
            sku = unique("sentinel")
            await self.stack.bus.send(INVENTORY_COMMANDS, RegisterProduct(sku=sku, name="S", lead_time_days=1), key)
            await self.stack.bus.wait_for(INVENTORY_EVENTS, "ProductRegistered", sku=sku, timeout=60)

    async def ended(self, sent: Sent) -> None:
        """Dead-lettered with a reason, or handled."""
        dead = [r for r in self.stack.bus.events(dead_letter(self.topic))
                if (r.headers.get("dlq.original.partition"), r.headers.get("dlq.original.offset"))
                == (str(sent.partition), str(sent.offset))]
        if dead:
            assert len(dead) == 1 and dead[0].headers["dlq.error"], dead
            assert dead[0].value == sent.value or "too large for the dead-letter topic" in dead[0].headers["dlq.error"]
            return
        try:
            message = parse(self.subscription, sent.value, sent.headers)
        except Exception as error:
            raise AssertionError(f"unreadable, and not in the DLQ: {sent} ({error})") from None
        key = (order if self.service == "order" else inventory).inbox_key(message)
        caused = [r for topic in (ORDERS_EVENTS, INVENTORY_EVENTS) for r in self.stack.bus.events(topic)
                  if r.envelope.get("causationid") == message.envelope.id]
        handled = await self.database.fetchval(f"SELECT count(*) FROM {self.service}_service.inbox "
                                               "WHERE message_key = $1", key)
        assert caused or handled, f"neither dead-lettered nor handled: {sent}"


@pytest.fixture
async def fuzzing(stack):
    producer = AIOKafkaProducer(bootstrap_servers=stack.bus.bootstrap_servers, acks="all", enable_idempotence=False,
                                max_request_size=4 * BROKER_MAX_BYTES)  # the broker decides what is too large
    await producer.start()
    database = await asyncpg.create_pool(stack.database.admin_url, min_size=1, max_size=2)  # both services' inboxes
    yield lambda topic: Fuzzer(stack, topic, producer, database)
    await database.close()
    await producer.stop()


def run_hypothesis(loop: asyncio.AbstractEventLoop, fuzzer: Fuzzer) -> None:
    """Hypothesis drives the examples from a thread; each batch runs on the test's event loop."""
    run = uuid.uuid4().hex[:6]
    structured = [("content-type", STRUCTURED_CONTENT_TYPE.encode())]

    def command(type_: str, **changes) -> tuple[bytes, Headers]:
        data = valid_data(type_, run, uuid.uuid4()) | changes
        return json.dumps({"specversion": "1.0", "id": str(uuid.uuid4()), "source": "fuzz", "type": type_,
                           "data": data}).encode(), structured

    # No shrinking: every step of it would be a round through the services; the failing batch is printed whole.
    @settings(max_examples=EXAMPLES, deadline=None, database=None, phases=[Phase.explicit, Phase.generate],
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(st.lists(fuzz_messages(run), min_size=1, max_size=8))
    # Text PostgreSQL cannot store in jsonb, or that is not Unicode at all, in fields that are otherwise valid.
    @example([command("RegisterProduct", name="\x00"), command("CancelOrder", reason="nul \x00 inside"),
              command("AdjustStock", reason="\ud800"), command("PlaceOrder", customer_id="\x00")])
    def a_batch_of_fuzz(messages):
        asyncio.run_coroutine_threadsafe(fuzzer.batch(messages), loop).result(timeout=120)

    a_batch_of_fuzz()


# The services' Kafka clients use `random` on the event loop while hypothesis generates in another thread.
@pytest.mark.filterwarnings("ignore:Do not use the `random` module inside strategies")
@pytest.mark.parametrize("topic", [ORDERS_COMMANDS, INVENTORY_COMMANDS])
async def test_fuzz_on_a_command_topic_ends_in_the_dlq_or_handled_and_stalls_nothing(stack, fuzzing, topic):
    fuzzer = fuzzing(topic)
    await asyncio.to_thread(run_hypothesis, asyncio.get_running_loop(), fuzzer)

    health = [(await stack.get(service, "/health")).status_code for service in HTTP_PORTS]
    assert health == [200, 200, 200]


@pytest.mark.parametrize("topic", [ORDERS_COMMANDS, INVENTORY_COMMANDS])
async def test_values_near_and_beyond_the_brokers_limit_stall_nothing(stack, fuzzing, topic):
    fuzzer = fuzzing(topic)
    key = unique("fuzz-big")
    type_ = "PlaceOrder" if topic == ORDERS_COMMANDS else "RegisterProduct"
    envelope = Envelope.model_validate({"specversion": "1.0", "id": str(uuid.uuid4()), "source": "fuzz",
                                        "type": type_, "data": valid_data(type_, "big", uuid.uuid4())})
    near = json.loads(envelope.to_bytes())
    near["data"]["customer_id" if type_ == "PlaceOrder" else "name"] = "x" * (BROKER_MAX_BYTES - 2000)
    sent = [await fuzzer.send(json.dumps(near).encode(), [], key)]
    beyond = json.dumps(near | {"padding": "y" * BROKER_MAX_BYTES}).encode()
    try:  # the broker refuses it (Apache Kafka does); one that takes it must hand it to the DLQ like any other
        sent.append(await fuzzer.send(beyond, [], key))
    except KafkaError as refused:
        assert "MessageSizeTooLarge" in type(refused).__name__ or "too large" in str(refused).lower(), refused
    await fuzzer.sentinel(key)
    for s in sent:
        await eventually(lambda s=s: fuzzer.ended(s))
