"""The inbox: claims message keys in the same transaction as the state change, so that a message that
was handled is never handled twice, whatever Kafka redelivers."""

from collections.abc import Callable, Sequence
from typing import TypeVar

import asyncpg

M = TypeVar("M")

CLAIM = """
INSERT INTO inbox (message_key) SELECT unnest($1::text[])
ON CONFLICT DO NOTHING RETURNING message_key
"""


async def claim(conn: asyncpg.Connection, messages: Sequence[M], key: Callable[[M], str]) -> list[M]:
    """The messages not handled before, in their order; a key repeated within the batch counts once."""
    first: dict[str, M] = {}
    for message in messages:
        first.setdefault(key(message), message)
    if not first:
        return []
    # Sorted: two overlapping redeliveries take the key locks in one order and cannot deadlock.
    claimed = {row["message_key"] for row in await conn.fetch(CLAIM, sorted(first))}
    return [message for k, message in first.items() if k in claimed]
