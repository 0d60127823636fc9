"""Runs benchmarks.throughput against a running `make run` and prints the CPU seconds each service process
(started from this directory) spent per 10,000 orders, read from /proc before and after: a figure that
other work on the machine distorts less than wall-clock throughput; and the batches each handled, with their
mean time (from /metrics).

    python -m benchmarks.service_cpu --orders 10000              # the throughput benchmark's arguments
"""

import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

from services.runtime.settings import HTTP_PORTS

SERVICES = ("order", "inventory", "notification")


def service_pids() -> dict[str, int]:
    """The services `make run` started from this directory (not another checkout's)."""
    here = Path.cwd().resolve()
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
            cwd = (entry / "cwd").resolve()
        except OSError:  # gone meanwhile, or not ours to read
            continue
        for name in SERVICES:
            if f"services.{name}.app".encode() in args and cwd == here:
                found[name] = int(entry.name)
    return found


def cpu_seconds(pid: int) -> float:
    # The fields after the command name, which is in parentheses and may hold spaces: utime and stime are
    # the 14th and 15th of the whole line.
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def batches(service: str) -> tuple[float, float]:
    """How many batches the service handled, and the seconds they took, as its /metrics says (0, 0 when it
    does not answer)."""
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{HTTP_PORTS[service]}/metrics", timeout=2).read().decode()
    except OSError:
        return 0, 0
    count, total = (float(re.search(rf"^orderflow_batch_seconds_{what}\{{[^}}]*\}} (\S+)$", text, re.M)[1])
                    for what in ("count", "sum"))
    return count, total


def main(args: list[str]) -> None:
    pids = service_pids()
    if not pids:
        raise SystemExit("no service started from this directory is running: start `make run` first")
    orders = int(args[args.index("--orders") + 1]) if "--orders" in args else 5000
    before = {name: (cpu_seconds(pid), *batches(name)) for name, pid in pids.items()}
    subprocess.run([sys.executable, "-m", "benchmarks.throughput", *args], check=True)
    after = {name: (cpu_seconds(pid), *batches(name)) for name, pid in pids.items()}
    print(f"load average      {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    for name in pids:
        used, handled, took = (a - b for a, b in zip(after[name], before[name], strict=True))
        print(f"CPU {name:<13} {used:.2f} s ({used * 10_000 / orders:.2f} s per 10,000 orders); "
              f"{handled:.0f} batches, {1000 * took / max(handled, 1):.1f} ms each on average")


if __name__ == "__main__":
    main(sys.argv[1:])
