"""What each process of a benchmark's own stack costs: CPU seconds (from /proc/<pid>/stat) over a window, and
peak resident memory (VmHWM from /proc/<pid>/status)."""

import asyncio
import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

TICKS_PER_S = os.sysconf("SC_CLK_TCK")
# The sessions serving the run's database: the services' pools, the relays, autovacuum workers on it.
BACKENDS = "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (which may hold spaces): [0] is field 3, state."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None


def cpu_seconds(pid: int, with_reaped_children: bool = True) -> float | None:
    """utime + stime of the process, and of its children it has waited for (cutime + cstime)."""
    fields = _stat(pid)
    if fields is None:
        return None
    ticks = int(fields[11]) + int(fields[12]) + (int(fields[13]) + int(fields[14]) if with_reaped_children else 0)
    return ticks / TICKS_PER_S


def group_cpu_seconds(pgid: int) -> float:
    """CPU of every live process in the process group (a service and the workers it started), with the
    children they reaped: a service is started in a session of its own, whose group it leads."""
    total = 0.0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) and int(fields[2]) == pgid:
            total += cpu_seconds(int(entry.name)) or 0.0
    return total


def peak_rss_mib(pid: int) -> float | None:
    """VmHWM: the most resident memory the process ever had."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return None


def _is_postgres(pid: int) -> bool | None:
    """None: no such process here (it exited since pg_stat_activity named it, or the server is elsewhere)."""
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip() in ("postgres", "postmaster")
    except OSError:
        return None


@dataclass
class Backends:
    """CPU of the PostgreSQL backends serving one database, sampled every `interval` s: pg_stat_activity names
    their pids, /proc gives their CPU. Only where the server runs on this machine (else not `readable`)."""

    admin_url: str
    interval: float = 1.0
    first: dict[int, float] = field(default_factory=dict)  # pid -> its CPU when the window began or it was born
    last: dict[int, float] = field(default_factory=dict)
    foreign: bool = False  # a pid named another process here: the server runs on another machine

    async def __aenter__(self) -> "Backends":
        self._conn = await asyncpg.connect(self.admin_url)
        await self._sample(at_start=True)
        self._task = asyncio.create_task(self._keep_sampling())
        return self

    async def __aexit__(self, *exc) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        await self._sample()
        await self._conn.close()

    async def _keep_sampling(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self._sample()

    async def _sample(self, at_start: bool = False) -> None:
        for record in await self._conn.fetch(BACKENDS):
            pid = record["pid"]
            if (ours := _is_postgres(pid)) is False:
                self.foreign = True
            if not ours or (cpu := cpu_seconds(pid, with_reaped_children=False)) is None:
                continue
            # A backend born during the window spent all its CPU in it.
            self.first.setdefault(pid, cpu if at_start else 0.0)
            self.last[pid] = cpu

    @property
    def readable(self) -> bool:
        return bool(self.last) and not self.foreign

    @property
    def cpu_seconds(self) -> float:
        return sum(self.last[pid] - self.first[pid] for pid in self.last)


class Window:
    """CPU seconds each named process group spent between `start()` and `stop()`, and this process's own."""

    def __init__(self, groups: dict[str, int]) -> None:
        self.groups = groups  # name -> pid of the group's leader

    def _now(self) -> dict[str, float]:
        return {name: group_cpu_seconds(pid) for name, pid in self.groups.items()} | {
            "load generator": cpu_seconds(os.getpid(), with_reaped_children=False) or 0.0}

    def start(self) -> None:
        self._before = self._now()

    def stop(self) -> dict[str, float]:
        after = self._now()
        return {name: after[name] - self._before[name] for name in after}


def table(cpu: dict[str, float], orders: int, peak_rss: dict[str, float | None], notes: dict[str, str]) -> str:
    """CPU seconds per 10,000 orders and peak RSS per process, with their shares of the total."""
    total = sum(cpu.values())
    lines = [f"{'process':<16}{'CPU s / 10k orders':>20}{'share':>8}{'peak RSS MiB':>14}  note"]
    for name, seconds in cpu.items():
        rss = peak_rss.get(name)
        lines.append(f"{name:<16}{seconds * 10_000 / orders:>20.1f}{seconds / total if total else 0:>8.0%}"
                     f"{'' if rss is None else f'{rss:,.0f}':>14}  {notes.get(name, '')}")
    lines.append(f"{'total':<16}{total * 10_000 / orders:>20.1f}")
    return "\n".join(lines)
