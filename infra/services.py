"""Starts the three services as processes and stops them; used by `make run` and the end-to-end tests."""

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from services.runtime.settings import HTTP_PORTS

SERVICES = ("order", "inventory", "notification")


def start_services(env: dict[str, str], log_dir: Path | None = None) -> dict[str, subprocess.Popen]:
    processes = {}
    for name in SERVICES:
        out = open(log_dir / f"{name}.log", "ab") if log_dir else None
        processes[name] = subprocess.Popen(
            [sys.executable, "-m", f"services.{name}.app"], env=os.environ | env, stdout=out,
            stderr=subprocess.STDOUT if out else None, start_new_session=True,
        )
    return processes


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
