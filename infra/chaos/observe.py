"""What the invariant checker reads once the system is quiet: every record on the topics, each service's
event store, the projections (and what a rebuild from the events makes of them), and the mail sink."""

import asyncio
import json
from email import message_from_bytes, policy
from collections.abc import Sequence
from pathlib import Path

import asyncpg
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition

from contracts import topics
from infra.chaos.invariants import PUBLISHED_ON, Mail, Observed, Record
from services.runtime import db


async def partitions_of(bootstrap_servers: str, names: Sequence[str]) -> list[TopicPartition]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        return [TopicPartition(t["topic"], p["partition"]) for t in await admin.describe_topics(list(names))
                for p in t["partitions"]]
    finally:
        await admin.close()


async def read_topics(bootstrap_servers: str, names: Sequence[str]) -> dict[str, list[Record]]:
    """Every record on the topics, from the beginning to their ends as they are now."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, group_id=None, enable_auto_commit=False,
                                max_partition_fetch_bytes=4 << 20)
    partitions = await partitions_of(bootstrap_servers, names)
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        found: dict[str, list[Record]] = {t: [] for t in names}
        left = {tp for tp in partitions if ends[tp] > 0}
        while left:
            for tp, records in (await consumer.getmany(*left, timeout_ms=1000, max_records=10_000)).items():
                for r in records:
                    found[tp.topic].append(_parse(r.value))
                if await consumer.position(tp) >= ends[tp]:
                    left.discard(tp)
        return found
    finally:
        await consumer.stop()


def _parse(value: bytes) -> Record:
    try:
        envelope = json.loads(value)
        return Record(str(envelope["id"]), envelope["type"], envelope.get("data") or {})
    except (ValueError, KeyError, TypeError):
        return Record("", "(not an envelope)", {})


STORE = """
SELECT event_id::text AS id, type, data::text AS data, stream_id, causation_id
FROM {schema}.events ORDER BY position
"""


# Deliveries the dispatcher settled as in doubt (services/notification/outbox.py): never sent again.
IN_DOUBT = """
SELECT notification_id::text, channel FROM notification_service.notification_outbox
WHERE sent_at IS NULL AND sending_since IS NOT NULL AND failed_reason IS NOT NULL
"""


async def read_database(url: str) -> dict:
    """The event stores and the rows the checks compare, as plain values."""
    conn = await asyncpg.connect(url)
    try:
        stores = {}
        for service in PUBLISHED_ON:
            rows = await conn.fetch(STORE.format(schema=db.schema(service)))
            stores[service] = [Record(r["id"], r["type"], json.loads(r["data"]), r["stream_id"], r["causation_id"])
                               for r in rows]

        async def rows(sql: str) -> list[dict]:
            return [dict(r) for r in await conn.fetch(sql)]

        return dict(
            stores=stores,
            order_lines=await rows("SELECT * FROM order_service.order_lines"),
            skus=await rows("SELECT sku, on_hand, reserved, backordered FROM inventory_service.skus"),
            reservations=await rows("SELECT * FROM inventory_service.reservations"),
            backorders=await rows("SELECT * FROM inventory_service.backorders"),
            in_doubt={(r["notification_id"], r["channel"]) for r in await conn.fetch(IN_DOUBT)},
        )
    finally:
        await conn.close()


# What a rebuild rewrites, by service; `updated_at` is when a row was written, which a rebuild changes.
REBUILT_TABLES = {
    "order": {"orders": "SELECT * FROM orders", "order_lines": "SELECT * FROM order_lines"},
    "inventory": {table: f"SELECT * FROM {table}"
                  for table in ("skus", "backorders", "reservations", "replenishments", "availability")},
}
WRITTEN_AT = {"updated_at"}


class _Undo(Exception):
    """Rolls the rebuild back: it was only to compare."""


async def rebuild_and_compare(url: str) -> dict[str, dict[str, tuple[list, list]]]:
    """Run each service's own rebuild (`make rebuild`) in a transaction that is rolled back, and return the
    rows before and after it: live and rebuilt from the events, the live ones never changed."""
    from services.rebuild import REBUILDERS

    compared = {}
    for service, tables in REBUILT_TABLES.items():
        conn = await asyncpg.connect(url, server_settings=db.session_settings(service))
        try:
            async with conn.transaction():
                live = {t: await _rows(conn, sql) for t, sql in tables.items()}
                await REBUILDERS[service](conn, lambda done, total: None)
                compared[service] = {t: (live[t], await _rows(conn, sql)) for t, sql in tables.items()}
                raise _Undo
        except _Undo:
            pass
        finally:
            await conn.close()
    return compared


async def _rows(conn: asyncpg.Connection, sql: str) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in WRITTEN_AT} for r in await conn.fetch(sql)]


def read_mails(folder: Path) -> list[Mail]:
    mails = []
    for path in sorted(folder.glob("*.eml")):
        mail = message_from_bytes(path.read_bytes(), policy=policy.default)
        mails.append(Mail(str(mail["Message-ID"]).strip("<>").split("@")[0], str(mail["X-Orderflow-Order-Id"]),
                          str(mail["X-Orderflow-Kind"])))
    return mails


async def observe(bootstrap_servers: str, database_url: str, mail_folder: Path) -> Observed:
    on_topics = await read_topics(bootstrap_servers, [*topics.ALL, *map(topics.dead_letter, topics.ALL)])
    database = await read_database(database_url)
    rebuilt = await rebuild_and_compare(database_url)
    mails = await asyncio.to_thread(read_mails, mail_folder)
    return Observed(topics=on_topics, mails=mails, rebuilt=rebuilt, **database)
