"""The inbox: claims message keys in the same transaction as the state change, so that a message that
was handled is never handled twice, whatever Kafka redelivers; and forgets message ids once Kafka cannot
redeliver them."""

from collections.abc import Callable, Sequence
from datetime import datetime

import asyncpg

from services.runtime.messages import Message

CLAIM = """
INSERT INTO inbox (message_key, kept) SELECT * FROM unnest($1::text[], $2::bool[])
ON CONFLICT DO NOTHING RETURNING message_key
"""
# A bounded batch per statement, each its own short transaction: handlers claiming keys never wait long.
PRUNE = """
DELETE FROM inbox WHERE message_key = ANY(ARRAY(
    SELECT message_key FROM inbox WHERE NOT kept AND handled_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED))
"""


async def claim(conn: asyncpg.Connection, messages: Sequence[Message], key: Callable[[Message], str]) -> list[Message]:
    """The messages not handled before, in their order; a key repeated within the batch counts once. A key
    other than the message id (the sender's order, receipt... id, which a sender may repeat at any time)
    is kept for good; a message id only until it is pruned (see `PRUNE`)."""
    first: dict[str, Message] = {}
    for message in messages:
        first.setdefault(key(message), message)
    if not first:
        return []
    # Sorted: two overlapping redeliveries take the key locks in one order and cannot deadlock.
    keys = sorted(first)
    kept = [k != first[k].envelope.id for k in keys]
    claimed = {row["message_key"] for row in await conn.fetch(CLAIM, keys, kept)}
    return [message for k, message in first.items() if k in claimed]


async def prune(pool: asyncpg.Pool, older_than: datetime, batch_size: int) -> int:
    """Delete up to `batch_size` message ids handled before `older_than`; returns how many."""
    return int((await pool.execute(PRUNE, older_than, batch_size)).split()[-1])
