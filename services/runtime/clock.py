"""The one place the services read the business date and time from: the days on which stock is allocated,
ETAs promised and reviewed, goodwill offered and planning done, and the periodic loops that do them.

It is the wall clock, unless ORDERFLOW_SIMULATED_CLOCK names a file: then the time is the ISO datetime in
that file, which only whoever runs the simulation moves forward (`make simulate ARGS="--slice"`, a test),
and the loops sleep in simulated time. The variable is not a setting of the services (not in their
Settings, the compose file or `make run`); a service started with it logs a warning at start and on every
change of the simulated day, and one whose file is missing or does not hold a datetime does not start (one
whose file is spoiled later keeps the last time read until it holds one again).
Timers that measure real elapsed time (retries, the ETA mail window, health, retention) stay on the wall
clock."""

import asyncio
import os
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import structlog

SIMULATED_CLOCK = "ORDERFLOW_SIMULATED_CLOCK"
POLL_S = 0.05  # how often a loop sleeping in simulated time looks whether its time has come

log = structlog.get_logger()


class WallClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class SimulatedClock:
    """The time written in a file; time stands still until the file says otherwise. Loops wake on a grid of
    their period from the time the service started, however late a loop goes back to sleep: a daily job runs
    once on each simulated day, at the same time of day. The day is the UTC one, as on the wall clock."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._day: date | None = None
        self._last = self._read()  # a missing or unreadable file stops the service here, at start
        self._spoiled = False
        self.started = self.now()
        log.warning("simulated clock: the time is read from a file, not the wall clock", file=str(path),
                    now=self.started.isoformat())

    def _read(self) -> datetime:
        now = datetime.fromisoformat(self.path.read_text().strip())
        if now.tzinfo is None:
            raise ValueError(f"{self.path}: the simulated time must name its time zone: {now.isoformat()}")
        return now.astimezone(UTC)

    def now(self) -> datetime:
        # Once started, a file spoiled for a moment (written by hand, removed) stops the time rather than
        # failing every handler and loop that asks for it: they go on when it holds a time again.
        try:
            self._last, spoiled = self._read(), False
        except (OSError, ValueError) as error:
            spoiled = True
            if not self._spoiled:
                log.error("simulated clock: the file holds no time, the time stands still", file=str(self.path),
                          error=repr(error), now=self._last.isoformat())
        self._spoiled = spoiled
        if self._last.date() != self._day:
            self._day = self._last.date()
            log.warning("simulated clock: a new day", today=self._day.isoformat())
        return self._last

    async def sleep(self, seconds: float) -> None:
        periods = (self.now() - self.started) // timedelta(seconds=seconds)
        until = self.started + (periods + 1) * timedelta(seconds=seconds)
        while self.now() < until:
            await asyncio.sleep(POLL_S)


def set_simulated_time(path: Path, when: datetime) -> None:
    """Move a simulated clock (atomically: a reader never sees half a datetime)."""
    written = path.with_name(path.name + ".new")
    written.write_text(when.isoformat())
    written.replace(path)


def _from_environment() -> WallClock | SimulatedClock:
    file = os.environ.get(SIMULATED_CLOCK)
    return SimulatedClock(Path(file)) if file else WallClock()


CLOCK = _from_environment()


def now() -> datetime:
    return CLOCK.now()


def today() -> date:
    return CLOCK.now().date()


async def sleep(seconds: float) -> None:
    """Sleep `seconds` of the clock's time: real seconds, or simulated ones that pass as the file moves."""
    await CLOCK.sleep(seconds)
