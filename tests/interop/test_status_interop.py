"""The running service's CRLs, ARL and OCSP answers as OpenSSL, GnuTLS and pkilint judge them.

One uvicorn server on a free 127.0.0.1 port serves a demo CA (real clock: the tools read it).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy import select
from tests.integration.test_revocation import issue_leaf

from ecert.services import publication, revocation
from ecert.services.ca_config import load_hierarchy_config
from ecert.services.ceremony import rollover
from ecert.services.context import Context
from ecert.store.models import CA
from ecert.web.app import create_app

VENV_BIN = Path(sys.executable).parent  # where this interpreter's console scripts are installed
TIMEOUT = 30


@dataclass
class Service:
    url: str
    ctx: Context
    dir: Path

    def pem(self, name: str, cert: x509.Certificate) -> str:
        path = self.dir / f"{name}.pem"
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return str(path)

    def ca(self, role: str, status: str = "active") -> CA:
        with self.ctx.transaction() as s:
            return s.scalar(select(CA).where(CA.role == role, CA.status == status).order_by(CA.id))

    def ca_pem(self, row: CA) -> str:
        return self.pem(row.label, x509.load_der_x509_certificate(row.cert_der))

    def fetch(self, path: str, name: str) -> str:
        with urllib.request.urlopen(self.url + path, timeout=TIMEOUT) as resp:  # noqa: S310 - loopback only
            data = resp.read()
        target = self.dir / name
        target.write_bytes(data)
        return str(target)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def service(sqlite_ctx: Context, tmp_path: Path) -> Iterator[Service]:
    port = _free_port()
    app = create_app(sqlite_ctx.settings, {"ECERT_JOBS": "off"}, context=sqlite_ctx)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield Service(f"http://127.0.0.1:{port}", sqlite_ctx, tmp_path)
    finally:
        server.should_exit = True
        thread.join(15)


def _openssl_ocsp(svc: Service, *target: str) -> tuple[str, str]:
    ov = svc.ca_pem(svc.ca("ov"))
    root = svc.ca_pem(svc.ca("root"))
    out = subprocess.run(
        [
            "openssl",
            "ocsp",
            "-url",
            f"{svc.url}/ocsp",
            "-issuer",
            ov,
            *target,
            "-CAfile",
            root,
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
    return out.stdout, out.stderr


def test_openssl_ocsp_url_reports_good_revoked_and_unknown(service: Service) -> None:
    good, _ = issue_leaf(service.ctx, name="good.example.com")
    bad, _ = issue_leaf(service.ctx, name="bad.example.com")
    revocation.revoke_certificate(
        service.ctx, ca_label=None, serial_hex=bad.serial_hex, reason="keyCompromise", actor="t"
    )
    good_pem = service.pem("good", x509.load_der_x509_certificate(good.der))
    bad_pem = service.pem("bad", x509.load_der_x509_certificate(bad.der))

    out, _ = _openssl_ocsp(service, "-cert", good_pem)
    assert f"{good_pem}: good" in out
    out, _ = _openssl_ocsp(service, "-cert", bad_pem)
    assert f"{bad_pem}: revoked" in out and "Reason: keyCompromise" in out
    out, _ = _openssl_ocsp(service, "-serial", "0x1234567890abcdef")
    assert "0x1234567890abcdef: unknown" in out


def test_gnutls_ocsptool_verifies_the_served_response(service: Service) -> None:
    row, _ = issue_leaf(service.ctx)
    label = service.ca("ov").label
    publication.refresh_ocsp(service.ctx, label)
    leaf = service.pem("leaf", x509.load_der_x509_certificate(row.der))
    ov = service.ca_pem(service.ca("ov"))
    response = service.dir / "resp.der"
    subprocess.run(
        [
            "openssl",
            "ocsp",
            "-url",
            f"{service.url}/ocsp",
            "-issuer",
            ov,
            "-cert",
            leaf,
            "-no_nonce",
            "-noverify",
            "-respout",
            str(response),
        ],
        capture_output=True,
        timeout=TIMEOUT,
        check=True,
    )
    out = subprocess.run(
        ["ocsptool", "--verify-response", "--load-response", str(response), "--load-signer", ov],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Verifying OCSP Response: Success" in out.stdout


def _verify(svc: Service, leaf: str, ov: str, crls: list[str]) -> subprocess.CompletedProcess[str]:
    root = svc.ca_pem(svc.ca("root"))
    args = ["openssl", "verify", "-crl_check_all", "-CAfile", root, "-untrusted", ov]
    for crl in crls:
        args += ["-CRLfile", crl]
    return subprocess.run([*args, leaf], capture_output=True, text=True, timeout=TIMEOUT)


def test_openssl_verify_with_crl_and_arl_refuses_a_revoked_leaf(service: Service) -> None:
    good, _ = issue_leaf(service.ctx, name="good.example.com")
    bad, _ = issue_leaf(service.ctx, name="bad.example.com")
    revocation.revoke_certificate(service.ctx, ca_label=None, serial_hex=bad.serial_hex, reason="superseded", actor="t")
    ov_row, root_row = service.ca("ov"), service.ca("root")
    ov = service.ca_pem(ov_row)
    crls = [
        service.fetch(f"/crl/{ov_row.label}.crl", "ov.crl"),
        service.fetch(f"/crl/{root_row.label}-arl.crl", "root-arl.crl"),
    ]
    for path in crls:  # openssl -CRLfile reads PEM by default
        Path(path).write_bytes(x509.load_der_x509_crl(Path(path).read_bytes()).public_bytes(serialization.Encoding.PEM))
    ok = _verify(service, service.pem("good", x509.load_der_x509_certificate(good.der)), ov, crls)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    refused = _verify(service, service.pem("bad", x509.load_der_x509_certificate(bad.der)), ov, crls)
    assert refused.returncode != 0 and "error 23 at 0 depth" in refused.stdout + refused.stderr


def test_openssl_verify_refuses_a_leaf_under_a_revoked_sub_ca(service: Service) -> None:
    leaf, _ = issue_leaf(service.ctx)
    old = service.ca("ov")
    rollover(service.ctx, load_hierarchy_config(None), "ov")
    revocation.revoke_ca(service.ctx, old.label, "superseded")
    root = service.ca("root")
    crls = [service.fetch(f"/crl/{old.label}.crl", "old.crl"), service.fetch(f"/crl/{root.label}-arl.crl", "arl.crl")]
    for path in crls:
        Path(path).write_bytes(x509.load_der_x509_crl(Path(path).read_bytes()).public_bytes(serialization.Encoding.PEM))
    result = _verify(service, service.pem("leaf", x509.load_der_x509_certificate(leaf.der)), service.ca_pem(old), crls)
    assert result.returncode != 0 and "error 23 at 1 depth" in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("kind", "path_of"),
    [
        ("CRL", lambda s: f"/crl/{s.ca('ov').label}.crl"),
        ("ARL", lambda s: f"/crl/{s.ca('root').label}-arl.crl"),
    ],
)
def test_pkilint_finds_no_error_in_served_crls(service: Service, kind: str, path_of) -> None:  # type: ignore[no-untyped-def]
    leaf, _ = issue_leaf(service.ctx)
    revocation.revoke_certificate(
        service.ctx, ca_label=None, serial_hex=leaf.serial_hex, reason="keyCompromise", actor="t"
    )
    if kind == "ARL":
        rollover(service.ctx, load_hierarchy_config(None), "ov")
        revocation.revoke_ca(service.ctx, service.ca("ov", "retired").label, "superseded")
    der = service.fetch(path_of(service), "served.crl")
    pem = Path(der).with_suffix(".pem")
    pem.write_bytes(x509.load_der_x509_crl(Path(der).read_bytes()).public_bytes(serialization.Encoding.PEM))
    out = subprocess.run(
        [str(VENV_BIN / "lint_crl"), "lint", "-t", kind, "-p", "BR", "-s", "ERROR", str(pem)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("status", ["good", "revoked", "unknown"])
def test_pkilint_finds_no_error_in_served_ocsp_responses(service: Service, status: str) -> None:
    row, _ = issue_leaf(service.ctx)
    if status == "revoked":
        revocation.revoke_certificate(
            service.ctx, ca_label=None, serial_hex=row.serial_hex, reason="superseded", actor="t"
        )
    ov = service.ca_pem(service.ca("ov"))
    target = (
        ["-serial", "0x42"]
        if status == "unknown"
        else ["-cert", service.pem("leaf", x509.load_der_x509_certificate(row.der))]
    )
    response = service.dir / "resp.der"
    subprocess.run(
        [
            "openssl",
            "ocsp",
            "-url",
            f"{service.url}/ocsp",
            "-issuer",
            ov,
            *target,
            "-no_nonce",
            "-noverify",
            "-respout",
            str(response),
        ],
        capture_output=True,
        timeout=TIMEOUT,
        check=True,
    )
    out = subprocess.run(
        [str(VENV_BIN / "lint_ocsp_response"), "lint", "-s", "ERROR", str(response)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stdout + out.stderr
