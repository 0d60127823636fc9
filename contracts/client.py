"""An async client for storefronts and warehouses: send any command with the right envelope, key and
headers, and read typed events. `pip install ./contracts` gives this and the models alone.

    async with Client("127.0.0.1:9092", source="storefront-eu") as orderflow:
        await orderflow.send(PlaceOrder(order_id="ord-1001", ...))
        async for envelope, event in orderflow.events(ORDERS_EVENTS):
            ...

A broker with TLS or SASL takes aiokafka's connection options as keywords:

    Client("kafka.example:9093", source="storefront-eu", security_protocol="SASL_SSL",
           ssl_context=ssl.create_default_context(), sasl_mechanism="SCRAM-SHA-512",
           sasl_plain_username="storefront-eu", sasl_plain_password=password)
"""

from collections.abc import AsyncIterator, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pydantic import BaseModel

from contracts import topics
from contracts.envelope import STRUCTURED_CONTENT_TYPE, Envelope


def key_of(command: BaseModel) -> str:
    """The Kafka key of a message: its order_id on orders.*, its sku on inventory.*."""
    field = "order_id" if topics.topic_of(type(command)).startswith("orders.") else "sku"
    return getattr(command, field)


class Client:
    def __init__(self, bootstrap_servers: str, source: str, idempotent: bool = True, **security: Any) -> None:
        """`idempotent`: a send retried after a broker failed over is written once (brokers that cannot, as
        Tansu, need False). `security`: aiokafka's TLS and SASL options."""
        self._bootstrap_servers = bootstrap_servers
        self._source = source
        self._security = security
        self._producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, acks="all",
                                          enable_idempotence=idempotent, **security)

    async def __aenter__(self) -> "Client":
        try:
            await self._producer.start()
        except BaseException:
            await self._producer.stop()
            raise
        return self

    async def __aexit__(self, *exc) -> None:
        await self._producer.stop()

    async def send(self, command: BaseModel, *, correlation_id: str | None = None) -> Envelope:
        """Send a command (or any message of the contract) to its topic, keyed, in structured mode; returns
        the envelope it travelled in once the broker acknowledged it."""
        key = key_of(command)
        envelope = Envelope.wrap(command, source=self._source, subject=key, correlationid=correlation_id)
        await self._producer.send_and_wait(topics.topic_of(type(command)), envelope.to_bytes(), key=key.encode(),
                                           headers=[("content-type", STRUCTURED_CONTENT_TYPE.encode())])
        return envelope

    async def events(self, *names: str, from_beginning: bool = False, group_id: str | None = None
                     ) -> AsyncIterator[tuple[Envelope, BaseModel]]:
        """Typed events of the topics named (all event topics when none), as they arrive. Types this contract
        version does not know are passed over, so that producers can add types."""
        chosen: Sequence[str] = names or (topics.ORDERS_EVENTS, topics.INVENTORY_EVENTS, topics.NOTIFICATIONS_EVENTS)
        consumer = AIOKafkaConsumer(*chosen, bootstrap_servers=self._bootstrap_servers, group_id=group_id,
                                    auto_offset_reset="earliest" if from_beginning else "latest",
                                    enable_auto_commit=group_id is not None, **self._security)
        await consumer.start()
        try:
            async for record in consumer:
                envelope = Envelope.model_validate_json(record.value)
                if model := topics.messages_on(record.topic).get(envelope.type):
                    yield envelope, model.model_validate(envelope.data)
        finally:
            await consumer.stop()
