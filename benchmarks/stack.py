"""A benchmark's own orderflow, beside anything else on the machine: a broker on free ports, a fresh database
on the local PostgreSQL, the mail sink as a process of its own, and one instance of each service; each of
them a process whose CPU and memory can be read."""

import asyncio
import contextlib
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from infra import kafka, postgres
from infra.mailsink import start_sink_process
from infra.ports import free_port
from infra.services import SERVICES, start_services, stop_services, wait_healthy
from infra.topics import create_topics
from services.runtime import db


@dataclass
class Stack:
    bootstrap_servers: str
    admin_url: str  # the admin's, on the run's own database
    processes: dict[str, subprocess.Popen]  # "order", "inventory", "notification", "kafka", "mail sink"
    description: str


@contextlib.asynccontextmanager
async def own_stack(folder: Path, keep: bool = False, env: dict[str, str] | None = None) -> AsyncIterator[Stack]:
    """The stack, healthy, with its logs, mails and broker data in `folder`; `env` changes the services'
    settings. On leaving, everything is stopped, the database dropped and the folder removed unless `keep`."""
    async with contextlib.AsyncExitStack() as cleanup:
        if not keep:
            cleanup.callback(shutil.rmtree, folder, ignore_errors=True)
        broker = await asyncio.to_thread(kafka.start_broker_on_free_ports, folder / "broker")
        cleanup.callback(broker.stop)
        server, where = await asyncio.to_thread(postgres.ensure_database)
        admin_url = await postgres.create_database(server, f"orderflow_bench_{uuid.uuid4().hex[:8]}")
        cleanup.push_async_callback(postgres.drop_database, admin_url)
        await create_topics(broker.bootstrap_servers)
        logins = {f"{service.upper()}_DATABASE_URL": db.local_url(admin_url, service) for service in SERVICES}
        for service in SERVICES:
            await db.set_up(admin_url, service, logins[f"{service.upper()}_DATABASE_URL"])
        mail_port = free_port()
        mail = await asyncio.to_thread(start_sink_process, folder / "mail", mail_port)
        cleanup.callback(stop_services, {"mail sink": mail})
        service_env = {"KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers, "SMTP_URL": f"smtp://127.0.0.1:{mail_port}",
                       "KAFKA_SESSION_TIMEOUT_MS": "2000", **logins} \
            | {f"{service.upper()}_HTTP_PORT": str(free_port()) for service in SERVICES} \
            | ({"KAFKA_ENABLE_IDEMPOTENCE": "false"} if broker.kind == "Tansu" else {}) | (env or {})
        services = start_services(service_env, log_dir=folder)
        cleanup.callback(stop_services, services)
        await asyncio.to_thread(wait_healthy, service_env, services)
        yield Stack(broker.bootstrap_servers, admin_url, services | {"kafka": broker.process, "mail sink": mail},
                    f"{broker.kind} on {broker.bootstrap_servers}, a fresh database on {where}, the mail sink and one "
                    f"instance of each service; logs in {folder}" + ("" if keep else " (removed at the end)"))
