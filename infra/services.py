"""Starts the three services as processes, one or several instances of each, keeps them running, and stops
them; used by `make run` and the end-to-end tests."""

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from services.runtime.settings import HTTP_PORTS

SERVICES = ("order", "inventory", "notification")
# The n-th instance of a service answers HTTP this far above the first one's port (8002, 8102, 8202).
INSTANCE_PORT_STEP = 100


def instances(count: int) -> list[str]:
    """The instance names of `count` instances per service: "order", "order-2", ..., "inventory", ..."""
    return [name if n == 1 else f"{name}-{n}" for name in SERVICES for n in range(1, count + 1)]


def http_port(instance: str, env: dict[str, str]) -> int:
    """Where an instance answers HTTP: its service's port (`ORDER_HTTP_PORT` in `env` or the environment, else
    the default), plus INSTANCE_PORT_STEP for each instance before it."""
    service, _, n = instance.partition("-")
    first = int((os.environ | env).get(f"{service.upper()}_HTTP_PORT", HTTP_PORTS[service]))
    return first + INSTANCE_PORT_STEP * (int(n or 1) - 1)


def start_services(env: dict[str, str], log_dir: Path | None = None, count: int = 1) -> dict[str, subprocess.Popen]:
    """`count` instances of each service; those of one service share its consumer group and database schema."""
    return {instance: start_service(instance, env, log_dir) for instance in instances(count)}


def start_service(instance: str, env: dict[str, str], log_dir: Path | None = None) -> subprocess.Popen:
    service = instance.partition("-")[0]
    out = open(log_dir / f"{instance}.log", "ab") if log_dir else None
    port = {f"{service.upper()}_HTTP_PORT": str(http_port(instance, env))}
    return subprocess.Popen([sys.executable, "-m", f"services.{service}.app"],
                            env=own_environment(service, os.environ | env | port), stdout=out, stderr=subprocess.STDOUT if out else None, start_new_session=True)


def own_environment(name: str, env: dict[str, str]) -> dict[str, str]:
    """The environment without the admin's database URL and the other services' logins: a service is given
    its own credentials only."""
    others = {"DATABASE_URL"} | {f"{other.upper()}_DATABASE_URL" for other in SERVICES if other != name}
    return {key: value for key, value in env.items() if key not in others}


def supervise(processes: dict[str, subprocess.Popen], start: Callable[[str], subprocess.Popen],
              until: Callable[[], bool] = lambda: False, first_backoff_s: float = 1.0) -> None:
    """Keep the services running: one that exits is started again (`start(name)`, into `processes`) after a
    backoff that doubles while it keeps exiting, up to 30 s, and starts over once it ran a minute; the
    others keep running. Each exit and restart is printed."""
    started = {name: time.monotonic() for name in processes}
    failures = dict.fromkeys(processes, 0)
    due: dict[str, float] = {}  # service -> when it starts again
    while not until():
        for name, process in processes.items():
            if name in due:
                if time.monotonic() >= due[name]:
                    del due[name]
                    processes[name], started[name] = start(name), time.monotonic()
                    print(f"{name} restarted", flush=True)
                continue
            if process.poll() is not None:
                failures[name] = 1 if time.monotonic() - started[name] > 60 else failures[name] + 1
                wait = min(first_backoff_s * 2 ** (failures[name] - 1), 30)
                due[name] = time.monotonic() + wait
                print(f"{name} exited with {process.returncode}; restarting in {wait:.1f} s", flush=True)
        time.sleep(0.2)


def wait_healthy(env: dict[str, str], processes: dict[str, subprocess.Popen], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    for name, process in processes.items():
        port = http_port(name, env)
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the {name} service exited with {process.returncode}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"the {name} service was not healthy within {timeout:.0f} s")
            time.sleep(0.2)


def stop_services(processes: dict[str, subprocess.Popen]) -> None:
    for process in processes.values():
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    for process in processes.values():
        stopped(process)


def stopped(process: subprocess.Popen, timeout: float = 20) -> int:
    """Wait for a process told to stop; killed when it takes longer than `timeout`. Returns its exit code."""
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        return process.wait()
