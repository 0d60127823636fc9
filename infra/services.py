"""Starts the three services as processes, keeps them running, and stops them; used by `make run` and the
end-to-end tests."""

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


def start_services(env: dict[str, str], log_dir: Path | None = None) -> dict[str, subprocess.Popen]:
    return {name: start_service(name, env, log_dir) for name in SERVICES}


def start_service(name: str, env: dict[str, str], log_dir: Path | None = None) -> subprocess.Popen:
    out = open(log_dir / f"{name}.log", "ab") if log_dir else None
    return subprocess.Popen([sys.executable, "-m", f"services.{name}.app"], env=own_environment(name, os.environ | env),
                            stdout=out, stderr=subprocess.STDOUT if out else None, start_new_session=True)


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
        port = env.get(f"{name.upper()}_HTTP_PORT", HTTP_PORTS[name])
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
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
