"""PostgreSQL for the local stack, as its admin: DATABASE_URL if set, else the local server (started
when installed but down), else an embedded pgserver in a project-local folder. The services never log in
as the admin: the set-up (services/runtime/db.py) gives each a role of its own."""

import asyncio
import os
import shutil
import subprocess

import asyncpg

from infra import STATE, blocking
from services.runtime import db
from services.runtime.settings import DEFAULT_ADMIN_DATABASE_URL, admin_database_url


async def answers(url: str) -> bool:
    try:
        conn = await asyncpg.connect(url, timeout=3)
    except (OSError, asyncpg.PostgresError, asyncio.TimeoutError):
        return False
    await conn.close()
    return True


def _psql(sql: str) -> str:
    """Run SQL as the server's superuser over its socket (peer auth): as root, on a packaged server."""
    done = subprocess.run(["psql", "-X", "-q", "-tA", "-v", "ON_ERROR_STOP=1", "-c", sql], user="postgres",
                          cwd="/", capture_output=True, text=True, check=True)
    return done.stdout.strip()


def _start_packaged_server() -> bool:
    """Start a Debian-packaged cluster that is installed but down, and give it our admin and database."""
    if not shutil.which("pg_lsclusters") or os.geteuid() != 0:
        return False
    clusters = subprocess.run(["pg_lsclusters", "-h"], capture_output=True, text=True).stdout.split()
    if len(clusters) < 4:
        return False
    version, name, status = clusters[0], clusters[1], clusters[3]
    if status != "online":
        subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, name, "start"], check=True)
    if _psql("SELECT 1 FROM pg_roles WHERE rolname = 'orderflow'") != "1":
        _psql("CREATE ROLE orderflow LOGIN SUPERUSER PASSWORD 'orderflow'")
    if _psql("SELECT 1 FROM pg_database WHERE datname = 'orderflow'") != "1":
        _psql("CREATE DATABASE orderflow OWNER orderflow")
    return True


def _embedded_server() -> str:
    import pgserver  # a PostgreSQL build in a wheel: no system install needed

    server = pgserver.get_server(STATE / "pgdata", cleanup_mode=None)
    return server.get_uri()


def ensure_database() -> tuple[str, str]:
    """(admin url, what it is): the database the stack uses, started if need be."""
    if url := admin_database_url():
        return url, "DATABASE_URL"
    if blocking.run(answers(DEFAULT_ADMIN_DATABASE_URL)):
        return DEFAULT_ADMIN_DATABASE_URL, "local PostgreSQL server"
    if _start_packaged_server() and blocking.run(answers(DEFAULT_ADMIN_DATABASE_URL)):
        return DEFAULT_ADMIN_DATABASE_URL, "local PostgreSQL server (started)"
    return _embedded_server(), "embedded PostgreSQL (pgserver)"


async def create_database(server_url: str, name: str) -> str:
    """A new, empty database `name` on the admin's server; returns the admin's URL of it."""
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f"CREATE DATABASE {name}")
    finally:
        await conn.close()
    return db.with_database(server_url, name)


async def drop_database(url: str) -> None:
    """Drop the database of the admin's `url`, ending its sessions."""
    name = url.rpartition("/")[2].partition("?")[0]
    conn = await asyncpg.connect(db.with_database(url, "postgres"))
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await conn.close()
