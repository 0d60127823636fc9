"""The shape of the background workers (outbox relay, notification dispatcher): drain what is pending in
batches, then sleep until woken right after a commit, or a second at most; restart with backoff on failure."""

import asyncio
from collections.abc import Awaitable, Callable

import structlog

log = structlog.get_logger()


class Wakeup:
    def __init__(self) -> None:
        self._event = asyncio.Event()

    def set(self) -> None:
        self._event.set()

    async def wait(self, timeout: float = 1.0) -> None:
        """Until woken, or `timeout` seconds: the catch-up for anything a wake-up missed."""
        try:
            await asyncio.wait_for(self._event.wait(), timeout)
        except TimeoutError:
            pass
        self._event.clear()


async def drain(step: Callable[[], Awaitable[int]], batch_size: int) -> None:
    """Run `step` (which handles up to `batch_size` items and returns how many) until less than a batch is left."""
    while await step() == batch_size:
        pass


async def run_forever(work: Callable[[], Awaitable[None]], what: str) -> None:
    """Run `work` for good: on failure, restart it, backing off while failures repeat; one that ran a while
    before failing restarts at once."""
    failures = 0
    while True:
        started = asyncio.get_running_loop().time()
        try:
            await work()
        except asyncio.CancelledError:
            raise
        except Exception as error:
            failures = 1 if asyncio.get_running_loop().time() - started > 30 else failures + 1
            backoff = min(0.25 * 2**failures, 30)
            log.warning(f"{what} failed, restarting", error=repr(error), retry_in_s=backoff)
            await asyncio.sleep(backoff)
