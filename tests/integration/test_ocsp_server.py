"""`ecert-ca ocsp serve`, the dedicated OCSP responder, as a client on the wire sees it.

One responder subprocess on a free 127.0.0.1 port serves a demo CA (real clock: openssl reads it)
with the default 30 s backstop poll, so a change seen sooner came by the fast path (SQLite: the 1 s change
marker; PostgreSQL: NOTIFY at commit); the test process issues, publishes and revokes in the same database.
"""

from __future__ import annotations

import base64
import http.client
import os
import socket
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from sqlalchemy import select

from ecert.services import publication, revocation
from ecert.services.ca_config import load_hierarchy_config
from ecert.services.ceremony import init_hierarchy
from ecert.services.context import Context
from ecert.signer.status import issuer_hashes
from ecert.store.models import CA, Certificate

from .foundation_fixtures import BASE_URL, PASSPHRASE_ENV, make_ctx
from .test_revocation import issue_leaf

VENV_BIN = Path(sys.executable).parent  # where this interpreter's console scripts are installed
TIMEOUT = 20.0


@dataclass
class Responder:
    port: int
    ctx: Context
    dir: Path
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/ocsp"

    def ca(self, role: str) -> CA:
        with self.ctx.transaction() as s:
            return s.scalar(select(CA).where(CA.role == role, CA.status == "active").order_by(CA.id))

    def pem(self, name: str, der: bytes) -> str:
        path = self.dir / f"{name}.pem"
        path.write_bytes(x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM))
        return str(path)

    def connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=TIMEOUT)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_listening(proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"responder exited: {log.read_text(errors='replace')}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("responder did not start listening")


IDLE_TIMEOUT = 2.0  # --idle-timeout given to the responder
SQLITE_BOUND = 2.5  # a revocation is served within the 1 s change poll plus one reload
PG_BOUND = 1.0  # NOTIFY at commit: well under a second
BACKSTOP = 30.0  # the default --refresh-seconds: what a revocation waited for before


@pytest.fixture(scope="module")
def responder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Responder]:
    yield from _start_responder(tmp_path_factory.mktemp("ocsp-server"), None)


def _start_responder(tmp: Path, db_url: str | None) -> Iterator[Responder]:
    ctx = make_ctx(tmp, db_url)
    init_hierarchy(ctx, load_hierarchy_config(None), demo=True)
    first, _ = issue_leaf(ctx, name="first.example.com")  # a stored response before the server starts
    publication.refresh_ocsp(ctx, _label(ctx, first))
    port = _free_port()
    env = {**os.environ, **PASSPHRASE_ENV, "ECERT_DATA_DIR": str(tmp / "data"), "ECERT_BASE_URL": BASE_URL}
    env.pop("ECERT_DATABASE_URL", None)
    if db_url is not None:
        env["ECERT_DATABASE_URL"] = db_url
    log = (tmp / "responder.log").open("wb")  # a file, not a pipe: a full pipe would stall the server
    proc = subprocess.Popen(
        [
            str(VENV_BIN / "ecert-ca"),
            "ocsp",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--idle-timeout",
            str(IDLE_TIMEOUT),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_listening(proc, port, tmp / "responder.log")
        yield Responder(port, ctx, tmp, proc)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()
        ctx.close()


def _label(ctx: Context, row: Certificate) -> str:
    with ctx.transaction() as s:
        return s.get(CA, row.ca_id).label


def _published_leaf(r: Responder, name: str) -> Certificate:
    row, _ = issue_leaf(r.ctx, name=name)
    publication.refresh_ocsp(r.ctx, _label(r.ctx, row))
    return row


def _request(
    r: Responder, serial: int, *, issuer: x509.Certificate | None = None, algorithm: hashes.HashAlgorithm | None = None
) -> bytes:
    issuer = issuer or x509.load_der_x509_certificate(r.ca("ov").cert_der)
    algorithm = algorithm or hashes.SHA1()
    name_hash, key_hash = issuer_hashes(issuer, algorithm)
    req = ocsp.OCSPRequestBuilder().add_certificate_by_hash(name_hash, key_hash, serial, algorithm).build()
    return req.public_bytes(serialization.Encoding.DER)


def _get_path(der: bytes) -> str:
    return "/ocsp/" + urllib.parse.quote(base64.b64encode(der).decode(), safe="")


def _fetch(
    r: Responder, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    conn = r.connection()
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def _openssl(r: Responder, *target: str) -> str:
    out = subprocess.run(
        [
            "openssl",
            "ocsp",
            "-url",
            r.url,
            "-issuer",
            r.pem("ov", r.ca("ov").cert_der),
            *target,
            "-CAfile",
            r.pem("root", r.ca("root").cert_der),
            "-no_nonce",
            "-timeout",
            "10",
        ],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert out.returncode == 0, out.stdout + out.stderr  # rc 0 on revoked too: read the text
    assert "Response verify OK" in out.stderr + out.stdout
    return out.stdout


def _status(r: Responder, der: bytes) -> ocsp.OCSPCertStatus:
    status, _, body = _fetch(r, "POST", "/ocsp", der, {"Content-Type": "application/ocsp-request"})
    assert status == 200
    return ocsp.load_der_ocsp_response(body).certificate_status


def _seconds_until(r: Responder, serial: int, wanted: ocsp.OCSPCertStatus, bound: float) -> float:
    """Poll every 50 ms until the responder answers ``wanted``; fail past ``bound`` seconds."""
    started = time.monotonic()
    der = _request(r, serial)
    while (status := _status(r, der)) is not wanted:
        elapsed = time.monotonic() - started
        assert elapsed < bound, f"still {status.name} {elapsed:.2f} s later (bound {bound} s)"
        time.sleep(0.05)
    return time.monotonic() - started


def _revoke_and_time(r: Responder, name: str, bound: float) -> tuple[Certificate, float]:
    row = _published_leaf(r, name)
    _seconds_until(r, int(row.serial_hex, 16), ocsp.OCSPCertStatus.GOOD, bound)
    revocation.revoke_certificate(r.ctx, ca_label=None, serial_hex=row.serial_hex, reason="keyCompromise", actor="t")
    return row, _seconds_until(r, int(row.serial_hex, 16), ocsp.OCSPCertStatus.REVOKED, bound)


def test_openssl_reports_good_then_revoked_at_once(responder: Responder) -> None:
    """`cert revoke --help` says "at once": within SQLITE_BOUND, not the 30 s backstop poll."""
    row = _published_leaf(responder, "revokee.example.com")
    leaf = responder.pem("revokee", row.der)
    assert f"{leaf}: good" in _openssl(responder, "-cert", leaf)

    revocation.revoke_certificate(
        responder.ctx, ca_label=None, serial_hex=row.serial_hex, reason="keyCompromise", actor="t"
    )
    latency = _seconds_until(responder, int(row.serial_hex, 16), ocsp.OCSPCertStatus.REVOKED, SQLITE_BOUND)
    assert latency < BACKSTOP / 10
    out = _openssl(responder, "-cert", leaf)
    assert f"{leaf}: revoked" in out and "Reason: keyCompromise" in out


def test_revocations_show_within_the_promised_bound_every_time(responder: Responder) -> None:
    latencies = [_revoke_and_time(responder, f"again{i}.example.com", SQLITE_BOUND)[1] for i in range(3)]
    assert max(latencies) < SQLITE_BOUND


@pytest.mark.postgres
def test_postgresql_notifies_the_responder_at_commit(tmp_path: Path, pg_url: str) -> None:
    started = _start_responder(tmp_path, pg_url)
    r = next(started)
    try:
        latencies = [_revoke_and_time(r, f"pg{i}.example.com", PG_BOUND)[1] for i in range(3)]
    finally:
        started.close()
    assert max(latencies) < PG_BOUND  # the 1 s change poll is not used on PostgreSQL: this was NOTIFY


def test_an_idle_connection_is_closed_after_the_configured_time(responder: Responder) -> None:
    with socket.create_connection(("127.0.0.1", responder.port), timeout=IDLE_TIMEOUT * 3) as idle:
        opened = time.monotonic()
        assert idle.recv(1) == b""  # no request ever sent: the server closes it
        waited = time.monotonic() - opened
    assert IDLE_TIMEOUT * 0.8 <= waited < IDLE_TIMEOUT + 1.5


def test_a_kept_alive_connection_is_closed_once_idle(responder: Responder) -> None:
    conn = responder.connection()
    try:
        conn.request("POST", "/ocsp", body=b"x", headers={"Content-Type": "application/ocsp-request"})
        conn.getresponse().read()
        answered = time.monotonic()
        conn.sock.settimeout(IDLE_TIMEOUT * 3)
        assert conn.sock.recv(1) == b""
        assert IDLE_TIMEOUT * 0.8 <= time.monotonic() - answered < IDLE_TIMEOUT + 1.5
    finally:
        conn.close()


def test_a_certificate_loaded_at_start_is_good(responder: Responder) -> None:
    with responder.ctx.transaction() as s:
        first = s.scalar(select(Certificate).where(Certificate.der.is_not(None)).order_by(Certificate.id))
    assert _status(responder, _request(responder, int(first.serial_hex, 16))) is ocsp.OCSPCertStatus.GOOD


def test_openssl_reports_a_serial_never_issued_as_unknown(responder: Responder) -> None:
    assert "0x1234567890abcdef: unknown" in _openssl(responder, "-serial", "0x1234567890abcdef")


def test_a_sha256_certid_is_answered_with_the_same_hash(responder: Responder) -> None:
    """A SHA-256 CertID is always signed on demand (stored responses carry SHA-1 CertIDs). tryLater is a
    lawful answer to that (RFC 6960 2.3: a busy store or the signing rate limit), and a relying party asks
    again; any other error status fails here, with the responder's log."""
    row = _published_leaf(responder, "sha256.example.com")
    path = _get_path(_request(responder, int(row.serial_hex, 16), algorithm=hashes.SHA256()))
    deadline = time.monotonic() + SQLITE_BOUND
    while True:
        status, _, body = _fetch(responder, "GET", path)
        answer = ocsp.load_der_ocsp_response(body)
        if answer.response_status is not ocsp.OCSPResponseStatus.TRY_LATER or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    log = (responder.dir / "responder.log").read_text(errors="replace")[-2000:]
    assert answer.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL, (answer.response_status, log)
    assert status == 200 and answer.certificate_status is ocsp.OCSPCertStatus.GOOD
    assert answer.hash_algorithm.name == "sha256"


def test_get_carries_rfc5019_cache_headers_and_honours_if_none_match(responder: Responder) -> None:
    row = _published_leaf(responder, "cached.example.com")
    _seconds_until(responder, int(row.serial_hex, 16), ocsp.OCSPCertStatus.GOOD, SQLITE_BOUND)
    path = _get_path(_request(responder, int(row.serial_hex, 16)))
    status, headers, body = _fetch(responder, "GET", path)
    assert status == 200 and headers["content-type"] == "application/ocsp-response"
    answer = ocsp.load_der_ocsp_response(body)
    assert answer.certificate_status is ocsp.OCSPCertStatus.GOOD
    cache = [p.strip() for p in headers["cache-control"].split(",")]
    assert {"public", "no-transform", "must-revalidate"} <= set(cache)
    max_age = int(next(p for p in cache if p.startswith("max-age="))[8:])
    assert abs(max_age - (answer.next_update_utc - responder.ctx.clock()).total_seconds()) < 5
    assert headers["last-modified"] == answer.this_update_utc.strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert headers["expires"] == answer.next_update_utc.strftime("%a, %d %b %Y %H:%M:%S GMT")
    again, _, empty = _fetch(responder, "GET", path, headers={"If-None-Match": headers["etag"]})
    assert again == 304 and empty == b""


def test_head_has_the_get_headers_and_no_body_and_the_connection_goes_on(responder: Responder) -> None:
    """RFC 9110 9.1: HEAD wherever GET (a cache or a monitor checks freshness with it); it was a 405."""
    row = _published_leaf(responder, "head.example.com")
    _seconds_until(responder, int(row.serial_hex, 16), ocsp.OCSPCertStatus.GOOD, SQLITE_BOUND)
    path = _get_path(_request(responder, int(row.serial_hex, 16)))
    _, got, body = _fetch(responder, "GET", path)
    conn = responder.connection()
    try:
        conn.request("HEAD", path)
        head = conn.getresponse()
        assert head.status == 200 and head.read() == b""
        for name in ("content-type", "content-length", "etag", "last-modified", "expires"):
            assert head.getheader(name) == got[name], name
        assert int(got["content-length"]) == len(body)
        conn.request("GET", path)  # nothing of a body was left on the connection to be read as a response
        after = conn.getresponse()
        assert after.status == 200 and after.read() == body
    finally:
        conn.close()


def test_post_answers_are_not_cacheable(responder: Responder) -> None:
    row = _published_leaf(responder, "post.example.com")
    status, headers, body = _fetch(
        responder,
        "POST",
        "/ocsp",
        _request(responder, int(row.serial_hex, 16)),
        {"Content-Type": "application/ocsp-request"},
    )
    assert status == 200 and headers["cache-control"] == "no-store"
    assert ocsp.load_der_ocsp_response(body).certificate_status is ocsp.OCSPCertStatus.GOOD


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("garbage-post", ocsp.OCSPResponseStatus.MALFORMED_REQUEST),
        ("garbage-get", ocsp.OCSPResponseStatus.MALFORMED_REQUEST),
        ("not-base64-get", ocsp.OCSPResponseStatus.MALFORMED_REQUEST),
        ("empty-get", ocsp.OCSPResponseStatus.MALFORMED_REQUEST),
        ("empty-post", ocsp.OCSPResponseStatus.MALFORMED_REQUEST),
        ("other-issuer", ocsp.OCSPResponseStatus.UNAUTHORIZED),
    ],
)
def test_bad_requests_get_unsigned_ocsp_errors(
    responder: Responder, case: str, expected: ocsp.OCSPResponseStatus
) -> None:
    if case == "garbage-post":
        status, headers, body = _fetch(responder, "POST", "/ocsp", b"\x30\x03\x02\x01\x01")
    elif case == "garbage-get":
        status, headers, body = _fetch(responder, "GET", _get_path(b"\x30\x03\x02\x01\x01"))
    elif case == "not-base64-get":
        status, headers, body = _fetch(responder, "GET", "/ocsp/%21%21not-base64%21%21")
    elif case == "empty-get":
        status, headers, body = _fetch(responder, "GET", "/ocsp/")
    elif case == "empty-post":
        status, headers, body = _fetch(responder, "POST", "/ocsp", b"")
    else:
        external = x509.load_der_x509_certificate(responder.ca("external-root").cert_der)
        status, headers, body = _fetch(responder, "GET", _get_path(_request(responder, 5, issuer=external)))
    assert status == 200 and headers["content-type"] == "application/ocsp-response"
    assert headers["cache-control"] == "no-store"
    assert ocsp.load_der_ocsp_response(body).response_status is expected


@pytest.mark.parametrize(
    ("method", "path", "body", "expected"),
    [
        ("POST", "/ocsp", b"\x30" * (10 * 1024 + 1), 413),
        ("GET", "/ocsp/" + "A" * 20_000, None, 414),
        ("DELETE", "/ocsp", None, 405),
        ("PUT", "/ocsp", b"x", 405),
        ("GET", "/crl/demo.crl", None, 404),
    ],
)
def test_requests_outside_the_protocol_are_refused(
    responder: Responder, method: str, path: str, body: bytes | None, expected: int
) -> None:
    assert _fetch(responder, method, path, body)[0] == expected


def test_keep_alive_answers_two_requests_on_one_connection(responder: Responder) -> None:
    row = _published_leaf(responder, "keepalive.example.com")
    der = _request(responder, int(row.serial_hex, 16))
    conn = responder.connection()
    try:
        conn.request("GET", _get_path(der))
        first = conn.getresponse()
        assert (
            first.status == 200
            and ocsp.load_der_ocsp_response(first.read()).certificate_status is ocsp.OCSPCertStatus.GOOD
        )
        sock = conn.sock
        conn.request("POST", "/ocsp", body=der, headers={"Content-Type": "application/ocsp-request"})
        second = conn.getresponse()
        assert (
            second.status == 200
            and ocsp.load_der_ocsp_response(second.read()).certificate_status is ocsp.OCSPCertStatus.GOOD
        )
        assert conn.sock is sock, "the connection was not kept alive"
    finally:
        conn.close()
