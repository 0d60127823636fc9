"""A local Kafka broker: the real Apache Kafka (KRaft, one node) fetched from Maven Central by the Maven
project in infra/apache_kafka where Java 17+ is installed, else Tansu. Either is ready when it answers
a metadata request, not merely when its port is open. Apache Kafka can listen with SASL_SSL instead of
PLAINTEXT (SCRAM-SHA-512 over TLS), as a production cluster would."""

import asyncio
import base64
import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient

from infra import STATE, blocking, tansu
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
    libs = fetch_apache_kafka()
    data_dir.mkdir(parents=True, exist_ok=True)
    config = data_dir / "server.properties"
    properties = (PROJECT / "server.properties.template").read_text().format(
        port=port, controller_port=port + 1, log_dir=data_dir / "logs")
    users = []
    if sasl_ssl:
        properties = _replaced(properties, (PROJECT / "sasl_ssl.properties.template").read_text().format(
            port=port, controller_port=port + 1, username=sasl_ssl.username, password=sasl_ssl.password,
            keystore=sasl_ssl.keystore, truststore=sasl_ssl.cafile))
        users = ["--add-scram", f"SCRAM-SHA-512=[name={sasl_ssl.username},password={sasl_ssl.password}]"]
    config.write_text(properties)
    java = ["java", "-Xms256m", "-Xmx512m", "-XX:+UseG1GC", "-XX:TieredStopAtLevel=1", "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={PROJECT / 'log4j2.xml'}", "-cp", f"{libs}/*"]
    # Formatted once; a restart keeps the data. The id must not start with "-" (read as an option).
    id_file = data_dir / "cluster.id"
    if not id_file.exists():
        id_file.write_text("k" + base64.urlsafe_b64encode(uuid.uuid4().bytes).decode()[1:22])
    formatted = subprocess.run(java + ["kafka.tools.StorageTool", "format", "--standalone", "--ignore-formatted",
                                       "-t", id_file.read_text(), "-c", str(config), *users],
                               capture_output=True, text=True)
    if formatted.returncode:
        raise RuntimeError(f"formatting the Kafka storage in {data_dir} failed: {formatted.stdout}{formatted.stderr}")
    log = open(data_dir / "broker.log", "ab")
    process = subprocess.Popen(java + ["kafka.Kafka", str(config)], stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    return _ready(Broker("Apache Kafka", f"127.0.0.1:{port}", process, sasl_ssl.env if sasl_ssl else {}),
                  data_dir / "broker.log")


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


async def answers(bootstrap_servers: str, **security: Any) -> bool:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=2000, **security)
    try:
        await asyncio.wait_for(admin.start(), 3)
        await asyncio.wait_for(admin.list_topics(), 3)
        return True
    except Exception:
        return False
    finally:
        await admin.close()


def _ready(broker: Broker, log: Path, timeout: float = 60) -> Broker:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if broker.process.poll() is not None:
            lines = log.read_text(errors="replace").splitlines()
            # The first errors, which name the cause (a port taken, a bad certificate), else how the log ends.
            why = list(dict.fromkeys(line for line in lines if " ERROR " in line or "Exception: " in line))[:6]
            why = why or lines[-15:]
            raise RuntimeError(f"{broker.kind} exited with {broker.process.returncode} before it was ready; "
                               f"from {log}:\n" + "\n".join(why))
        if blocking.run(answers(broker.bootstrap_servers, **broker.client_security())):
            return broker
        time.sleep(0.2)
    broker.stop()
    raise TimeoutError(f"{broker.kind} did not answer on {broker.bootstrap_servers} within {timeout:.0f} s")
