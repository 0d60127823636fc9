"""A local Kafka broker: the real Apache Kafka (KRaft) fetched from Maven Central by the Maven project in
infra/apache_kafka where Java 17+ is installed, else Tansu; or a local Apache Kafka cluster of several
nodes. Each is ready when it answers a metadata request, not merely when its port is open. Apache Kafka can
listen with SASL_SSL instead of PLAINTEXT (SCRAM-SHA-512 over TLS), as a production cluster would."""

import asyncio
import base64
import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient

from infra import STATE, blocking, tansu
from infra.ports import free_port
from infra.topics import replication_for
from services.runtime.settings import load_kafka

PROJECT = Path(__file__).parent / "apache_kafka"


@dataclass
class Broker:
    kind: str  # "Apache Kafka 4.4.0" or "Tansu"
    bootstrap_servers: str
    process: subprocess.Popen
    # What a client needs besides the address (KAFKA_SECURITY_PROTOCOL, ...): nothing on plaintext.
    security_env: dict[str, str] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        """The settings a service or the command line connects with."""
        return {"KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers} | self.security_env

    def client_security(self) -> dict[str, Any]:
        if not self.security_env:  # plaintext, whatever KAFKA_* settings the caller's environment holds
            return {}
        return load_kafka(**{name.lower(): value for name, value in self.env.items()}).client_security()

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def java_17_or_newer() -> bool:
    if not shutil.which("java"):
        return False
    out = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr
    match = re.search(r'version "(\d+)', out)
    return bool(match) and int(match.group(1)) >= 17


def fetch_apache_kafka() -> Path:
    """Resolve the broker's jars with Maven, once; returns the folder that holds them."""
    libs = STATE / "apache-kafka" / "libs"
    if not any(libs.glob("kafka_2.13-*.jar")):
        libs.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["mvn", "-B", "-q", "-f", str(PROJECT / "pom.xml"), "dependency:copy-dependencies",
             "-DincludeScope=runtime", f"-DoutputDirectory={libs}"],
            check=True,
        )
    return libs


@dataclass(frozen=True)
class SaslSsl:
    """A SASL_SSL listener instead of PLAINTEXT: the broker's key and certificate chain (one PEM file), the
    CA that signed it (PEM), and the SCRAM-SHA-512 user that clients, and the broker itself, log in as."""

    keystore: Path
    cafile: Path
    username: str
    password: str

    @property
    def env(self) -> dict[str, str]:
        return {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
                "KAFKA_SASL_USERNAME": self.username, "KAFKA_SASL_PASSWORD": self.password,
                "KAFKA_SSL_CAFILE": str(self.cafile)}


def start_apache_kafka(port: int, data_dir: Path, sasl_ssl: SaslSsl | None = None) -> Broker:
    """One node, broker and controller, with a dynamic quorum of itself (`format --standalone`); with
    `sasl_ssl`, clients connect to it over SASL_SSL only."""
    node = _ApacheKafkaNode(1, port, data_dir, sasl_ssl)
    node.format(f"controller.quorum.bootstrap.servers=127.0.0.1:{port + 1}", nodes=1, standalone=True)
    return _ready(Broker("Apache Kafka", node.bootstrap_server, node.start(), sasl_ssl.env if sasl_ssl else {}),
                  node.log)


@dataclass
class Cluster:
    """Apache Kafka on several local nodes, each broker and controller (a static quorum of all of them), each
    with its own ports and data; one node at a time can be killed, paused and restarted. Nodes are numbered
    from 1, as Kafka's node ids."""

    kind: str
    nodes: dict[int, "_ApacheKafkaNode"]

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(node.bootstrap_server for node in self.nodes.values())

    def client_security(self) -> dict[str, Any]:
        return {}  # plaintext

    def kill(self, node_id: int) -> None:
        """SIGKILL: a crash, nothing flushed or handed over."""
        self.nodes[node_id].signal(signal.SIGKILL)
        self.nodes[node_id].process.wait()

    def pause(self, node_id: int) -> None:
        """SIGSTOP: the node hangs (a long GC pause, a frozen VM) with its connections open."""
        self.nodes[node_id].signal(signal.SIGSTOP)

    def resume(self, node_id: int) -> None:
        self.nodes[node_id].signal(signal.SIGCONT)

    def restart(self, node_id: int, timeout: float = 60) -> None:
        """Start the node again on its data (killing it first if it runs); returns once the cluster has all
        its brokers again."""
        node = self.nodes[node_id]
        if node.process.poll() is None:
            node.signal(signal.SIGCONT)
            self.kill(node_id)
        node.start()
        _ready(Broker(self.kind, node.bootstrap_server, node.process), node.log, timeout, brokers=len(self.nodes))

    def stop(self) -> None:
        for node in self.nodes.values():
            if node.process:
                node.signal(signal.SIGCONT)  # a paused JVM would not act on SIGTERM
                Broker(self.kind, node.bootstrap_server, node.process).stop()


def start_apache_kafka_cluster(data_dir: Path, ports: Sequence[int] = (9092, 9094, 9096)) -> Cluster:
    """One node per port (its controller on the port after it), data under `data_dir/node-<id>`; returns once
    every node is a registered broker. Topics are then replicated to min(3, nodes) of them (infra/topics.py)."""
    nodes = {i: _ApacheKafkaNode(i, port, data_dir / f"node-{i}") for i, port in enumerate(ports, start=1)}
    voters = ",".join(f"{i}@127.0.0.1:{node.port + 1}" for i, node in nodes.items())
    cluster_id = _cluster_id(data_dir)
    for node in nodes.values():
        node.format(f"controller.quorum.voters={voters}", nodes=len(nodes), cluster_id=cluster_id)
    cluster = Cluster("Apache Kafka", nodes)
    try:
        for node in nodes.values():
            node.start()
        for node in nodes.values():
            _ready(Broker(cluster.kind, node.bootstrap_server, node.process), node.log, brokers=len(nodes))
    except BaseException:
        cluster.stop()
        raise
    return cluster


class _ApacheKafkaNode:
    """A node's configuration, data and process: formatted once, started (again) on the same data."""

    def __init__(self, node_id: int, port: int, data_dir: Path, sasl_ssl: SaslSsl | None = None) -> None:
        self.node_id, self.port, self.data_dir, self.sasl_ssl = node_id, port, data_dir, sasl_ssl
        self.config = data_dir / "server.properties"
        self.log = data_dir / "broker.log"
        self.process: subprocess.Popen | None = None
        # Heap for tests and development, several nodes on one small machine.
        self._java = ["java", "-Xms128m", "-Xmx512m", "-XX:+UseG1GC", "-XX:TieredStopAtLevel=1",
                      "-Djava.awt.headless=true", f"-Dlog4j2.configurationFile={PROJECT / 'log4j2.xml'}",
                      "-cp", f"{fetch_apache_kafka()}/*"]

    @property
    def bootstrap_server(self) -> str:
        return f"127.0.0.1:{self.port}"

    def format(self, quorum: str, nodes: int, cluster_id: str | None = None, standalone: bool = False) -> None:
        """Write the configuration (for a cluster of `nodes`) and format the storage, once: a restart keeps
        the data."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        replicas, min_insync = replication_for(nodes)
        properties = (PROJECT / "server.properties.template").read_text().format(
            node_id=self.node_id, port=self.port, controller_port=self.port + 1, quorum=quorum,
            log_dir=self.data_dir / "logs", replication=replicas, min_insync=min_insync)
        command = ["kafka.tools.StorageTool", "format", "--ignore-formatted", "-t",
                   cluster_id or _cluster_id(self.data_dir), "-c", str(self.config)]
        if tls := self.sasl_ssl:
            properties = _replaced(properties, (PROJECT / "sasl_ssl.properties.template").read_text().format(
                port=self.port, controller_port=self.port + 1, username=tls.username, password=tls.password,
                keystore=tls.keystore, truststore=tls.cafile))
            command += ["--add-scram", f"SCRAM-SHA-512=[name={tls.username},password={tls.password}]"]
        self.config.write_text(properties)
        formatted = subprocess.run(self._java + command + (["--standalone"] if standalone else []),
                                   capture_output=True, text=True)
        if formatted.returncode:
            raise RuntimeError(f"formatting the Kafka storage in {self.data_dir} failed: "
                               f"{formatted.stdout}{formatted.stderr}")

    def start(self) -> subprocess.Popen:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(self._java + ["kafka.Kafka", str(self.config)], stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        return self.process

    def signal(self, signum: int) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signum)


def _cluster_id(data_dir: Path) -> str:
    """The cluster's id, made once and kept with its data. It must not start with "-" (read as an option)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    id_file = data_dir / "cluster.id"
    if not id_file.exists():
        id_file.write_text("k" + base64.urlsafe_b64encode(uuid.uuid4().bytes).decode()[1:22])
    return id_file.read_text()


def _replaced(properties: str, replacements: str) -> str:
    """`properties` without the keys `replacements` sets, followed by `replacements`."""
    replaced = {line.partition("=")[0] for line in replacements.splitlines() if "=" in line and line[0] != "#"}
    kept = [line for line in properties.splitlines() if line.partition("=")[0] not in replaced]
    return "\n".join(kept) + "\n\n" + replacements


def start_tansu(port: int, data_dir: Path) -> Broker:
    data_dir.mkdir(parents=True, exist_ok=True)
    log = data_dir / "broker.log"
    return _ready(Broker("Tansu", f"127.0.0.1:{port}", tansu.start(port, log)), log)


def start_local_broker(port: int = 9092, data_dir: Path | None = None) -> Broker:
    """Apache Kafka where Java 17+ is installed, else Tansu."""
    if java_17_or_newer():
        return start_apache_kafka(port, data_dir or STATE / "apache-kafka" / "data")
    return start_tansu(port, data_dir or STATE / "tansu")


def start_broker_on_free_ports(folder: Path, brokers: int = 1) -> Broker | Cluster:
    """A broker of a run's own (chaos, benchmarks), beside any other: Apache Kafka where Java 17+ is installed,
    else Tansu; with `brokers` > 1, an Apache Kafka cluster of that many nodes."""
    if brokers > 1:
        if not java_17_or_newer():
            raise SystemExit("--brokers runs an Apache Kafka cluster, which needs Java 17 or newer")
        return start_apache_kafka_cluster(folder, [free_port(also=(1,)) for _ in range(brokers)])
    if java_17_or_newer():
        return start_apache_kafka(free_port(also=(1,)), folder)
    return start_tansu(free_port(), folder)


async def answers(bootstrap_servers: str, brokers: int = 1, **security: Any) -> bool:
    """The broker answers a metadata request, which names at least `brokers` registered brokers."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=2000, **security)
    try:
        await asyncio.wait_for(admin.start(), 3)
        cluster = await asyncio.wait_for(admin.describe_cluster(), 3)
        return len(cluster["brokers"]) >= brokers
    except Exception:
        return False
    finally:
        await admin.close()


def _ready(broker: Broker, log: Path, timeout: float = 60, brokers: int = 1) -> Broker:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if broker.process.poll() is not None:
            lines = log.read_text(errors="replace").splitlines()
            # The first errors, which name the cause (a port taken, a bad certificate), else how the log ends.
            why = list(dict.fromkeys(line for line in lines if " ERROR " in line or "Exception: " in line))[:6]
            why = why or lines[-15:]
            raise RuntimeError(f"{broker.kind} exited with {broker.process.returncode} before it was ready; "
                               f"from {log}:\n" + "\n".join(why))
        if blocking.run(answers(broker.bootstrap_servers, brokers, **broker.client_security())):
            return broker
        time.sleep(0.2)
    broker.stop()
    raise TimeoutError(f"{broker.kind} did not answer on {broker.bootstrap_servers} within {timeout:.0f} s")
