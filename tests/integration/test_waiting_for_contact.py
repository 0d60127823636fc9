"""Notifications that overtake their order's OrderPlaced, on real PostgreSQL: they wait for its contact out of
the dispatchers' way, go out once it arrives (also when the two meet in two transactions at once), and are
refused with why when it never comes."""

import asyncio
import json
import uuid
from datetime import UTC, date, datetime, timedelta

import asyncpg
import pytest

from contracts.events import OrderConfirmed
from contracts.topics import ORDERS_EVENTS
from services.notification import handlers, outbox
from services.runtime import db
from services.runtime.retention import prune_all
from tests.integration.helpers import message
from tests.integration.test_notification_service import Notifications, backordered, moved, placed, product
from tests.support import eventually

RETENTION = timedelta(hours=336)


async def waiting(pool, order_id: str) -> list[bool]:
    return [r["waiting_for_contact"] for r in await pool.fetch(
        "SELECT waiting_for_contact FROM notification_outbox WHERE order_id = $1 ORDER BY kind", order_id)]


async def test_a_notification_queued_before_its_orders_contact_is_sent_once_the_contact_arrives(pools):
    service = Notifications(await pools("notification"))
    await service.receive(OrderConfirmed(order_id="o1"), product("LAMP", "Desk Lamp"), backordered("o2", "LAMP", 2))
    await service.receive(moved("o2", "LAMP", 2, date(2026, 12, 15)))
    await service.dispatch()
    assert service.mails() == []
    assert await waiting(service.pool, "o1") == [True]
    assert await waiting(service.pool, "o2") == [True, True]  # the backorder's mail and its ETA update

    await service.receive(placed("o1", "LAMP"), placed("o2", "LAMP"))
    await service.dispatch()
    await service.dispatch()

    assert sorted((m.order_id, m.kind, m.customer_email) for m in service.mails()) == [
        ("o1", "order_confirmed", "o1@example.com"),
        ("o2", "backorder_created", "o2@example.com"),
        ("o2", "eta_changed", "o2@example.com")]
    assert await waiting(service.pool, "o2") == [False, False]


async def handling(url: str, *events) -> tuple[asyncpg.Connection, asyncio.Task]:
    """A handler's transaction on a connection of its own, left open: the task handles the events in it."""
    conn = await asyncpg.connect(url, server_settings=db.session_settings("notification"))
    await conn.execute("BEGIN")
    return conn, asyncio.create_task(handlers.handle(conn, [message(ORDERS_EVENTS, e) for e in events], eta_window_s=0))


async def blocked(pool, conn: asyncpg.Connection) -> None:
    async def waits_for_a_lock():
        assert await pool.fetchval("SELECT EXISTS (SELECT FROM pg_locks WHERE pid = $1 AND NOT granted)",
                                   conn.get_server_pid())
    await eventually(waits_for_a_lock, timeout=10)


@pytest.mark.parametrize("first", ["the contact", "the notification"])
async def test_a_contact_and_a_notification_of_one_order_in_two_transactions_at_once_never_leave_it_waiting(
        pools, first):
    """Either transaction, uncommitted, cannot see what the other writes: without a lock the notification
    would be queued waiting and the contact released nothing. The second waits for the first to commit."""
    pool = await pools("notification")
    one, two = (placed("o1", "LAMP"),), (OrderConfirmed(order_id="o1"),)
    if first == "the notification":
        one, two = two, one
    first_conn, first_handled = await handling(pools.urls["notification"], *one)
    second_conn, second_handled = None, None
    try:
        await first_handled
        second_conn, second_handled = await handling(pools.urls["notification"], *two)
        await blocked(pool, second_conn)
        assert not second_handled.done()

        await first_conn.execute("COMMIT")
        await asyncio.wait_for(second_handled, 10)
        await second_conn.execute("COMMIT")
    finally:  # also when it fails: a transaction left open would hold its locks
        for conn in (first_conn, second_conn):
            if conn:
                conn.terminate()

    assert await waiting(pool, "o1") == [False]
    service = Notifications(pool)
    await service.dispatch()
    assert [(m.order_id, m.kind) for m in service.mails()] == [("o1", "order_confirmed")]


def rows_read(plan: dict, tables: set[str]) -> int:
    """Rows a plan's scans of `tables` read: those they returned and those their filters removed, every loop."""
    own = (plan.get("Actual Rows", 0) + plan.get("Rows Removed by Filter", 0)) * plan.get("Actual Loops", 1) \
        if plan.get("Relation Name") in tables and "Scan" in plan["Node Type"] else 0
    return own + sum(rows_read(child, tables) for child in plan.get("Plans", []))


async def test_a_claim_reads_none_of_thousands_of_notifications_waiting_for_a_contact(pools):
    pool = await pools("notification")
    service = Notifications(pool)
    for start in range(0, 5000, 500):
        await service.receive(*(OrderConfirmed(order_id=f"orphan-{i}") for i in range(start, start + 500)))
    await service.receive(*(placed(f"o{i}", "LAMP") for i in range(3)))
    await service.receive(*(OrderConfirmed(order_id=f"o{i}") for i in range(3)))
    await pool.execute("ANALYZE notification_outbox")  # as autovacuum would, after so many rows

    async def read_by(statement: str, *args) -> tuple[int, int]:
        async with pool.acquire() as conn:
            transaction = conn.transaction()
            await transaction.start()
            try:
                [plan] = json.loads(await conn.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {statement}", *args))
            finally:
                await transaction.rollback()
        return rows_read(plan["Plan"], {"notification_outbox", "order_contacts"}), plan["Plan"]["Actual Rows"]

    read, claimed = await read_by(outbox.CLAIM, 100)
    assert claimed == 3 and read < 20
    read, _ = await read_by(outbox.IN_DOUBT)
    assert read < 20
    await service.dispatch()
    assert len(service.mails()) == 3
    read, claimed = await read_by(outbox.CLAIM, 100)  # what every dispatcher runs after every commit
    assert claimed == 0 and read < 20


async def test_a_notification_whose_order_placed_never_comes_is_refused_with_why_after_the_retention(pools):
    pool = await pools("notification")
    service = Notifications(pool)
    await service.receive(OrderConfirmed(order_id="o-old"), OrderConfirmed(order_id="o-older"),
                          OrderConfirmed(order_id="o-new"))
    await pool.execute("UPDATE notification_outbox SET created_at = now() - $2::interval WHERE order_id = ANY($1)",
                       ["o-old", "o-older"], RETENTION + timedelta(hours=1))

    refused = await prune_all(pool, outbox.refuse_contactless, datetime.now(UTC) - RETENTION, batch_size=1)

    assert refused == 2
    reasons = {r["order_id"]: r["failed_reason"] for r in await pool.fetch(
        "SELECT order_id, failed_reason FROM notification_outbox")}
    assert reasons == {"o-old": "no OrderPlaced for order o-old arrived within 336 hours",
                       "o-older": "no OrderPlaced for order o-older arrived within 336 hours", "o-new": None}
    assert await waiting(pool, "o-old") == [False] and await waiting(pool, "o-new") == [True]
    assert await outbox.pending_by_channel(pool) == {"email": 1}
    # Refused is for good: an OrderPlaced that turns up after all sends the waiting one only.
    await service.receive(placed("o-old", "LAMP"), placed("o-new", "LAMP"))
    await service.dispatch()
    assert [m.order_id for m in service.mails()] == ["o-new"]


@pytest.fixture
async def database_before_010(postgres_url, monkeypatch):
    """A fresh database migrated up to 009 (set up as the service would be), and how to migrate it on."""
    every = db.migrations
    monkeypatch.setattr(db, "migrations", lambda service: {
        name: file for name, file in every(service).items() if name != "notification/010_waiting_for_contact.sql"})
    name = f"orderflow_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(postgres_url)
    await admin.execute(f"CREATE DATABASE {name}")
    admin_url = db.with_database(postgres_url, name)
    url = db.local_url(admin_url, "notification")
    await db.set_up(admin_url, "notification", url)

    async def migrate() -> list[str]:
        monkeypatch.setattr(db, "migrations", every)
        return await db.set_up(admin_url, "notification", url)

    yield url, migrate
    await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    await admin.close()


async def test_migration_010_makes_the_pending_notifications_without_a_contact_wait_and_leaves_the_rest(
        database_before_010):
    url, migrate = database_before_010
    pool = await db.connect_pool(url, "notification")
    try:
        # Rows in every state, as the code before it queued them: pending with and without a contact, sent and
        # refused without one (a database reused with another broker), which stay as they are.
        await pool.execute("INSERT INTO order_contacts VALUES ('o-known', 'c-1', 'o-known@example.com')")
        for order_id, sent_at, failed_reason in (("o-known", None, None), ("o-unknown", None, None),
                                                 ("o-sent", datetime.now(UTC), None), ("o-bad", None, "550 no such user")):
            await pool.execute(
                "INSERT INTO notification_outbox (notification_id, order_id, kind, subject, body, causation_id, "
                "sent_at, failed_reason) VALUES ($1, $2, 'order_confirmed', 's', 'b', 'c', $3, $4)",
                uuid.uuid4(), order_id, sent_at, failed_reason)

        assert await migrate() == ["notification/010_waiting_for_contact.sql"]

        rows = {r["order_id"]: r["waiting_for_contact"] for r in await pool.fetch(
            "SELECT order_id, waiting_for_contact FROM notification_outbox")}
        assert rows == {"o-known": False, "o-unknown": True, "o-sent": False, "o-bad": False}
        service = Notifications(pool)
        await service.dispatch()
        assert [m.order_id for m in service.mails()] == ["o-known"]
        await service.receive(placed("o-unknown", "LAMP"))
        await service.dispatch()
        assert [(m.order_id, m.customer_email) for m in service.mails()] == [
            ("o-known", "o-known@example.com"), ("o-unknown", "o-unknown@example.com")]
    finally:
        await pool.close()
