"""The outbox relay: publishes the service's appended events to its Kafka topic in store order, then
records how far it got. Woken right after each commit in this process and by NOTIFY from others, with a
1-second catch-up for anything missed. One relay per service publishes at a time (an advisory lock).

A crash between publishing and recording the cursor publishes some events again, with the same
CloudEvents id: consumers de-duplicate on it. That is also why the cursor is written without waiting for
the WAL flush (synchronous_commit off on the relay's own connection, which writes nothing else): a crash
of PostgreSQL can lose its last advances (less than a second's), which only means publishing those events
again, and each pass of the relay saves a disk flush it would otherwise wait for before reading on."""

import asyncio
from collections.abc import Awaitable, Callable

import asyncpg
import structlog

from contracts.envelope import STRUCTURED_CONTENT_TYPE, TYPE_HEADER, structured_json
from services.runtime import metrics
from services.runtime.db import schema, session_settings
from services.runtime.loops import Wakeup, drain, run_forever

log = structlog.get_logger()

PENDING = """
SELECT position, event_id, stream_id, type, data::text AS data, data->>$2 AS key,
       correlation_id, causation_id, traceparent, recorded_at
FROM events WHERE position > (SELECT position FROM relay_cursor)
ORDER BY position LIMIT $1
"""
ADVANCE = "UPDATE relay_cursor SET position = $1"
# Exact, and cheap: an index-only range scan of the primary key past the cursor (about 50 ms per million
# events waiting). max(position) less the cursor would be cheaper still, but counts the positions that
# rolled-back appends left unused.
BACKLOG = "SELECT count(*) FROM events WHERE position > (SELECT position FROM relay_cursor)"


class OutboxRelay:
    def __init__(self, database_url: str, service: str, topic: str, key_field: str,
                 publish: Callable[..., Awaitable], batch_size: int = 1000):
        self._database_url = database_url
        self._service = service
        self._topic = topic
        self._key_field = key_field
        self._publish = publish
        self._batch_size = batch_size
        self._wakeup = Wakeup()
        metrics.EVENTS_PUBLISHED.labels(service)  # 0 from the start: the first events count as an increase

    def wake(self) -> None:
        self._wakeup.set()

    async def run(self) -> None:
        await run_forever(self._run_as_leader, "outbox relay")

    async def _run_as_leader(self) -> None:
        conn = await asyncpg.connect(self._database_url,
                                     server_settings=session_settings(self._service) | {"synchronous_commit": "off"})
        try:
            while not await conn.fetchval("SELECT pg_try_advisory_lock(hashtext(current_schema() || '.relay'))"):
                await asyncio.sleep(1)
            await conn.add_listener(f"{schema(self._service)}_events", lambda *_: self.wake())
            while True:
                await drain(lambda: self._publish_pending(conn), self._batch_size)
                await self._wakeup.wait()
        finally:
            await conn.close()

    async def _publish_pending(self, conn: asyncpg.Connection) -> int:
        rows = await conn.fetch(PENDING, self._batch_size, self._key_field)
        if not rows:
            return 0
        # Structured mode of the CloudEvents Kafka binding: its content-type (FastStream's own would be empty for
        # bytes), no `ce_*` header, and FastStream's correlation_id the envelope's.
        pending = [
            await self._publish(self._envelope(row), self._topic, key=row["key"].encode(), no_confirm=True,
                                headers=_headers(row), correlation_id=_correlation(row))
            for row in rows
        ]
        results = await asyncio.gather(*pending, return_exceptions=True)
        # The cursor moves over the acknowledged prefix only: what follows a failed send is sent again, in
        # order, rather than leaving a gap to be filled out of order later.
        acknowledged = next((i for i, r in enumerate(results) if isinstance(r, BaseException)), len(rows))
        if acknowledged:
            await conn.execute(ADVANCE, rows[acknowledged - 1]["position"])
            metrics.EVENTS_PUBLISHED.labels(self._service).inc(acknowledged)
            metrics.RELAY_POSITION.labels(self._service).set(rows[acknowledged - 1]["position"])
        if acknowledged < len(rows):
            raise results[acknowledged]
        return len(rows)

    def _envelope(self, row: asyncpg.Record) -> bytes:
        return structured_json(id=str(row["event_id"]), source=f"orderflow/{self._service}", type=row["type"],
                               time=row["recorded_at"], subject=row["stream_id"], correlationid=_correlation(row),
                               causationid=row["causation_id"], traceparent=row["traceparent"],
                               data=row["data"].encode())


def _headers(row: asyncpg.Record) -> dict[str, str]:
    """Ours beside the binding's: the type, and the W3C `traceparent` (also in the envelope, as the CloudEvents
    tracing extension) for whatever reads trace context from Kafka headers."""
    headers = {"content-type": STRUCTURED_CONTENT_TYPE, TYPE_HEADER: row["type"]}
    if row["traceparent"]:
        headers["traceparent"] = row["traceparent"]
    return headers


async def unpublished(pool: asyncpg.Pool) -> int:
    """How many stored events the relay has not published yet."""
    return await pool.fetchval(BACKLOG)


def _correlation(row: asyncpg.Record) -> str:
    """Every event carries a correlation: the one it was stored with (always, as the services append), else
    its own id, which starts one."""
    return row["correlation_id"] or str(row["event_id"])
