"""The system a chaos run works on: a broker of its own, a database it can restart, a mail sink, and two
instances of each service in its consumer group, supervised (restarted when they die) as `make run` does."""

import os
import shutil
import signal
import subprocess
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import asyncpg

from infra import postgres
from infra.ports import free_port
from infra.services import SERVICES, start_service, stop_services, supervise, wait_healthy
from services.runtime import db

# A Debian cluster of the chaos harness's own, so that restarting it disturbs no other user of the machine's
# PostgreSQL; created once, on first use.
CLUSTER = "orderflow_chaos"
INSTANCES_PER_SERVICE = 2


@dataclass
class Database:
    admin_url: str  # a superuser's, on the run's own database
    what: str
    restart_command: list[str] | None  # None: the harness cannot restart this server
    why_not: str = ""  # why it cannot

    def restart(self) -> None:
        subprocess.run(self.restart_command, check=True, capture_output=True)


def _sh(*command: str) -> str:
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


def _own_cluster() -> tuple[str, list[str]] | None:
    """The harness's Debian cluster, created and started if need be: its admin URL and restart command.
    None where there are no Debian PostgreSQL tools, or we are not root to use them."""
    if not shutil.which("pg_lsclusters") or os.geteuid() != 0:
        return None
    clusters = [line.split() for line in _sh("pg_lsclusters", "-h").splitlines()]
    mine = next((c for c in clusters if c[1] == CLUSTER), None)
    if mine is None:
        version = sorted(os.listdir("/usr/lib/postgresql"), key=int)[-1]
        _sh("pg_createcluster", version, CLUSTER)
        mine = next(line.split() for line in _sh("pg_lsclusters", "-h").splitlines() if line.split()[1] == CLUSTER)
    version, port = mine[0], mine[2]
    if mine[3] != "online":
        _sh("pg_ctlcluster", "--skip-systemctl-redirect", version, CLUSTER, "start")
    subprocess.run(["psql", "-X", "-q", "-p", port, "-c",
                    "DO $$ BEGIN CREATE ROLE orderflow LOGIN SUPERUSER PASSWORD 'orderflow'; "
                    "EXCEPTION WHEN duplicate_object THEN NULL; END $$"],
                   user="postgres", cwd="/", check=True, capture_output=True)
    restart = ["pg_ctlcluster", "--skip-systemctl-redirect", version, CLUSTER, "restart"]
    return f"postgresql://orderflow:orderflow@127.0.0.1:{port}/postgres?sslmode=disable", restart


async def create_database(run: str) -> Database:
    """A fresh database for the run: on the harness's own Debian cluster, which it can restart; else on what
    the stack would use (DATABASE_URL, the local server, pgserver), which it leaves alone."""
    if os.environ.get("DATABASE_URL"):
        server, what, restart = os.environ["DATABASE_URL"], "DATABASE_URL", None
        why_not = "the database is DATABASE_URL, which the harness does not manage"
    elif own := _own_cluster():
        (server, restart), what, why_not = own, f"the Debian cluster {CLUSTER}", ""
    else:
        server, what = postgres.ensure_database()
        restart, why_not = None, f"the database is {what}, not a Debian cluster the harness can restart"
    return Database(await postgres.create_database(server, f"orderflow_chaos_{run}"), what, restart, why_not)


def _with_application_name(url: str, name: str) -> str:
    """asyncpg sends unknown URL parameters as session settings: each instance's sessions carry its name,
    which pg_stat_activity shows (how the harness finds the relay's leader)."""
    return f"{url}{'&' if '?' in url else '?'}application_name={quote(name)}"


@dataclass
class Instances:
    """Two instances of each service, each with its HTTP port and its name in the database sessions; a
    supervisor thread restarts one that dies, after a backoff, as `make run` does."""

    env: dict[str, str]  # shared by all
    log_dir: Path
    envs: dict[str, dict[str, str]] = field(default_factory=dict)  # instance -> its environment
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    started: dict[str, int] = field(default_factory=dict)  # instance -> how often it was started
    _stopping: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        for service in SERVICES:
            for i in range(1, INSTANCES_PER_SERVICE + 1):
                name = f"{service}-{i}"
                login = f"{service.upper()}_DATABASE_URL"
                self.envs[name] = self.env | {
                    f"{service.upper()}_HTTP_PORT": str(free_port()),
                    login: _with_application_name(self.env[login], name),
                }

    @staticmethod
    def service(instance: str) -> str:
        return instance.rpartition("-")[0]

    def start(self, instance: str) -> subprocess.Popen:
        folder = self.log_dir / instance
        folder.mkdir(parents=True, exist_ok=True)
        self.started[instance] = self.started.get(instance, 0) + 1
        return start_service(self.service(instance), self.envs[instance], folder)

    def start_all(self) -> None:
        for instance in self.envs:
            self.processes[instance] = self.start(instance)
        for instance, process in self.processes.items():
            wait_healthy(self.envs[instance], {self.service(instance): process})
        self._supervisor = threading.Thread(
            target=supervise, args=(self.processes, self.start, self._stopping.is_set, 0.5), daemon=True)
        self._supervisor.start()

    def alive(self, service: str | None = None) -> list[str]:
        return [name for name, p in self.processes.items()
                if p.poll() is None and (service is None or self.service(name) == service)]

    def kill(self, instance: str) -> None:
        """SIGKILL, no warning: the supervisor starts it again."""
        os.killpg(self.processes[instance].pid, signal.SIGKILL)

    def stop(self) -> None:
        self._stopping.set()
        if hasattr(self, "_supervisor"):
            self._supervisor.join()
        stop_services(self.processes)


LEADER = """
SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a USING (pid)
WHERE l.locktype = 'advisory' AND l.granted AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND l.objsubid = 1 AND l.objid::bigint = hashtext($1)::bigint & 4294967295
"""


async def relay_leader(admin_url: str, service: str) -> str | None:
    """The instance whose relay holds the service's advisory lock (services/runtime/relay.py), if one does."""
    conn = await asyncpg.connect(admin_url, timeout=3)
    try:
        return await conn.fetchval(LEADER, f"{db.schema(service)}.relay")
    finally:
        await conn.close()


def run_id() -> str:
    return uuid.uuid4().hex[:8]
