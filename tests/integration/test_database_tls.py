"""PostgreSQL TLS is a setting of the URL: a PostgreSQL server of the test's own with a certificate made by
`openssl`, reached over TLS with the server verified, and refused where the URL requires TLS and the server
offers none."""

import asyncio
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import asyncpg
import pytest

from infra import blocking
from services.runtime import db
from tests.conftest import free_port

ADMIN_PASSWORD = "tls-admin-secret"


def _binaries() -> Path | None:
    """The bin folder of an installed PostgreSQL (the embedded pgserver is built without OpenSSL)."""
    if initdb := shutil.which("initdb"):
        return Path(initdb).resolve().parent
    if pg_config := shutil.which("pg_config"):
        return Path(subprocess.run([pg_config, "--bindir"], capture_output=True, text=True).stdout.strip())
    return None


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_certificates(folder: Path, name: str) -> None:
    """A certificate authority `name`-ca.crt, and a server certificate for 127.0.0.1 signed by it."""
    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl("req", "-x509", *key, "-keyout", f"{name}-ca.key", "-out", f"{name}-ca.crt", "-days", "2",
             "-subj", f"/CN={name} test CA", cwd=folder)
    _openssl("req", *key, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", "/CN=127.0.0.1", cwd=folder)
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{name}-ca.crt", "-CAkey", f"{name}-ca.key",
             "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", "-extfile", "san.ext", cwd=folder)


@pytest.fixture(scope="module")
def tls_server():
    """(admin URL without TLS parameters, folder with the certificates) of a fresh cluster with TLS on."""
    binaries = _binaries()
    if binaries is None or not shutil.which("openssl"):
        pytest.skip("needs an installed PostgreSQL (initdb) and the openssl command")
    # PostgreSQL refuses to run as root: as root, the server runs as the packaged server's user.
    user = pwd.getpwnam("postgres") if os.geteuid() == 0 else pwd.getpwuid(os.geteuid())
    folder = Path(tempfile.mkdtemp(prefix="orderflow-tls-"))
    make_certificates(folder, "server")
    make_certificates(folder, "stranger")  # another authority, which did not sign the server's certificate
    (folder / "password").write_text(ADMIN_PASSWORD)
    for path in [folder, *folder.iterdir()]:
        os.chown(path, user.pw_uid, user.pw_gid)
    os.chmod(folder / "server.key", 0o600)
    data = folder / "data"
    subprocess.run([binaries / "initdb", "-D", data, "-U", "admin", "--pwfile", folder / "password",
                    "--auth=scram-sha-256", "--no-sync", "-E", "UTF8"], user=user.pw_uid, cwd=folder, check=True,
                   capture_output=True)
    # In postgresql.conf, not on the command line: a test turns TLS off with ALTER SYSTEM.
    with open(data / "postgresql.conf", "a") as conf:
        conf.write(f"ssl = on\nssl_cert_file = '{folder / 'server.crt'}'\nssl_key_file = '{folder / 'server.key'}'\n"
                   f"listen_addresses = '127.0.0.1'\nunix_socket_directories = '{folder}'\nfsync = off\n")
    port = free_port()
    server = subprocess.Popen([binaries / "postgres", "-D", data, "-p", str(port)], user=user.pw_uid, cwd=folder,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"postgresql://admin:{ADMIN_PASSWORD}@127.0.0.1:{port}/postgres"
    try:
        deadline = time.monotonic() + 30
        while not blocking.run(_answers(url)):
            assert server.poll() is None and time.monotonic() < deadline, "the TLS PostgreSQL did not start"
            time.sleep(0.1)
        yield url, folder
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(folder, ignore_errors=True)


async def _answers(url: str) -> bool:
    try:
        await (await asyncpg.connect(url, ssl="disable", timeout=2)).close()
        return True
    except (OSError, asyncpg.PostgresError, asyncio.TimeoutError):
        return False


async def _ssl_of_connections(admin_url: str, role: str) -> list[bool]:
    admin = await asyncpg.connect(admin_url)
    try:
        return [r["ssl"] for r in await admin.fetch(
            "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.usename = $1", role)]
    finally:
        await admin.close()


async def test_the_set_up_and_a_service_connect_over_tls_verifying_the_server_by_the_urls_root_certificate(tls_server):
    url, folder = tls_server
    admin_url = f"{url}?sslmode=verify-full&sslrootcert={folder / 'server-ca.crt'}"
    service_url = db.local_url(admin_url, "order")  # the admin's TLS parameters are the service's too
    assert "sslmode=verify-full" in service_url and "sslrootcert=" in service_url

    applied = await db.set_up(admin_url, "order", service_url)
    pool = await db.connect_pool(service_url, "order", max_size=2)
    try:
        assert applied and await pool.fetchval("SELECT count(*) FROM events") == 0
        assert await pool.fetchval("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        assert await _ssl_of_connections(admin_url, db.role("order")) == [True]  # min_size: one connection
    finally:
        await pool.close()


async def test_a_server_whose_certificate_the_urls_root_did_not_sign_is_refused(tls_server):
    url, folder = tls_server
    service_url = db.local_url(f"{url}?sslmode=verify-full&sslrootcert={folder / 'stranger-ca.crt'}", "order")
    with pytest.raises(Exception, match="certificate verify failed"):
        await db.connect_pool(service_url, "order")


async def test_a_url_that_requires_tls_fails_clearly_where_the_server_offers_none(tls_server):
    url, _ = tls_server
    admin = await asyncpg.connect(url, ssl="disable")
    try:
        await admin.execute("ALTER SYSTEM SET ssl = off")
        await admin.execute("SELECT pg_reload_conf()")
        while await (probe := await asyncpg.connect(url, ssl="disable")).fetchval("SHOW ssl") != "off":
            await probe.close()
            await asyncio.sleep(0.05)
        await probe.close()

        with pytest.raises(ConnectionError, match="rejected SSL upgrade"):
            await db.connect_pool(db.local_url(f"{url}?sslmode=require", "order"), "order")
        with pytest.raises(ConnectionError, match="rejected SSL upgrade"):
            await db.set_up(f"{url}?sslmode=require", "order", db.local_url(f"{url}?sslmode=require", "order"))
    finally:
        await admin.execute("ALTER SYSTEM RESET ssl")
        await admin.execute("SELECT pg_reload_conf()")
        await admin.close()
