"""All three services as processes on a real broker and PostgreSQL, once on Apache Kafka and once on
Tansu, driven through the public topics."""

import asyncio
import contextlib
import json
import os
import signal
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from infra.mailsink import MailSink
from infra.services import SERVICES, http_port, start_service, start_services, stop_services, stopped, wait_healthy
from infra.topics import create_topics
from tests.conftest import Database, free_port
from tests.support import Bus


WEBHOOK_SECRET = "test-secret"


class WebhookReceiver:
    """A storefront's webhook endpoint: keeps every request, and answers the first delivery of each
    notification with a 503, so that every notification is retried once."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self._seen: set[str] = set()
        self.port = free_port()

    async def _receive(self, request: Request) -> Response:
        body = await request.body()
        self.requests.append((dict(request.headers), body))
        key = request.headers.get("idempotency-key", "")
        if key not in self._seen:
            self._seen.add(key)
            return Response(status_code=503)
        return Response(status_code=204)

    async def start(self) -> "WebhookReceiver":
        app = Starlette(routes=[Route("/hooks/orderflow", self._receive, methods=["POST"])])
        self._server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            await asyncio.sleep(0.01)
        return self

    async def stop(self) -> None:
        self._server.should_exit = True
        await self._task

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/orderflow"

    def deliveries(self, order_id: str) -> list[tuple[dict[str, str], dict]]:
        return [(h, json.loads(b)) for h, b in self.requests if json.loads(b)["order_id"] == order_id]


@dataclass
class Stack:
    broker: str
    bus: Bus
    mail: MailSink
    webhook: WebhookReceiver
    http: dict[str, str]
    logs: Path
    database: Database

    async def get(self, service: str, path: str) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.http[service]) as client:
            return await client.get(path)

    def mails_to(self, address: str) -> list:
        return [m for m in self.mail.mails() if m["To"] == address]


@pytest.fixture(scope="session", params=["apache-kafka", "tansu"])
async def stack(request, database_factory, tmp_path_factory):
    bootstrap = request.getfixturevalue("apache_kafka" if request.param == "apache-kafka" else "tansu")
    async with running_stack(request.param, tmp_path_factory.mktemp(f"stack-{request.param}"), database_factory(),
                             KAFKA_BOOTSTRAP_SERVERS=bootstrap,
                             KAFKA_ENABLE_IDEMPOTENCE=str(request.param != "tansu").lower()) as stack:
        yield stack


@contextlib.asynccontextmanager
async def running_stack(label: str, folder: Path, database: Database, mail: MailSink | None = None,
                        kafka_security: dict | None = None, **env: str) -> AsyncIterator[Stack]:
    """The three services with their logs in `folder`, a mail sink and a webhook receiver; `env` must name
    the broker (KAFKA_BOOTSTRAP_SERVERS, and its KAFKA_* security settings, whose client options are
    `kafka_security`), and may change any other setting; the services log in to `database`."""
    bootstrap, kafka_security = env["KAFKA_BOOTSTRAP_SERVERS"], kafka_security or {}
    await create_topics(bootstrap, **kafka_security)
    mail = (mail or MailSink(folder / "mail", port=free_port())).start()
    webhook = await WebhookReceiver().start()
    ports = {name: free_port() for name in ("order", "inventory", "notification")}
    env = {
        "SMTP_URL": mail.url,
        "KAFKA_SESSION_TIMEOUT_MS": "2000",
        "LOG_LEVEL": "info",
        "ETA_UPDATE_WINDOW_S": "2",
        "WEBHOOK_URL": webhook.url,
        "WEBHOOK_SECRET": WEBHOOK_SECRET,
    } | database.environment | {f"{name.upper()}_HTTP_PORT": str(port) for name, port in ports.items()} | env
    processes = start_services(env, log_dir=folder)
    try:
        await asyncio.to_thread(wait_healthy, env, processes)
        bus = await Bus(bootstrap, kafka_security, idempotent=env.get("KAFKA_ENABLE_IDEMPOTENCE") != "false").start()
        yield Stack(label, bus, mail, webhook, {n: f"http://127.0.0.1:{p}" for n, p in ports.items()}, folder,
                    database)
        await bus.stop()
    finally:
        stop_services(processes)
        mail.stop()
        await webhook.stop()


@dataclass
class Instances:
    """Instances of the services as processes, by name ("order", "inventory-2", ...), with their mail sink."""

    env: dict[str, str]
    processes: dict[str, subprocess.Popen]
    mail: MailSink
    log_dir: Path

    def url(self, instance: str) -> str:
        return f"http://127.0.0.1:{http_port(instance, self.env)}"

    async def get(self, instance: str, path: str) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.url(instance)) as client:
            return await client.get(path)

    def stop(self, instance: str) -> int:
        """SIGTERM, as an orchestrator stops a container: it finishes its batch and leaves its group."""
        process = self.processes[instance]
        os.killpg(process.pid, signal.SIGTERM)
        return stopped(process)

    def start(self, instance: str) -> None:
        self.processes[instance] = start_service(instance, self.env, self.log_dir)
        wait_healthy(self.env, {instance: self.processes[instance]})


@contextlib.asynccontextmanager
async def instances_of(bootstrap: str, database: Database, folder: Path, names: list[str]) -> AsyncIterator[Instances]:
    """The named instances on a broker and a database, healthy; stopped on leaving."""
    mail = MailSink(folder / "mail", port=free_port()).start()
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "SMTP_URL": mail.url,
        "KAFKA_SESSION_TIMEOUT_MS": "2000",
    } | database.environment | {f"{name.upper()}_HTTP_PORT": str(free_port(also=(100, 200))) for name in SERVICES}
    running = Instances(env, {}, mail, folder)
    try:
        running.processes = {name: start_service(name, env, folder) for name in names}
        await asyncio.to_thread(wait_healthy, env, running.processes)
        yield running
    finally:
        stop_services(running.processes)
        mail.stop()
