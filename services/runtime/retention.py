"""Retention: rows that only guard against a message coming again (inbox message ids, sent notifications)
are deleted once it cannot come again, the topics' retention having passed; in bounded batches, each its
own short transaction. The event store is never pruned."""

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import asyncpg
import structlog

from services.runtime.loops import drain, run_forever

log = structlog.get_logger()

# Deletes up to a batch of rows older than a time; returns how many it deleted.
Prune = Callable[[asyncpg.Pool, datetime, int], Awaitable[int]]
BATCH_SIZE = 1000


async def prune_all(pool: asyncpg.Pool, prune: Prune, older_than: datetime, batch_size: int = BATCH_SIZE) -> int:
    """Run `prune` batch after batch until less than a batch is left; returns how many rows went."""
    pruned = 0

    async def step() -> int:
        nonlocal pruned
        deleted = await prune(pool, older_than, batch_size)
        pruned += deleted
        return deleted

    await drain(step, batch_size)
    return pruned


async def prune_forever(pool: asyncpg.Pool, prunes: dict[str, Prune], retention: timedelta, every_s: float) -> None:
    """Every `every_s`: prune each table (by name, for the log) of what is older than `retention`."""

    async def work() -> None:
        while True:
            for what, prune in prunes.items():
                if pruned := await prune_all(pool, prune, datetime.now(UTC) - retention):
                    log.info("pruned", what=what, rows=pruned, older_than_hours=retention / timedelta(hours=1))
            await asyncio.sleep(every_s)

    await run_forever(work, "pruning")
