"""Kafka over SASL_SSL (SCRAM-SHA-512 over TLS with the broker's own CA), on a real Apache Kafka that listens
with nothing else: a service, the command line and the topic admin connect from the settings alone; a
wrong password and a plaintext client are refused."""

import asyncio
import os
import ssl
import sys

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError

from contracts.topics import ORDERS_COMMANDS, ORDERS_EVENTS, dead_letter
from infra.kafka import answers
from infra.services import start_service, stop_services, wait_healthy
from infra.topics import create_topics
from tests.conftest import Database, free_port
from tests.support import Bus, unique


@pytest.fixture
async def secured(sasl_ssl_kafka):
    """The broker with the public topics, and a bus that reads them over SASL_SSL."""
    await create_topics(sasl_ssl_kafka.bootstrap_servers, **sasl_ssl_kafka.client_security())
    bus = await Bus(sasl_ssl_kafka.bootstrap_servers, sasl_ssl_kafka.client_security()).start()
    yield sasl_ssl_kafka, bus
    await bus.stop()


def order_service_env(broker, database: Database, **overrides: str) -> dict[str, str]:
    return broker.env | database.environment | {"ORDER_HTTP_PORT": str(free_port()),
                         "KAFKA_SESSION_TIMEOUT_MS": "2000"} | overrides


async def orderflow(env: dict[str, str], *args: str) -> tuple[int, str]:
    """The command line, configured by the environment only."""
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", "services.cli", *args, env=os.environ | env,
                                                   stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode, out.decode()


async def test_a_service_consumes_publishes_and_dead_letters_over_sasl_ssl(secured, database_factory, tmp_path):
    broker, bus = secured
    env = order_service_env(broker, database_factory())
    service = {"order": start_service("order", env, log_dir=tmp_path)}
    try:
        await asyncio.to_thread(wait_healthy, env, service)
        order_id = unique("ord")
        code, out = await orderflow(broker.env, "place", order_id, "ann@example.com", "ANVIL:1:9.90")
        assert code == 0 and f"sent PlaceOrder {order_id}" in out
        # Consumed by the service's broker, stored, and published by its outbox relay: all over SASL_SSL.
        await bus.wait_for(ORDERS_EVENTS, "OrderPlaced", order_id=order_id)

        await bus.send_raw(ORDERS_COMMANDS, b"not a CloudEvent", key=order_id)
        await bus.wait_for(dead_letter(ORDERS_COMMANDS), count=1)
    finally:
        stop_services(service)


async def test_a_service_with_a_wrong_password_stops_at_start_saying_the_credentials_were_refused(
        secured, database_factory, tmp_path):
    broker, _ = secured
    env = order_service_env(broker, database_factory(), KAFKA_SASL_PASSWORD="not-the-password")
    service = start_service("order", env, log_dir=tmp_path)
    try:
        assert await asyncio.to_thread(service.wait, 60) != 0
    finally:
        stop_services({"order": service})
    log = (tmp_path / "order.log").read_text()
    assert "SaslAuthenticationFailed" in log and "invalid credentials with SASL mechanism SCRAM-SHA-512" in log
    assert "not-the-password" not in log

    code, out = await orderflow(broker.env | {"KAFKA_SASL_PASSWORD": "not-the-password"}, "receive", "ANVIL", "1")
    assert code != 0 and "invalid credentials" in out and "not-the-password" not in out


async def test_only_tls_with_scram_gets_through_the_sasl_ssl_listener(secured):
    broker, _ = secured
    security = broker.client_security()
    assert await answers(broker.bootstrap_servers, **security)
    assert not await answers(broker.bootstrap_servers)  # plaintext
    assert not await answers(broker.bootstrap_servers, security_protocol="SSL",  # TLS, but no login
                             ssl_context=security["ssl_context"])
    assert not await answers(broker.bootstrap_servers, **security | {"security_protocol": "SASL_PLAINTEXT",
                                                                      "ssl_context": None})  # login, no TLS
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, request_timeout_ms=3000)
    with pytest.raises(KafkaConnectionError):
        await producer.start()
    await producer.stop()


async def test_a_client_that_does_not_trust_the_brokers_ca_does_not_connect(secured):
    broker, _ = secured
    security = broker.client_security() | {"ssl_context": ssl.create_default_context()}  # the system's CAs
    assert not await answers(broker.bootstrap_servers, **security)
