"""Postgres: one schema and one role per service, numbered SQL migrations, and the service's pool."""

from pathlib import Path

import asyncpg
import structlog

RUNTIME_MIGRATIONS = Path(__file__).parent / "migrations"
SERVICES = Path(__file__).parent.parent

log = structlog.get_logger()


def role(service: str) -> str:
    return f"orderflow_{service}"


def schema(service: str) -> str:
    return f"{service}_service"


async def connect_pool(database_url: str, service: str, *, max_size: int = 8) -> asyncpg.Pool:
    """A pool whose sessions run as the service's role in its own schema: it cannot read another's tables."""
    return await asyncpg.create_pool(
        database_url,
        min_size=1,
        max_size=max_size,
        server_settings=session_settings(service),
    )


def session_settings(service: str) -> dict[str, str]:
    return {"search_path": schema(service), "role": role(service), "jit": "off"}


async def migrate(database_url: str, service: str) -> list[str]:
    """Create the service's role and schema, then apply the migrations not yet applied, in order:
    the shared event store first, then the service's own. Returns the names applied."""
    files = sorted(RUNTIME_MIGRATIONS.glob("*.sql")) + sorted((SERVICES / service / "migrations").glob("*.sql"))
    conn = await asyncpg.connect(database_url)
    try:
        # Serialises concurrent migrators (three services starting at once).
        await conn.execute("SELECT pg_advisory_lock(hashtext('orderflow.migrate'))")
        await conn.execute(
            f"""
            DO $$ BEGIN CREATE ROLE {role(service)} NOLOGIN;
            EXCEPTION WHEN duplicate_object THEN NULL; END $$;
            GRANT {role(service)} TO CURRENT_USER;
            CREATE SCHEMA IF NOT EXISTS {schema(service)} AUTHORIZATION {role(service)};
            SET ROLE {role(service)};
            SET search_path TO {schema(service)};
            CREATE TABLE IF NOT EXISTS schema_migrations (
                name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now());
            """
        )
        done = {r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations")}
        applied = []
        for file in files:
            name = f"{file.parent.parent.name}/{file.name}"
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
