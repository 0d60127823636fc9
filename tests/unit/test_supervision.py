"""`make run` supervises: a service that exits is started again after a backoff, the others keep running."""

import subprocess
import sys
import time

from infra.services import own_environment, supervise


def process(code: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code])


def test_a_service_that_exits_is_restarted_with_backoff_and_the_others_keep_running(capsys):
    steady = process("import time; time.sleep(30)")
    processes = {"order": process("raise SystemExit(3)"), "inventory": steady}
    starts = []

    def start(name: str) -> subprocess.Popen:
        starts.append((name, time.monotonic()))
        return process("raise SystemExit(3)")  # it keeps failing

    deadline = time.monotonic() + 2.0
    try:
        supervise(processes, start, until=lambda: time.monotonic() > deadline, first_backoff_s=0.2)
        assert processes["inventory"] is steady and steady.poll() is None  # never touched, still running
    finally:
        for p in processes.values():
            p.kill()
    out = capsys.readouterr().out
    assert "order exited with 3; restarting in 0.2 s" in out and "order restarted" in out
    assert "restarting in 0.4 s" in out  # it exited again: the wait doubles
    assert [name for name, _ in starts] == ["order"] * len(starts) and 2 <= len(starts) <= 4


def test_a_service_process_is_given_its_own_database_login_and_no_other():
    env = {"DATABASE_URL": "admin", "ORDER_DATABASE_URL": "order", "INVENTORY_DATABASE_URL": "inventory",
           "NOTIFICATION_DATABASE_URL": "notification", "SMTP_URL": "smtp"}
    assert own_environment("inventory", env) == {"INVENTORY_DATABASE_URL": "inventory", "SMTP_URL": "smtp"}
