"""Runs a coroutine to completion from synchronous code, even where an event loop already runs in this
thread (a sync fixture set up from an async one, say): on a thread of its own."""

import asyncio
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


def run(coro: Coroutine[object, object, T]) -> T:
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()
