"""Real parts for the tests: PostgreSQL and Apache Kafka (and Tansu for a second end-to-end run) from
testcontainers where a Docker engine answers, else the local servers the project starts itself."""

import logging
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import asyncpg
import pytest

from infra import blocking, kafka, postgres
from infra.ports import free_port
from services.runtime import db
from infra.certificates import broker_certificate

logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # connection refusals while brokers start


def docker_answers() -> bool:
    try:
        import docker

        docker.from_env().ping()
        return True
    except Exception:
        return False


DOCKER = docker_answers()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """An admin URL of a real PostgreSQL server."""
    if DOCKER:
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:16-alpine", driver=None) as container:
            yield container.get_connection_url()
        return
    url, _ = postgres.ensure_database()
    yield url


SERVICES = ("order", "inventory", "notification")


@dataclass(frozen=True)
class Database:
    """A fresh database: the admin's URL of it, and each service's own login to it."""

    admin_url: str
    urls: dict[str, str]

    @property
    def environment(self) -> dict[str, str]:
        return {f"{service.upper()}_DATABASE_URL": url for service, url in self.urls.items()}


def logins(admin_url: str) -> Database:
    """The database of this admin URL, with the logins the local stack gives the services."""
    return Database(admin_url, {service: db.local_url(admin_url, service) for service in SERVICES})


@pytest.fixture(scope="session")
def database_factory(postgres_url):
    """Makes fresh databases, each a clone of one migrated template: real Postgres, fast isolation."""
    created: list[str] = []
    template = f"orderflow_template_{uuid.uuid4().hex[:8]}"

    async def admin():
        return await asyncpg.connect(postgres_url)

    async def make_template():
        conn = await admin()
        await conn.execute(f"CREATE DATABASE {template}")
        await conn.close()
        database = logins(db.with_database(postgres_url, template))
        for service, url in database.urls.items():
            await db.set_up(database.admin_url, service, url)

    blocking.run(make_template())

    def create() -> Database:
        name = f"orderflow_test_{uuid.uuid4().hex[:12]}"

        async def clone():
            conn = await admin()
            await conn.execute(f"CREATE DATABASE {name} TEMPLATE {template}")
            await db.grant_connect(conn, name, *(db.role(service) for service in SERVICES))
            await conn.close()

        blocking.run(clone())
        created.append(name)
        return logins(db.with_database(postgres_url, name))

    yield create

    async def drop():
        conn = await admin()
        for name in created + [template]:
            await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await conn.close()

    blocking.run(drop())


@pytest.fixture(scope="session")
def apache_kafka(tmp_path_factory) -> Iterator[str]:
    """Bootstrap servers of a real Apache Kafka broker."""
    if DOCKER:
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer().with_kraft() as container:
            yield container.get_bootstrap_server()
        return
    broker = kafka.start_apache_kafka(free_port(also=(1,)), tmp_path_factory.mktemp("apache-kafka"))
    yield broker.bootstrap_servers
    broker.stop()


@pytest.fixture(scope="session")
def sasl_ssl_kafka(tmp_path_factory) -> Iterator[kafka.Broker]:
    """A real Apache Kafka that takes clients only over TLS with SCRAM-SHA-512: a certificate of its own CA,
    one user (`orderflow`, a random password). Its `env` holds the settings a service connects with."""
    folder = tmp_path_factory.mktemp("apache-kafka-sasl-ssl")
    keystore, cafile = broker_certificate(folder / "tls")
    user = kafka.SaslSsl(keystore, cafile, username="orderflow", password=secrets.token_urlsafe(18))
    broker = kafka.start_apache_kafka(free_port(also=(1,)), folder / "broker", sasl_ssl=user)
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def tansu(tmp_path_factory) -> Iterator[str]:
    broker = kafka.start_tansu(free_port(), tmp_path_factory.mktemp("tansu"))
    yield broker.bootstrap_servers
    broker.stop()


class Pools:
    """Pools on one fresh migrated database, each logged in as one service: `await pools("inventory")`."""

    def __init__(self, database: Database) -> None:
        self.urls = database.urls
        self._pools: dict[str, asyncpg.Pool] = {}

    async def __call__(self, service: str) -> asyncpg.Pool:
        if service not in self._pools:
            self._pools[service] = await db.connect_pool(self.urls[service], service)
        return self._pools[service]

    async def close(self) -> None:
        for pool in self._pools.values():
            await pool.close()


@pytest.fixture
async def pools(database_factory):
    pools = Pools(database_factory())
    yield pools
    await pools.close()
