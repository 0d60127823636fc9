"""The event store: streams of events with optimistic concurrency, and the snapshots that let a batch
load every aggregate it touches in one round trip."""

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Generic, NamedTuple, TypeVar

import asyncpg
import structlog
from pydantic import BaseModel

from contracts.envelope import Envelope
from contracts.events import Event

State = TypeVar("State", bound=BaseModel)
log = structlog.get_logger()

# Every insert into events takes this lock (per schema) until commit, before its rows are given positions (a
# trigger, runtime migration 004), so positions become visible in commit order and the relay, reading past its
# cursor, can never skip a row that commits late. A rebuild takes it to hold appends off.
LOCK_APPENDS = "SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.events'))"
COLUMNS = ("stream_id", "version", "event_id", "type", "data", "correlation_id", "causation_id", "traceparent")
LOCK_SNAPSHOTS = """
SELECT stream_id, version, state FROM snapshots WHERE stream_id = ANY($1::text[]) ORDER BY stream_id FOR UPDATE
"""
SAVE_SNAPSHOTS = """
INSERT INTO snapshots (stream_id, version, state)
SELECT * FROM unnest($1::text[], $2::int[], $3::jsonb[])
ON CONFLICT (stream_id) DO UPDATE SET version = EXCLUDED.version, state = EXCLUDED.state
"""


class ConcurrencyError(Exception):
    """Another writer appended to one of the streams first; the batch is retried."""


@dataclass
class Stream(Generic[State]):
    state: State | None
    version: int
    pending: list[tuple[Event, Envelope]] = field(default_factory=list)


class Streams(Generic[State]):
    """The aggregates one batch works on: load them locked, record events, save in one go."""

    def __init__(self, conn: asyncpg.Connection, state_type: type[State]) -> None:
        self._conn = conn
        self._state_type = state_type
        self._streams: dict[str, Stream[State]] = {}

    async def load(self, stream_ids: Iterable[str]) -> None:
        wanted = sorted(set(stream_ids) - self._streams.keys())  # sorted: a fixed lock order, no deadlocks
        rows = await self._conn.fetch(LOCK_SNAPSHOTS, wanted)
        for row in rows:
            self._streams[row["stream_id"]] = Stream(self._state_type.model_validate_json(row["state"]), row["version"])
        for stream_id in wanted:
            self._streams.setdefault(stream_id, Stream(None, 0))

    def get(self, stream_id: str) -> State | None:
        return self._streams[stream_id].state

    def record(self, stream_id: str, state: State, events: list[Event], cause: Envelope) -> None:
        """`state` is the aggregate after `events`, which `cause` (a command or event) brought about; they are
        stored with its correlation, and with its traceparent (the span that handled it)."""
        stream = self._streams[stream_id]
        stream.state = state
        stream.pending.extend((event, cause) for event in events)
        if events:
            log.debug("events recorded", stream_id=stream_id, order_id=getattr(events[0], "order_id", None),
                     cause=cause.type, events=[type(e).__name__ for e in events],
                     correlation_id=cause.correlationid or cause.id)

    async def save(self) -> dict[str, State]:
        """Append every recorded event and the new snapshots, one statement each; returns the changed
        aggregates, for the projections."""
        rows: list[NewEvent] = []
        snapshots: tuple[list, ...] = ([], [], [])
        changed = {}
        for stream_id, stream in self._streams.items():
            if not stream.pending:
                continue
            for event, cause in stream.pending:
                stream.version += 1
                rows.append(NewEvent(stream_id, stream.version, event, cause.correlationid or cause.id, cause.id,
                                     cause.traceparent))
            for column, value in zip(snapshots, (stream_id, stream.version, stream.state.model_dump_json()), strict=True):
                column.append(value)
            stream.pending.clear()
            changed[stream_id] = stream.state
        if not changed:
            return {}
        await append(self._conn, rows)
        await self._conn.execute(SAVE_SNAPSHOTS, *snapshots)
        return changed


class NewEvent(NamedTuple):  # a tuple: built several times faster than a frozen dataclass, once per event
    stream_id: str
    version: int
    event: Event
    correlation_id: str
    causation_id: str
    traceparent: str | None = None  # of the span that handled the cause, for the relay to send on


async def append(conn: asyncpg.Connection, events: list[NewEvent]) -> None:
    """Append events in one binary COPY, in the caller's transaction; ConcurrencyError if a stream version is
    taken (the unique key on (stream_id, version) checks the whole batch at once)."""
    if not events:
        return
    # The model's serializer called directly: model_dump_json() is the same call behind a layer of options.
    records = [
        (e.stream_id, e.version, event_id, type(e.event).__name__,
         e.event.__pydantic_serializer__.to_json(e.event).decode(), e.correlation_id, e.causation_id, e.traceparent)
        for e, event_id in zip(events, new_event_ids(len(events)))
    ]
    try:  # the insert waits its turn (LOCK_APPENDS) before its rows get positions
        await conn.copy_records_to_table("events", records=records, columns=COLUMNS)
    except asyncpg.UniqueViolationError as error:
        raise ConcurrencyError(str(error)) from error


async def lock_appends(conn: asyncpg.Connection) -> None:
    """Hold off appends to this schema until the caller's transaction ends (a rebuild's consistent view)."""
    await conn.execute(LOCK_APPENDS)


_VERSION_7 = bytes(b & 0x0F | 0x70 for b in range(256))
_RFC_4122_VARIANT = bytes(b & 0x3F | 0x80 for b in range(256))


def new_event_ids(count: int) -> list[str]:
    """`count` time-ordered (version 7) UUIDs in hex: the milliseconds since the epoch, then randomness from one
    read of the OS. Ordered ids go in at the right edge of the unique index on `event_id`; random ones touched
    a page anywhere in it, and appends slowed as the store grew (`benchmarks/eventstore.py --fill 4000000`:
    81k events/s falling to 59k with random ids, 82-89k throughout with ordered ones). Made in bulk: uuid4()
    reads the OS once per id and builds an object."""
    raw = bytearray(os.urandom(16 * count))
    for i, byte in enumerate((time.time_ns() // 1_000_000).to_bytes(6, "big")):
        raw[i::16] = bytes((byte,)) * count
    raw[6::16] = raw[6::16].translate(_VERSION_7)
    raw[8::16] = raw[8::16].translate(_RFC_4122_VARIANT)
    digits = raw.hex()
    return [digits[i:i + 32] for i in range(0, 32 * count, 32)]


async def replay(
    conn: asyncpg.Connection,
    parse: Callable[[str, str], Event],
    evolve: Callable[[State | None, Event], State],
    initial: Callable[[str], State | None],
    progress: Callable[[int, int], None] = lambda done, total: None,
) -> dict[str, State]:
    """Fold every stream from its first event: the state a rebuild starts from. `progress(done, total)` is
    told every 1,000 events and at the end."""
    states: dict[str, State] = {}
    async with conn.transaction():
        total = await conn.fetchval("SELECT count(*) FROM events")
        done = 0
        async for row in conn.cursor("SELECT stream_id, type, data FROM events ORDER BY position"):
            sid = row["stream_id"]
            state = states[sid] if sid in states else initial(sid)
            states[sid] = evolve(state, parse(row["type"], row["data"]))
            done += 1
            if done % 1000 == 0:
                progress(done, total)
        progress(done, total)
    return states
