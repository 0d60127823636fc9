"""`make run`: the whole system on an embedded default until Ctrl-C. Uses KAFKA_BOOTSTRAP_SERVERS,
DATABASE_URL (and a service's own ORDER_DATABASE_URL, ...) and SMTP_URL when set (and the
KAFKA_SECURITY_PROTOCOL, KAFKA_SASL_* and KAFKA_SSL_* settings with KAFKA_BOOTSTRAP_SERVERS); otherwise starts a
local broker (or, with `--brokers 3`, a local Apache Kafka cluster), database and mail sink. `--instances N`
runs N instances of each service."""

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys

from infra import STATE, kafka, postgres
from infra.mailsink import MailSink
from infra.services import (
    SERVICES,
    http_port,
    instances,
    start_service,
    start_services,
    stop_services,
    supervise,
    wait_healthy,
)
from infra.topics import create_topics
from services.runtime import db
from services.runtime.settings import HTTP_PORTS, load_kafka


def _port_taken(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _check_ports_free(brokers: list[int], count: int) -> None:
    """A second `make run`, or another program on our ports, must fail plainly, not half-start."""
    ports = {f"{name} service HTTP": http_port(name, {}) for name in instances(count)}
    if not os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        ports |= {f"Kafka node {i} (its controller on the next port)": port for i, port in enumerate(brokers, 1)}
    if not os.environ.get("SMTP_URL"):
        ports["the local mail sink"] = 8025
    taken = [f"{what} needs 127.0.0.1:{port}" for what, port in ports.items() if _port_taken(port)]
    if taken:
        raise SystemExit("cannot start, ports in use (is orderflow already running?):\n  " + "\n  ".join(taken))


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="make run ARGS=...", description=__doc__)
    parser.add_argument("--brokers", type=int, default=1,
                        help="more than 1: a local Apache Kafka cluster (KRaft, each node broker and controller) on "
                             "9092, 9094, 9096, ..., topics replicated to up to three of them (needs Java 17+)")
    parser.add_argument("--instances", type=int, default=1,
                        help="instances of each service, in one consumer group each; the n-th answers HTTP on its "
                             "service's port + 100 * (n - 1)")
    return parser.parse_args()


def main() -> None:
    args = _arguments()
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # connection refusals while a broker starts
    # Ctrl-C and SIGTERM stop everything, even where the shell started us with SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    broker_ports = [9092 + 2 * i for i in range(args.brokers)]  # each node's controller on the port after it
    _check_ports_free(broker_ports, args.instances)
    with contextlib.ExitStack() as stack:
        env: dict[str, str] = {}
        if bootstrap := os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
            kafka_info = f"{bootstrap} (KAFKA_BOOTSTRAP_SERVERS)"
            security = load_kafka().client_security()
        else:
            if args.brokers > 1:
                if not kafka.java_17_or_newer():
                    raise SystemExit("--brokers runs Apache Kafka, which needs Java 17 or newer")
                print(f"starting a local Apache Kafka cluster of {args.brokers} nodes…", flush=True)
                broker = kafka.start_apache_kafka_cluster(STATE / "apache-kafka" / "cluster", broker_ports)
            else:
                print("starting a local Kafka broker…", flush=True)
                broker = kafka.start_local_broker(9092)
            stack.callback(broker.stop)
            bootstrap = broker.bootstrap_servers
            kafka_info = f"{bootstrap} ({broker.kind}, data in {STATE})"
            security = broker.client_security()
            env["KAFKA_SESSION_TIMEOUT_MS"] = "2000"
            if broker.kind == "Tansu":
                env["KAFKA_ENABLE_IDEMPOTENCE"] = "false"
                kafka_info += "; the command line needs KAFKA_ENABLE_IDEMPOTENCE=false"
        env["KAFKA_BOOTSTRAP_SERVERS"] = bootstrap

        admin_url, database_info = postgres.ensure_database()
        # A service given a URL of its own was set up by whoever gave it (services/migrate.py); the others
        # log in as the role the set-up below makes for them on the admin's database.
        derived = {name: db.local_url(admin_url, name) for name in SERVICES
                   if not os.environ.get(f"{name.upper()}_DATABASE_URL")}
        env |= {f"{name.upper()}_DATABASE_URL": url for name, url in derived.items()}

        if smtp_url := os.environ.get("SMTP_URL"):
            mail_info = f"{smtp_url} (SMTP_URL)"
        else:
            sink = MailSink(STATE / "mail").start()
            stack.callback(sink.stop)
            smtp_url = sink.url
            mail_info = f"{smtp_url}, each mail kept as a file in {sink.folder}"
        env["SMTP_URL"] = smtp_url
        if sys.stdout.isatty() and not os.environ.get("LOG_FORMAT"):
            env["LOG_FORMAT"] = "console"  # the same lines, readable; JSON where output goes to a file or a collector

        created = asyncio.run(create_topics(bootstrap, **security))
        for name, url in derived.items():
            asyncio.run(db.set_up(admin_url, name, url))

        processes = start_services(env, count=args.instances)
        stack.callback(stop_services, processes)
        wait_healthy(env, processes)
        print(
            "\norderflow is running\n"
            f"  kafka          {kafka_info}; topics created: {len(created)}\n"
            f"  postgres       {database_info}; each service logs in as its own role\n"
            f"  mail           {mail_info}\n"
            + "".join(f"  {name:<14} http://127.0.0.1:{http_port(name, env)}  (/health, /metrics, /docs)\n"
                      for name in processes)
            + "Ctrl-C stops everything.\n",
            flush=True,
        )
        try:
            supervise(processes, lambda name: start_service(name, env))
        except KeyboardInterrupt:
            print("\nstopping…", flush=True)
        # A second Ctrl-C must not cut the clean-up short and leave processes behind.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)


if __name__ == "__main__":
    main()
