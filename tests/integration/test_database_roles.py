"""Each service logs in as its own role, which owns its schema and nothing else (real PostgreSQL)."""

import uuid
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from services.order.app import SERVICE as ORDER
from services.runtime import db
from services.runtime.settings import Settings
from tests.conftest import SERVICES
from tests.integration.harness import running

NEXT = dict(zip(SERVICES, SERVICES[1:] + SERVICES[:1]))  # another service, for each

# What a bug or injected SQL might try, as each service: every one must be refused.
ESCAPES = {
    "read another service's schema": "SELECT count(*) FROM {other_schema}.events",
    "reset role, then read another service's schema": "RESET ROLE; SELECT count(*) FROM {other_schema}.events",
    "set role to another service's role": "SET ROLE {other_role}",
    "set role to the admin": "SET ROLE {admin}",
    "become the admin": "SET SESSION AUTHORIZATION {admin}",
    "grant itself another service's role": "GRANT {other_role} TO {own_role}",
    "give itself more": "ALTER ROLE {own_role} CREATEROLE",
    "create a role": "CREATE ROLE intruder_{token}",
    "create a database": "CREATE DATABASE intruder_{token}",
    "create a schema": "CREATE SCHEMA intruder_{token}",
    "create a table in the public schema": "CREATE TABLE public.intruder_{token} (id int)",
    "create a table in another service's schema": "CREATE TABLE {other_schema}.intruder_{token} (id int)",
    "create a temporary table": "CREATE TEMP TABLE intruder_{token} (id int)",
    "write another service's events": "DELETE FROM {other_schema}.events",
}


@pytest.fixture(scope="module")
def database(database_factory):
    return database_factory()


async def login(database, service: str) -> asyncpg.Connection:
    return await asyncpg.connect(database.urls[service], server_settings=db.session_settings(service))


@pytest.mark.parametrize("service", SERVICES)
@pytest.mark.parametrize("escape", ESCAPES)
async def test_a_service_cannot_reach_beyond_its_schema(database, service, escape):
    other = NEXT[service]
    sql = ESCAPES[escape].format(other_schema=db.schema(other), other_role=db.role(other), own_role=db.role(service),
                                 admin=urlsplit(database.admin_url).username, token=uuid.uuid4().hex[:8])
    conn = await login(database, service)
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute(sql)
    finally:
        await conn.close()


@pytest.mark.parametrize("service", SERVICES)
async def test_a_service_logs_in_as_its_own_role_and_does_its_own_work(database, service):
    conn = await login(database, service)
    try:
        assert await conn.fetchval("SELECT session_user") == db.role(service)
        assert await conn.fetchval("SELECT current_schema()") == db.schema(service)
        async with conn.transaction():
            await conn.execute("RESET ROLE")  # changes nothing: there is no other role to fall back to
            await conn.execute("CREATE TABLE scratch (id int)")
            await conn.execute("INSERT INTO scratch VALUES (1)")
            assert await conn.fetchval("SELECT count(*) FROM scratch") == 1
            assert await conn.fetchval("SELECT count(*) FROM events") == 0
            await conn.execute("TRUNCATE inbox")
    finally:
        await conn.close()


@pytest.mark.parametrize("service", SERVICES)
async def test_a_service_role_has_no_attribute_or_membership_beyond_logging_in(database, service):
    admin = await asyncpg.connect(database.admin_url)
    try:
        role = await admin.fetchrow("SELECT * FROM pg_roles WHERE rolname = $1", db.role(service))
        assert role["rolcanlogin"]
        assert not any(role[a] for a in ("rolsuper", "rolcreatedb", "rolcreaterole", "rolreplication", "rolbypassrls"))
        assert await admin.fetchval("SELECT count(*) FROM pg_auth_members WHERE member = $1", role["oid"]) == 0
        # The schema is its own; it owns nothing elsewhere.
        owned = await admin.fetch("SELECT nspname FROM pg_namespace WHERE nspowner = $1", role["oid"])
        assert [r["nspname"] for r in owned] == [db.schema(service)]
        assert await admin.fetchval("""SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                                       WHERE c.relowner = $1 AND n.nspname NOT IN ($2, 'pg_toast')""", role["oid"],
                                    db.schema(service)) == 0  # pg_toast: its tables' large values
    finally:
        await admin.close()


async def test_set_up_takes_the_login_from_the_url_and_takes_back_what_the_role_should_not_have(database_factory):
    """A role of another name than the local stack's, so that nothing else using the shared roles sees the change."""
    fresh = database_factory()
    name = f"orderflow_order_{uuid.uuid4().hex[:8]}"
    url = urlsplit(fresh.urls["order"])
    first = urlunsplit(url._replace(netloc=f"{name}:first-password@{url.netloc.rpartition('@')[2]}"))
    second = urlunsplit(url._replace(netloc=f"{name}:second-password@{url.netloc.rpartition('@')[2]}"))
    admin = await asyncpg.connect(fresh.admin_url)
    try:
        # Its own schema and migrations, as the local stack's role has them in its own database.
        await admin.execute("DROP SCHEMA order_service CASCADE")
        assert await db.set_up(fresh.admin_url, "order", first)
        await admin.execute(f"ALTER ROLE {name} CREATEDB; GRANT {db.role('inventory')} TO {name}")

        assert await db.set_up(fresh.admin_url, "order", second) == []  # nothing left to migrate
        role = await admin.fetchrow("SELECT oid, rolcreatedb FROM pg_roles WHERE rolname = $1", name)
        assert not role["rolcreatedb"]
        assert await admin.fetchval("SELECT count(*) FROM pg_auth_members WHERE member = $1", role["oid"]) == 0
        conn = await asyncpg.connect(second)  # the new password
        assert await conn.fetchval("SELECT session_user") == name
        await conn.close()
        if url.password:  # a server that checks passwords (not an embedded one trusting its socket)
            with pytest.raises(asyncpg.InvalidPasswordError):
                await asyncpg.connect(first)
    finally:
        await admin.execute(f"DROP OWNED BY {name}; DROP ROLE {name}")  # roles outlive the test's database
        await admin.close()


async def test_a_service_whose_schema_lacks_a_migration_does_not_start_and_says_which(database_factory):
    fresh = database_factory()
    admin = await asyncpg.connect(fresh.admin_url)
    await admin.execute("DELETE FROM order_service.schema_migrations WHERE name = 'order/004_shipments.sql'")
    await admin.close()
    settings = Settings(service="order", order_database_url=fresh.urls["order"])
    with pytest.raises(RuntimeError, match=r"lacks migrations \['order/004_shipments.sql'\].*services.migrate order"):
        async with running(ORDER, settings):
            pass
