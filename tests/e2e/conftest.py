"""All three services as processes on a real broker and PostgreSQL, once on Apache Kafka and once on
Tansu, driven through the public topics."""

import asyncio
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from infra.mailsink import MailSink
from infra.services import start_services, stop_services, wait_healthy
from infra.topics import create_topics
from tests.conftest import free_port
from tests.support import Bus


@dataclass
class Stack:
    broker: str
    bus: Bus
    mail: MailSink
    http: dict[str, str]
    logs: Path

    async def get(self, service: str, path: str) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.http[service]) as client:
            return await client.get(path)

    def mails_to(self, address: str) -> list:
        return [m for m in self.mail.mails() if m["To"] == address]


@pytest.fixture(scope="session", params=["apache-kafka", "tansu"])
async def stack(request, database_factory, tmp_path_factory):
    bootstrap = request.getfixturevalue("apache_kafka" if request.param == "apache-kafka" else "tansu")
    await create_topics(bootstrap)
    folder = tmp_path_factory.mktemp(f"stack-{request.param}")
    mail = MailSink(folder / "mail", port=free_port()).start()
    ports = {name: free_port() for name in ("order", "inventory", "notification")}
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "DATABASE_URL": database_factory(),
        "SMTP_URL": mail.url,
        "KAFKA_SESSION_TIMEOUT_MS": "2000",
        "LOG_LEVEL": "info",
        "ETA_UPDATE_WINDOW_S": "2",
    } | {f"{name.upper()}_HTTP_PORT": str(port) for name, port in ports.items()}
    processes = start_services(env, log_dir=folder)
    try:
        await asyncio.to_thread(wait_healthy, env, processes)
        bus = await Bus(bootstrap).start()
        yield Stack(request.param, bus, mail, {n: f"http://127.0.0.1:{p}" for n, p in ports.items()}, folder)
        await bus.stop()
    finally:
        stop_services(processes)
        mail.stop()
