"""Postgres: each service logs in as its own role, which owns its schema and nothing else; the set-up that
creates them (as an admin), numbered SQL migrations, and the service's pool."""

import base64
import hashlib
import hmac
import os
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import asyncpg
import structlog

RUNTIME_MIGRATIONS = Path(__file__).parent / "migrations"
SERVICES = Path(__file__).parent.parent

log = structlog.get_logger()


def role(service: str) -> str:
    """The login role the local stack creates for a service (elsewhere, its URL names it)."""
    return f"orderflow_{service}"


def schema(service: str) -> str:
    return f"{service}_service"


def local_url(admin_url: str, service: str) -> str:
    """The service's own login on the admin URL's server and database, as the local stack sets it up: its
    role, with a password derived from the admin's, so that every run against one server agrees on it
    without storing it, and nobody without the admin password can compute it. TLS and other parameters are
    the admin URL's."""
    parts = urlsplit(admin_url)
    secret = unquote(parts.password or "").encode()
    password = hmac.new(secret, role(service).encode(), hashlib.sha256).hexdigest()[:32]
    server = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{role(service)}:{password}@{server}"))


def with_database(url: str, name: str) -> str:
    """The same login on the same server, another database (host URLs and socket URLs with ?host= alike)."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{quote(name)}"))


async def connect_pool(database_url: str, service: str, *, max_size: int = 8) -> asyncpg.Pool:
    """A pool of the service's own logins, in its own schema."""
    return await asyncpg.create_pool(
        database_url,
        min_size=1,
        max_size=max_size,
        server_settings=session_settings(service),
        reset=_keep_session,
    )


async def _keep_session(conn: asyncpg.Connection) -> None:
    """A connection goes back to the pool as it is: nothing done on a pooled connection leaves session state
    behind (no LISTEN, no session advisory lock, no SET: those are on the relay's and the set-up's own
    connections), so asyncpg's reset query (RESET ALL, UNLISTEN *, ...) would only add a round trip to the
    end of every batch."""


def session_settings(service: str) -> dict[str, str]:
    return {"search_path": schema(service), "jit": "off"}


async def set_up(admin_url: str, service: str, service_url: str) -> list[str]:
    """As the admin: make the service's login role (name and password from its URL) able to log in and
    nothing more, give it its schema and the right to connect, then apply its migrations not yet applied,
    logged in as it so that it owns what they create. Idempotent; returns the migrations applied."""
    login = urlsplit(service_url)
    if not login.username:
        raise ValueError(f"the {service} service's database URL names no user")  # not shown: it may hold a password
    name = unquote(login.username)
    admin = await asyncpg.connect(admin_url)
    try:
        # Serialises concurrent set-ups of one database (three services starting at once).
        await admin.execute("SELECT pg_advisory_lock(hashtext('orderflow.migrate'))")
        await _ensure_role(admin, name)
        await _grant(admin, name, service)
        if login.password is not None and not await _logs_in(service_url):
            # Sent as a SCRAM verifier, never in clear: statements may be logged by the server.
            await _sql(admin, "ALTER ROLE %I PASSWORD %L", name, scram_verifier(unquote(login.password)))
        return await _migrate(service_url, service)
    finally:
        await admin.close()


async def _sql(conn: asyncpg.Connection, template: str, *values: str) -> None:
    """Run a statement whose names and literals the server quotes (format's %I and %L): utility statements
    take no parameters."""
    placeholders = ", ".join(f"${i}::text" for i in range(1, len(values) + 1))
    await conn.execute(await conn.fetchval(f"SELECT format($${template}$$, {placeholders})", *values))


# A service role logs in and is nothing more: each of the others is a way out of its schema.
LEAST = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"
ROLE = """
SELECT rolcanlogin AND NOT (rolsuper OR rolcreatedb OR rolcreaterole OR rolreplication OR rolbypassrls) AS least,
       ARRAY(SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
             WHERE m.member = r.oid) AS member_of
FROM pg_roles r WHERE r.rolname = $1
"""


async def _ensure_role(admin: asyncpg.Connection, name: str) -> None:
    found = await admin.fetchrow(ROLE, name)
    if found is None:
        try:
            await _sql(admin, f"CREATE ROLE %I {LEAST}", name)
        except (asyncpg.DuplicateObjectError, asyncpg.UniqueViolationError):
            pass  # another set-up created it meanwhile
        found = await admin.fetchrow(ROLE, name)
    if not found["least"]:
        await _sql(admin, f"ALTER ROLE %I {LEAST}", name)
    for other in found["member_of"]:
        await _sql(admin, "REVOKE %I FROM %I", other, name)
        log.warning("revoked a membership the service role must not have", role=name, member_of=other)


async def _logs_in(url: str) -> bool:
    try:
        conn = await asyncpg.connect(url)
    except (asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError):
        return False
    await conn.close()
    return True


def scram_verifier(password: str, iterations: int = 4096) -> str:
    """What PostgreSQL stores for a SCRAM-SHA-256 password (RFC 5802, as libpq's PQencryptPasswordConn)."""
    salt = os.urandom(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    stored_key = hashlib.sha256(hmac.new(salted, b"Client Key", "sha256").digest()).digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    salt_b64, stored_b64, server_b64 = (base64.b64encode(raw).decode() for raw in (salt, stored_key, server_key))
    return f"SCRAM-SHA-256${iterations}:{salt_b64}${stored_b64}:{server_b64}"


async def _grant(admin: asyncpg.Connection, name: str, service: str) -> None:
    """Connecting to this database, and its own schema: nothing else. Only the admin keeps PUBLIC's rights
    on the public schema (CREATE, before PostgreSQL 15)."""
    await grant_connect(admin, await admin.fetchval("SELECT current_database()"), name)
    await admin.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
    # An admin that is not a superuser must be able to act as the role to give it a schema.
    await _sql(admin, "GRANT %I TO CURRENT_USER", name)
    await _sql(admin, "CREATE SCHEMA IF NOT EXISTS %I AUTHORIZATION %I", schema(service), name)


async def grant_connect(admin: asyncpg.Connection, database: str, *roles: str) -> None:
    """Only these roles (and the admin) may connect to the database: PUBLIC's rights on it, TEMP among them,
    are revoked. A database cloned from a set-up one needs this again: a clone keeps no database grants."""
    await _sql(admin, "REVOKE ALL ON DATABASE %I FROM PUBLIC", database)
    for role_name in roles:
        await _sql(admin, "GRANT CONNECT ON DATABASE %I TO %I", database, role_name)


async def _migrate(service_url: str, service: str) -> list[str]:
    """Apply the migrations not yet applied, in order: the shared event store first, then the service's own."""
    conn = await asyncpg.connect(service_url, server_settings=session_settings(service))
    try:
        await conn.execute("""CREATE TABLE IF NOT EXISTS schema_migrations (
                              name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())""")
        done = {r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations")}
        applied = []
        for name, file in migrations(service).items():
            if name in done:
                continue
            async with conn.transaction():
                await conn.execute(file.read_text())
                await conn.execute("INSERT INTO schema_migrations (name) VALUES ($1)", name)
            applied.append(name)
        if applied:
            log.info("migrated", schema=schema(service), applied=applied)
        return applied
    finally:
        await conn.close()


def migrations(service: str) -> dict[str, Path]:
    files = sorted(RUNTIME_MIGRATIONS.glob("*.sql")) + sorted((SERVICES / service / "migrations").glob("*.sql"))
    return {f"{file.parent.parent.name}/{file.name}": file for file in files}


async def missing_migrations(pool: asyncpg.Pool, service: str) -> list[str]:
    """The migrations this code needs that the service's schema lacks (all, when it has none)."""
    if not await pool.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL"):
        return list(migrations(service))
    done = {r["name"] for r in await pool.fetch("SELECT name FROM schema_migrations")}
    return [name for name in migrations(service) if name not in done]
