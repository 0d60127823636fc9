"""A service running in the test's event loop on real Kafka and PostgreSQL, its topics, and a database link to cut."""

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import ConsumerRecord, TopicPartition

from contracts.commands import OrderLine, PlaceOrder
from contracts.envelope import Envelope
from contracts.topics import dead_letter
from infra.topics import create_topics
from services.runtime.service import Service, build_app
from services.runtime.settings import Settings
from infra.ports import free_port
from tests.support import unique


class DatabaseLink:
    """A TCP proxy in front of PostgreSQL: `cut()` drops its connections and refuses new ones until `restore()`."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query))
        socket_dir = query.pop("host", "")
        port = int(query.pop("port", 0)) or parts.port or 5432
        if socket_dir.startswith("/"):  # a server on a Unix socket only (pgserver)
            self._connect = lambda: asyncio.open_unix_connection(f"{socket_dir}/.s.PGSQL.{port}")
        else:
            self._connect = lambda: asyncio.open_connection(parts.hostname, port)
        self.port = free_port()
        credentials = parts.netloc.rpartition("@")[0]
        netloc = f"{credentials}@127.0.0.1:{self.port}" if credentials else f"127.0.0.1:{self.port}"
        self.url = urlunsplit(parts._replace(netloc=netloc, query=urlencode(query)))
        self._cut = False
        self._writers: set[asyncio.StreamWriter] = set()

    async def __aenter__(self) -> "DatabaseLink":
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc) -> None:
        self.cut()
        self._server.close()
        await self._server.wait_closed()

    def cut(self) -> None:
        self._cut = True
        for writer in self._writers:
            writer.transport.abort()
        self._writers.clear()

    def restore(self) -> None:
        self._cut = False

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        if self._cut:
            client_writer.transport.abort()
            return
        server_reader, server_writer = await self._connect()
        self._writers |= {client_writer, server_writer}
        await asyncio.gather(self._pipe(client_reader, server_writer), self._pipe(server_reader, client_writer),
                             return_exceptions=True)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while chunk := await reader.read(65536):
                writer.write(chunk)
                await writer.drain()
        finally:
            writer.transport.abort()
            self._writers.discard(writer)


async def new_topic(bootstrap_servers: str, prefix: str) -> str:
    """A fresh one-partition topic and its dead-letter topic, created as the project creates its own."""
    topic = unique(prefix)
    await create_topics(bootstrap_servers, partitions=1, names=[topic])
    return topic


@contextlib.asynccontextmanager
async def running(service: Service, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The service started as `serve` would start it; yields an HTTP client of its routes."""
    app = build_app(service, settings)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://service") as http:
            yield http


async def send(bootstrap_servers: str, topic: str, value: bytes, key: str,
               headers: list[tuple[str, bytes | None]] = ()) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, acks="all", enable_idempotence=False)
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=key.encode(), headers=list(headers))
    finally:
        await producer.stop()


async def dead_letters(bootstrap_servers: str, topic: str, count: int = 1, timeout: float = 30) -> list[ConsumerRecord]:
    """Everything on `<topic>.dlq` (one partition) once it holds at least `count` records; fails if it holds
    fewer within `timeout`."""
    partition = TopicPartition(dead_letter(topic), 0)
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, group_id=None, enable_auto_commit=False)
    await reader.start()
    reader.assign([partition])
    await reader.seek_to_beginning(partition)
    found: list[ConsumerRecord] = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            for records in (await reader.getmany(timeout_ms=100)).values():
                found += records
            end = (await reader.end_offsets([partition]))[partition]
            if len(found) >= count and await reader.position(partition) >= end:
                return found
            assert time.monotonic() < deadline, f"{len(found)} of {count} dead letters on {partition.topic} within {timeout} s"
    finally:
        await reader.stop()


def place_order(order_id: str) -> Envelope:
    return Envelope.wrap(PlaceOrder(order_id=order_id, customer_id="c-1", customer_email="c@example.com",
                                    lines=[OrderLine(sku="SKU-1", quantity=1)]), source="tests", subject=order_id)
