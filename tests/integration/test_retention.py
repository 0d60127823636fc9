"""Retention on real PostgreSQL: inbox message ids and sent notifications older than the retention go, in
bounded batches; the senders' ids, what is pending or refused, and the event store stay."""

import uuid
from datetime import UTC, date, datetime, timedelta

from contracts.commands import CancelReplenishment, ExpectReplenishment, PlaceOrder, ReceiveStock
from services.inventory.handlers import inbox_key as inventory_key
from services.notification import outbox
from services.order.handlers import inbox_key as order_key
from services.runtime import inbox
from services.runtime.retention import prune_all
from tests.integration.helpers import message
from tests.integration.test_no_message_stalls import order_service, place_order
from tests.support import eventually

NOW = datetime.now(UTC)
RETENTION = timedelta(hours=336)


async def claimed_keys(pool) -> set[str]:
    return {r["message_key"] for r in await pool.fetch("SELECT message_key FROM inbox")}


async def claim(pool, key, messages) -> list[str]:
    async with pool.acquire() as conn, conn.transaction():
        return [key(m) for m in await inbox.claim(conn, messages, key)]


async def handled_at(pool, keys, when: datetime) -> None:
    await pool.execute("UPDATE inbox SET handled_at = $2 WHERE message_key = ANY($1::text[])", keys, when)


async def test_message_ids_older_than_the_retention_are_pruned_in_batches_and_the_senders_ids_kept(pools):
    pool = await pools("inventory")
    receipt = message("inventory.commands", ReceiveStock(receipt_id="r-1", sku="S", quantity=1))
    purchase = message("inventory.commands", ExpectReplenishment(po_id="po-1", sku="S", quantity=1,
                                                                 expected_on=date(2099, 1, 1)))
    old = [message("inventory.commands", CancelReplenishment(po_id=f"po-{i}", sku="S")) for i in range(5)]
    recent = message("inventory.commands", CancelReplenishment(po_id="po-9", sku="S"))
    old_keys = await claim(pool, inventory_key, old + [receipt, purchase])
    [recent_key] = await claim(pool, inventory_key, [recent])
    await handled_at(pool, old_keys, NOW - RETENTION - timedelta(minutes=1))
    await handled_at(pool, [recent_key], NOW - RETENTION + timedelta(minutes=1))

    pruned = await prune_all(pool, inbox.prune, NOW - RETENTION, batch_size=2)

    assert pruned == 5
    assert await claimed_keys(pool) == {"ReceiveStock:r-1:S", "ExpectReplenishment:po-1:S", recent_key}
    # A receipt sent again after the retention still counts once.
    assert await claim(pool, inventory_key, [message("inventory.commands", receipt.body)]) == []


async def test_an_order_placed_again_long_after_keeps_its_inbox_key(pools):
    pool = await pools("order")
    placed = message("orders.commands", PlaceOrder(**place_order("ord-kept").data))
    await claim(pool, order_key, [placed])
    await handled_at(pool, ["PlaceOrder:ord-kept"], NOW - 10 * RETENTION)

    assert await prune_all(pool, inbox.prune, NOW - RETENTION) == 0
    assert await claimed_keys(pool) == {"PlaceOrder:ord-kept"}


async def queue(conn, order_id: str, channel: str = "email") -> uuid.UUID:
    notification_id = uuid.uuid4()
    await conn.execute("INSERT INTO notification_outbox (notification_id, order_id, kind, subject, body, "
                       "causation_id, channel) VALUES ($1, $2, 'order_confirmed', 's', 'b', 'c', $3)",
                       notification_id, order_id, channel)
    return notification_id


async def test_notifications_sent_before_the_retention_are_pruned_and_pending_or_refused_ones_kept(pools):
    pool = await pools("notification")
    async with pool.acquire() as conn:
        sent_long_ago = [await queue(conn, f"o-{i}") for i in range(3)]
        sent_lately, pending, refused = await queue(conn, "o-late"), await queue(conn, "o-wait"), await queue(conn, "o-bad")
        await conn.execute("UPDATE notification_outbox SET sent_at = $2 WHERE notification_id = ANY($1::uuid[])",
                           sent_long_ago, NOW - RETENTION - timedelta(hours=1))
        await conn.execute("UPDATE notification_outbox SET sent_at = $2 WHERE notification_id = $1",
                           sent_lately, NOW - timedelta(hours=1))
        await conn.execute("UPDATE notification_outbox SET failed_reason = '550 no such user', "
                           "created_at = $2 WHERE notification_id = $1", refused, NOW - 2 * RETENTION)

    assert await prune_all(pool, outbox.prune_sent, NOW - RETENTION, batch_size=2) == 3

    left = {r["notification_id"] for r in await pool.fetch("SELECT notification_id FROM notification_outbox")}
    assert left == {sent_lately, pending, refused}


async def test_each_service_prunes_its_inbox_periodically_and_never_its_event_store(apache_kafka, pools):
    async with order_service(apache_kafka, pools, inbox_retention_hours=1, prune_interval_s=0.2) as orders:
        first = await orders.place("prune-1")
        await orders.handled(first)
        await orders.pool.execute("INSERT INTO events (stream_id, version, event_id, type, data, recorded_at) "
                                  "VALUES ('s', 1, $1, 'T', '{}', $2)", uuid.uuid4(), NOW - 100 * RETENTION)
        await handled_at(orders.pool, [first], NOW - timedelta(hours=2))
        later = await orders.place("prune-2")
        await orders.handled(later)

        async def pruned():
            assert await claimed_keys(orders.pool) == {later}
        await eventually(pruned)
        assert await orders.pool.fetchval("SELECT count(*) FROM events") == 1
