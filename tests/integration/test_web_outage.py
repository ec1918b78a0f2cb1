"""Losing the database gives a clean answer (issue 10 point 7), and idle connections are closed (point 8).

The outage is real, not mocked: the app runs under uvicorn on loopback against a PostgreSQL database made
for this test; the test then refuses new connections to that database and terminates the open ones (what
a crashed or failed-over server looks like to the app), and later lets connections in again. Other
engineers' databases on the same server are untouched.
"""

from __future__ import annotations

import base64
import http.client
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from sqlalchemy import select, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from ecert.services import publication
from ecert.services.ca_config import load_hierarchy_config
from ecert.services.ceremony import init_hierarchy
from ecert.services.context import Context
from ecert.signer.status import issuer_hashes
from ecert.store import db as store_db
from ecert.store.models import CA
from ecert.web.app import create_app
from ecert.web.server import uvicorn_options

from .foundation_fixtures import PASSPHRASE_ENV, make_ctx
from .test_revocation import issue_leaf

VENV_BIN = Path(sys.executable).parent  # where this interpreter's console scripts are installed


@dataclass
class Served:
    port: int
    server: uvicorn.Server
    thread: threading.Thread

    def conn(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=20)

    def get(
        self, path: str, conn: http.client.HTTPConnection | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        c = conn or self.conn()
        try:
            c.request("GET", path, headers=headers or {})
            r = c.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            if conn is None:
                c.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(app: object, idle: int = 5) -> Served:
    port = _free_port()
    options = {"host": "127.0.0.1", "port": port, "log_level": "error", "lifespan": "off", **uvicorn_options(idle)}
    config = uvicorn.Config(app, **options)  # type: ignore[arg-type]
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.02)
    return Served(port, server, thread)


@pytest.fixture
def own_database(pg_server_url: str) -> Iterator[tuple[str, str]]:
    """(admin URL, URL of a fresh database of this test's own), dropped afterwards."""
    name = f"ecert_outage_{uuid.uuid4().hex[:10]}"
    admin = store_db.make_engine(pg_server_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(pg_server_url).set(database=name).render_as_string(hide_password=False)
    try:
        yield pg_server_url, url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true'))
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _outage(admin_url: str, name: str, *, down: bool) -> None:
    admin = store_db.make_engine(admin_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS {"false" if down else "true"}'))
            if down:
                conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = :n AND pid <> pg_backend_pid()"
                    ),
                    {"n": name},
                )
    finally:
        admin.dispose()


def _ocsp_path(ctx: Context, serial: int) -> str:
    with ctx.read() as s:
        issuer = x509.load_der_x509_certificate(
            s.scalar(select(CA.cert_der).where(CA.role == "ov", CA.status == "active"))
        )
    name_hash, key_hash = issuer_hashes(issuer, hashes.SHA1())
    req = ocsp.OCSPRequestBuilder().add_certificate_by_hash(name_hash, key_hash, serial, hashes.SHA1()).build()
    return "/ocsp/" + urllib.parse.quote(
        base64.b64encode(req.public_bytes(serialization.Encoding.DER)).decode(), safe=""
    )


@pytest.mark.postgres
def test_losing_the_database_answers_503_keeps_serving_memory_and_recovers(
    tmp_path: Path, own_database: tuple[str, str]
) -> None:
    admin_url, url = own_database
    name = make_url(url).database
    assert name is not None
    ctx = make_ctx(tmp_path, url)
    init_hierarchy(ctx, load_hierarchy_config(None), demo=True)
    leaf, _ = issue_leaf(ctx, name="outage.example.com")
    with ctx.read() as s:
        ov_label = s.scalar(select(CA.label).where(CA.id == leaf.ca_id))
    publication.refresh_ocsp(ctx, ov_label)
    served = _serve(create_app(ctx.settings, {**PASSPHRASE_ENV, "ECERT_JOBS": "off"}, context=ctx))
    try:
        ocsp_path = _ocsp_path(ctx, int(leaf.serial_hex, 16))
        never_asked = _ocsp_path(ctx, 12345)
        ca_path = f"/repository/ca/{ov_label}.crt"
        assert served.get("/api/v1/search?q=outage")[0] == 200
        ca_before, ocsp_before = served.get(ca_path), served.get(ocsp_path)
        assert ca_before[0] == 200 and ocsp_before[0] == 200
        neighbour = served.conn()  # a kept-alive connection that must survive the outage
        assert served.get(ca_path, neighbour)[0] == 200

        _outage(admin_url, name, down=True)
        status, headers, body = served.get("/api/v1/search?q=outage")
        assert status == 503, body
        assert headers["content-type"] == "application/problem+json" and headers["retry-after"] == "30"
        assert b"urn:ecert:problem:unavailable" in body and name.encode() not in body
        assert served.get("/api/v1/search?q=again", neighbour)[0] == 503  # the same connection still answers
        browser = {"Accept": "text/html,application/xhtml+xml"}
        for lang, words in (("en", "cannot reach its database"), ("zh-HK", "暫時未能連接其資料庫")):
            status, headers, body = served.get(f"/search?q=outage&lang={lang}", headers=browser)
            assert (status, headers["retry-after"]) == (503, "30"), body
            assert headers["content-type"].startswith("text/html") and words in body.decode()
            assert name.encode() not in body
        assert served.get(ca_path, neighbour)[:3:2] == (200, ca_before[2])  # CA certificate from memory
        time.sleep(0.1)
        ocsp_during = served.get(ocsp_path)
        assert ocsp_during[0] == 200 and ocsp_during[2] == ocsp_before[2]  # OCSP from memory
        unknown = ocsp.load_der_ocsp_response(served.get(never_asked)[2])
        assert unknown.response_status is ocsp.OCSPResponseStatus.TRY_LATER

        _outage(admin_url, name, down=False)
        deadline = time.monotonic() + 10
        while (status := served.get("/api/v1/search?q=outage")[0]) != 200:
            assert status == 503 and time.monotonic() < deadline, "the service did not recover by itself"
            time.sleep(0.2)
        assert served.get("/api/v1/search?q=outage", neighbour)[0] == 200
        neighbour.close()
    finally:
        served.server.should_exit = True
        served.thread.join(10)
        ctx.close()


def _closed_after(port: int, *, request: bool, limit: float) -> float:
    with socket.create_connection(("127.0.0.1", port), timeout=limit) as sock:
        if request:
            sock.sendall(b"GET /crl/none.txt HTTP/1.1\r\nHost: x\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 ")
        opened = time.monotonic()
        while sock.recv(65536):
            pass
        return time.monotonic() - opened


@pytest.mark.parametrize("request_first", [False, True], ids=["never-asks", "kept-alive"])
def test_idle_connections_to_the_web_service_are_closed(tmp_path: Path, request_first: bool) -> None:
    ctx = make_ctx(tmp_path)
    served = _serve(create_app(ctx.settings, {**PASSPHRASE_ENV, "ECERT_JOBS": "off"}, context=ctx), idle=1)
    try:
        waited = _closed_after(served.port, request=request_first, limit=10)
        assert 0.8 <= waited < 3.0
    finally:
        served.server.should_exit = True
        served.thread.join(10)
        ctx.close()


def test_ecert_ca_serve_closes_a_connection_that_never_asks(tmp_path: Path) -> None:
    port = _free_port()
    env = {
        "PATH": "/usr/bin:/bin",
        "ECERT_DATA_DIR": str(tmp_path / "data"),
        "NO_COLOR": "1",
        "ECERT_KEY_PASSPHRASE": "serve-test-passphrase",
        "ECERT_JOBS": "off",
    }
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [str(VENV_BIN / "ecert-ca"), "serve", "--demo", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "ecert-ca serve did not listen"
                time.sleep(0.1)
        waited = _closed_after(port, request=False, limit=15)
        assert 4.0 <= waited < 7.5  # web/server.py IDLE_TIMEOUT = 5 s
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()


def test_an_unexpected_error_is_a_page_for_a_browser_and_a_problem_for_a_program(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path)
    app = create_app(ctx.settings, {**PASSPHRASE_ENV, "ECERT_JOBS": "off"}, context=ctx)

    def boom() -> None:
        raise RuntimeError("a bug, with a secret-looking detail: pin=1234")

    app.add_api_route("/portal/boom", boom)
    served = _serve(app)
    try:
        status, headers, body = served.get("/portal/boom?lang=zh-HK", headers={"Accept": "text/html"})
        assert status == 500 and headers["content-type"].startswith("text/html")
        assert "系統未能完成你的要求" in body.decode() and b"pin=1234" not in body
        status, headers, body = served.get("/portal/boom", headers={"Accept": "application/json"})
        assert status == 500 and headers["content-type"] == "application/problem+json"
        assert b"urn:ecert:problem:internal" in body and b"pin=1234" not in body
    finally:
        served.server.should_exit = True
        served.thread.join(10)
        ctx.close()
