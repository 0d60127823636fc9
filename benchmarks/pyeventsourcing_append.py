"""pyeventsourcing's side of benchmarks/eventstore.py. Run by the Python of a throwaway environment that has
the library (never by the project's): appends AGGREGATES new aggregates, each with EVENTS_PER_AGGREGATE events,
PER_SAVE aggregates per `Application.save`, into PostgreSQL (POSTGRES_* in the environment, which the library
reads too), and prints one JSON line: {"events": n, "seconds": s, "python_cpu_seconds": c, "backend_cpu_seconds": b,
"synchronous_commit": v}, b the CPU of its PostgreSQL server processes (read from /proc: a local server only)."""

import json
import os
import time

import psycopg

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event


class Line(Aggregate):
    @event("Placed")
    def __init__(self, order_id: str, sku: str, quantity: int) -> None:
        self.order_id, self.sku, self.quantity, self.reserved = order_id, sku, quantity, 0

    @event("Reserved")
    def reserve(self, quantity: int) -> None:
        self.reserved += quantity


def backend_cpu(conn: psycopg.Connection) -> dict[int, float]:
    """CPU seconds so far of each server process serving this database but `conn`: the library's connections."""
    pids = conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                        "AND pid <> pg_backend_pid()").fetchall()
    cpu = {}
    for (pid,) in pids:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        cpu[pid] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return cpu


def main() -> None:
    aggregates, per_aggregate, per_save = (int(os.environ[k]) for k in ("AGGREGATES", "EVENTS_PER_AGGREGATE", "PER_SAVE"))
    conn = psycopg.connect(dbname=os.environ["POSTGRES_DBNAME"], host=os.environ["POSTGRES_HOST"],
                           port=os.environ["POSTGRES_PORT"], user=os.environ["POSTGRES_USER"],
                           password=os.environ["POSTGRES_PASSWORD"], autocommit=True)
    conn.execute(f"CREATE SCHEMA {os.environ['POSTGRES_SCHEMA']}")
    synchronous_commit = conn.execute("SHOW synchronous_commit").fetchone()[0]
    app = Application(env={"PERSISTENCE_MODULE": "eventsourcing.postgres", "CREATE_TABLE": "y"})
    events = 0
    started, cpu, backends = time.perf_counter(), time.process_time(), backend_cpu(conn)
    for first in range(0, aggregates, per_save):
        batch = []
        for i in range(first, min(first + per_save, aggregates)):
            line = Line(order_id=f"o-{i}", sku=f"sku-{i % 50}", quantity=3)
            for _ in range(per_aggregate - 1):
                line.reserve(1)
            batch.append(line)
        app.save(*batch)
        events += len(batch) * per_aggregate
    seconds, python_cpu = time.perf_counter() - started, time.process_time() - cpu
    backends_cpu = sum(now - backends.get(pid, 0.0) for pid, now in backend_cpu(conn).items())
    conn.close()
    print(json.dumps({"events": events, "seconds": seconds, "python_cpu_seconds": python_cpu,
                      "backend_cpu_seconds": backends_cpu, "synchronous_commit": synchronous_commit}))


if __name__ == "__main__":
    main()
