"""A throwaway certificate authority and a broker certificate for 127.0.0.1, made with the openssl CLI: for a
local SASL_SSL broker in tests and benchmarks."""

import subprocess
from pathlib import Path


def openssl(*args: str | Path, cwd: Path) -> None:
    subprocess.run(["openssl", *map(str, args)], cwd=cwd, check=True, capture_output=True)


def broker_certificate(folder: Path) -> tuple[Path, Path]:
    """(the broker's key and certificate in one PEM file, the CA's certificate), valid for two days."""
    folder.mkdir(parents=True, exist_ok=True)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=orderflow test CA",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout", "ca.key", "-out", "ca.pem", cwd=folder)
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "broker.key",
            "-out", "broker.csr", cwd=folder)
    # Clients check the address they dialled against the certificate's subject alternative names.
    (folder / "broker.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("x509", "-req", "-in", "broker.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", "2", "-extfile", "broker.ext", "-out", "broker.crt", cwd=folder)
    # Kafka's PEM keystore: the (PKCS#8, unencrypted) key and the certificate chain in one file.
    keystore = folder / "broker.pem"
    keystore.write_text((folder / "broker.key").read_text() + (folder / "broker.crt").read_text())
    return keystore, folder / "ca.pem"
