"""A local Kafka broker: the real Apache Kafka (KRaft, one node) fetched from Maven Central by the Maven
project in infra/apache_kafka where Java 17+ is installed, else Tansu. Either is ready when it answers
a metadata request, not merely when its port is open."""

import asyncio
import base64
import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient

from infra import STATE, blocking, tansu

PROJECT = Path(__file__).parent / "apache_kafka"


@dataclass
class Broker:
    kind: str  # "Apache Kafka 4.4.0" or "Tansu"
    bootstrap_servers: str
    process: subprocess.Popen

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


def start_apache_kafka(port: int, data_dir: Path) -> Broker:
    libs = fetch_apache_kafka()
    data_dir.mkdir(parents=True, exist_ok=True)
    config = data_dir / "server.properties"
    config.write_text(
        (PROJECT / "server.properties.template")
        .read_text()
        .format(port=port, controller_port=port + 1, log_dir=data_dir / "logs")
    )
    java = ["java", "-Xms256m", "-Xmx512m", "-XX:+UseG1GC", "-XX:TieredStopAtLevel=1", "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={PROJECT / 'log4j2.xml'}", "-cp", f"{libs}/*"]
    # Formatted once; a restart keeps the data. The id must not start with "-" (read as an option).
    id_file = data_dir / "cluster.id"
    if not id_file.exists():
        id_file.write_text("k" + base64.urlsafe_b64encode(uuid.uuid4().bytes).decode()[1:22])
    formatted = subprocess.run(java + ["kafka.tools.StorageTool", "format", "--standalone", "--ignore-formatted",
                                       "-t", id_file.read_text(), "-c", str(config)], capture_output=True, text=True)
    if formatted.returncode:
        raise RuntimeError(f"formatting the Kafka storage in {data_dir} failed: {formatted.stdout}{formatted.stderr}")
    log = open(data_dir / "broker.log", "ab")
    process = subprocess.Popen(java + ["kafka.Kafka", str(config)], stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    return _ready(Broker("Apache Kafka", f"127.0.0.1:{port}", process))


def start_tansu(port: int, data_dir: Path) -> Broker:
    data_dir.mkdir(parents=True, exist_ok=True)
    return _ready(Broker("Tansu", f"127.0.0.1:{port}", tansu.start(port, data_dir / "broker.log")))


def start_local_broker(port: int = 9092, data_dir: Path | None = None) -> Broker:
    """Apache Kafka where Java 17+ is installed, else Tansu."""
    if java_17_or_newer():
        return start_apache_kafka(port, data_dir or STATE / "apache-kafka" / "data")
    return start_tansu(port, data_dir or STATE / "tansu")


async def answers(bootstrap_servers: str) -> bool:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=2000)
    try:
        await asyncio.wait_for(admin.start(), 3)
        await asyncio.wait_for(admin.list_topics(), 3)
        return True
    except Exception:
        return False
    finally:
        await admin.close()


def _ready(broker: Broker, timeout: float = 60) -> Broker:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if broker.process.poll() is not None:
            raise RuntimeError(f"{broker.kind} exited with {broker.process.returncode} before it was ready")
        if blocking.run(answers(broker.bootstrap_servers)):
            return broker
        time.sleep(0.2)
    broker.stop()
    raise TimeoutError(f"{broker.kind} did not answer on {broker.bootstrap_servers} within {timeout:.0f} s")
