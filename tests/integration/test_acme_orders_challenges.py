"""The three ACME challenge checks against loopback DNS, HTTP and TLS servers: what passes, what fails and why.

Each failure names the RFC 8555 problem type the client will see (connection, dns, incorrectResponse, tls).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ecert.core.acme_orders import dns01_txt_value
from ecert.validation.acme_dns import check_dns01
from ecert.validation.acme_http import check_http01
from ecert.validation.acme_tlsalpn import ACME_IDENTIFIER_OID, check_tls_alpn01
from ecert.validation.dns import DnsClient
from tests.integration.acme_order_helpers import unique_label
from tests.integration.dcv_fixtures import HttpFileServer, KnotDns

KEY_AUTHZ = "tok-" + "a" * 39 + "." + "b" * 43


def _dns(knot: KnotDns) -> DnsClient:
    return DnsClient((knot.resolver_addr,))


def _host(knot: KnotDns) -> str:
    name = f"{unique_label('chk')}.example.com"
    knot.set_records(name, "A", ["127.0.0.1"])
    return name


@pytest.mark.parametrize(
    ("body", "passed", "problem"),
    [
        (KEY_AUTHZ + "\n", True, None),  # RFC 8555 8.3: trailing whitespace is trimmed
        ("x" + KEY_AUTHZ, False, "incorrectResponse"),  # containing it is not enough: exactly it
        ("something else", False, "incorrectResponse"),
        (KEY_AUTHZ + " " * 150 + "trailing", False, "incorrectResponse"),  # nothing may follow it
    ],
)
def test_http01_wants_exactly_the_key_authorization(
    knot_dns: KnotDns, http_file_server: HttpFileServer, body: str, passed: bool, problem: str | None
) -> None:
    name = _host(knot_dns)
    http_file_server.serve_file(name, body)
    result = check_http01(
        _dns(knot_dns),
        name,
        "tok",
        KEY_AUTHZ,
        http_port=http_file_server.http_port,
        https_port=http_file_server.https_port,
        allow_private=True,
    )
    assert result.passed is passed, result.reason
    assert result.evidence.get("problem") == problem
    assert ("http", name, "/.well-known/acme-challenge/tok") in http_file_server.requests


def test_http01_refuses_loopback_unless_allowed_and_a_redirect_off_the_authorized_ports(
    knot_dns: KnotDns, http_file_server: HttpFileServer
) -> None:
    name = _host(knot_dns)
    http_file_server.serve_file(name, KEY_AUTHZ)
    guarded = check_http01(_dns(knot_dns), name, "tok", KEY_AUTHZ, http_port=http_file_server.http_port)
    assert not guarded.passed and "non-public address" in guarded.reason and guarded.evidence["problem"] == "connection"
    http_file_server.redirect(name, 302, f"http://{name}:1/elsewhere")
    redirected = check_http01(
        _dns(knot_dns),
        name,
        "tok",
        KEY_AUTHZ,
        http_port=http_file_server.http_port,
        https_port=http_file_server.https_port,
        allow_private=True,
    )
    assert not redirected.passed and "not an Authorized Port" in redirected.reason


def test_dns01_finds_the_digest_among_several_records_and_says_when_it_is_missing(knot_dns: KnotDns) -> None:
    name = f"{unique_label('chk')}.example.net"
    missing = check_dns01(_dns(knot_dns), name, dns01_txt_value(KEY_AUTHZ))
    assert not missing.passed and missing.evidence["problem"] == "incorrectResponse"
    knot_dns.add_txt(f"_acme-challenge.{name}", "unrelated")
    knot_dns.add_txt(f"_acme-challenge.{name}", dns01_txt_value(KEY_AUTHZ))
    found = check_dns01(_dns(knot_dns), f"*.{name}", dns01_txt_value(KEY_AUTHZ))  # a wildcard: at its base
    assert found.passed and found.method == "acme-dns-01"


def test_dns01_lookup_failure_is_a_dns_problem() -> None:
    result = check_dns01(DnsClient(("127.0.0.1:9",), timeout=0.3, lifetime=0.6), "x.example.com", "v")
    assert not result.passed and result.evidence["problem"] == "dns"


def _responder(tmp_path: Path, name: str, digest: bytes, *, alpn: bool = True, critical: bool = True) -> Iterator[int]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.UnrecognizedExtension(ACME_IDENTIFIER_OID, b"\x04\x20" + digest), critical=critical)
        .sign(key, hashes.SHA256())
    )
    pem = tmp_path / f"{unique_label()}.pem"
    pem.write_bytes(
        cert.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pem)
    if alpn:
        context.set_alpn_protocols(["acme-tls/1"])
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            try:
                with context.wrap_socket(conn, server_side=True):
                    pass
            except (OSError, ssl.SSLError):
                pass
        listener.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join(2)


@pytest.mark.parametrize(
    ("variant", "passed", "problem"),
    [
        ("good", True, None),
        ("no-alpn", False, "tls"),
        ("wrong-digest", False, "incorrectResponse"),
        ("not-critical", False, "incorrectResponse"),
    ],
)
def test_tls_alpn01_checks_alpn_name_and_the_critical_digest(
    knot_dns: KnotDns, tmp_path: Path, variant: str, passed: bool, problem: str | None
) -> None:
    name = _host(knot_dns)
    digest = hashlib.sha256((KEY_AUTHZ if variant != "wrong-digest" else "other").encode()).digest()
    responder = _responder(tmp_path, name, digest, alpn=variant != "no-alpn", critical=variant != "not-critical")
    port = next(responder)
    try:
        result = check_tls_alpn01(_dns(knot_dns), name, KEY_AUTHZ, port=port, allow_private=True, timeout=3)
    finally:
        next(responder, None)
    assert result.passed is passed, result.reason
    assert result.evidence.get("problem") == problem
