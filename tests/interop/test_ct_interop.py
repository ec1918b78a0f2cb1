"""Certificates with embedded SCTs, judged by tools no one here wrote: OpenSSL's CT validation through nginx,
Debian's certspotter monitoring the test logs, and pkilint's precertificate and final-certificate validators."""

from __future__ import annotations

import base64
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select
from tests.ct_log.fixtures import write_log_list
from tests.ct_log.server import TestLog
from tests.integration.test_client_nginx import nginx_serving

from ecert.core.profiles import CertType, SubjectData
from ecert.services import issuance
from ecert.services.context import Context
from ecert.store.models import CA
from ecert.store.models_ct import Precertificate

VENV_BIN = Path(sys.executable).parent  # where this interpreter's console scripts are installed
HOST = "www.example.com"


def _pem(der: bytes) -> bytes:
    return x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM)


@pytest.fixture
def issued(ct_ctx: Callable[..., Context], ct_logs: Callable[..., TestLog], tmp_path: Path) -> dict[str, object]:
    """A certificate issued with CT on through three test logs of two operators; its files and its logs."""
    logs = [ct_logs("Argon", "Google"), ct_logs("Nimbus", "Cloudflare"), ct_logs("Xenon", "Google")]
    ctx = ct_ctx(logs)
    key = ec.generate_private_key(ec.SECP256R1())
    row = issuance.issue(
        ctx,
        issuance.IssueRequest(
            cert_type=CertType.SERVER,
            names=(HOST,),
            subject=SubjectData("Example Limited"),
            public_key=key.public_key(),
            requested_days=90,
        ),
    )
    with ctx.read() as session:
        issuing = session.get(CA, row.ca_id)
        root = session.scalar(select(CA).where(CA.role == "root"))
        precert = session.scalar(select(Precertificate).where(Precertificate.serial_hex == row.serial_hex))
        assert issuing is not None and root is not None and precert is not None
    files = {
        "leaf": tmp_path / "leaf.pem",
        "fullchain": tmp_path / "fullchain.pem",
        "key": tmp_path / "key.pem",
        "root": tmp_path / "root.pem",
        "precert": tmp_path / "precert.pem",
    }
    files["leaf"].write_bytes(_pem(row.der))
    files["fullchain"].write_bytes(_pem(row.der) + _pem(issuing.cert_der))
    files["key"].write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    files["root"].write_bytes(_pem(root.cert_der))
    files["precert"].write_bytes(_pem(precert.der))
    return {"files": files, "logs": logs, "row": row}


def test_openssl_validates_every_embedded_sct_served_by_nginx(issued: dict[str, object], tmp_path: Path) -> None:
    files: dict[str, Path] = issued["files"]  # type: ignore[assignment]
    logs: list[TestLog] = issued["logs"]  # type: ignore[assignment]
    ctlog = tmp_path / "ct_logs.cnf"
    ctlog.write_text(
        "enabled_logs = "
        + ",".join(f"log{i}" for i in range(len(logs)))
        + "\n"
        + "".join(
            f"[log{i}]\ndescription = {log.name}\nkey = {base64.b64encode(log.key_der).decode()}\n"
            for i, log in enumerate(logs)
        )
    )
    # OpenSSL judges SCT times against the TLS session's start in whole seconds (ssl_validate_ct), so an SCT
    # from the same second counts as "future": serve the certificate once its SCTs are a second old.
    newest = max(
        s.timestamp
        for s in x509.load_pem_x509_certificate(files["leaf"].read_bytes())
        .extensions.get_extension_for_class(x509.PrecertificateSignedCertificateTimestamps)
        .value
    )
    time.sleep(max(0.0, (newest - datetime.now(UTC).replace(tzinfo=None)).total_seconds() + 1.1))
    with nginx_serving(tmp_path / "nginx", files["fullchain"], files["key"], HOST) as port:
        out = subprocess.run(
            [
                "openssl",
                "s_client",
                "-connect",
                f"127.0.0.1:{port}",
                "-servername",
                HOST,
                "-ct",
                "-ctlogfile",
                str(ctlog),
                "-CAfile",
                str(files["root"]),
            ],
            input="",
            capture_output=True,
            text=True,
            timeout=30,
        )
    text = out.stdout + out.stderr
    statuses = [line.split(":", 1)[1].strip() for line in text.splitlines() if "SCT validation status" in line]
    # openssl exits 0 on invalid SCTs too: the verdict is in the output.
    assert statuses == ["valid", "valid"], text
    assert "Verify return code: 0 (ok)" in text, text


def test_certspotter_finds_the_precertificate_in_the_test_logs(issued: dict[str, object], tmp_path: Path) -> None:
    logs: list[TestLog] = issued["logs"]  # type: ignore[assignment]
    row = issued["row"]
    log_list = write_log_list(tmp_path / "monitor.json", logs)
    watch = tmp_path / "watchlist"
    watch.write_text(f"{HOST}\n")
    proc = subprocess.Popen(
        [
            "certspotter",
            "-logs",
            str(log_list),
            "-watchlist",
            str(watch),
            "-state_dir",
            str(tmp_path / "certspotter"),
            "-stdout",
            "-verbose",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        saved = tmp_path / "certspotter" / "certs"
        while time.monotonic() < deadline and not list(saved.rglob("*.pem")):
            time.sleep(0.2)
        time.sleep(0.5)
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
    assert f"DNS Name = {HOST}" in out, out
    found = [x509.load_pem_x509_certificate(p.read_bytes()) for p in saved.rglob("*.pem")]
    assert any(c.serial_number == int(row.serial_hex, 16) for c in found), out  # type: ignore[attr-defined]
    problems = [line for line in out.splitlines() if "rror" in line and "context canceled" not in line]
    assert problems == [], out  # it checked each log's tree against the signed tree head


@pytest.mark.parametrize(("name", "lint_type"), [("precert", "OV-PRE-CERTIFICATE"), ("leaf", "OV-FINAL-CERTIFICATE")])
def test_pkilint_finds_no_error_in_precertificate_or_final(
    issued: dict[str, object], name: str, lint_type: str
) -> None:
    files: dict[str, Path] = issued["files"]  # type: ignore[assignment]
    out = subprocess.run(
        [str(VENV_BIN / "lint_cabf_serverauth_cert"), "lint", "-t", lint_type, "-s", "ERROR", str(files[name])],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_openssl_verify_still_passes_through_the_root(issued: dict[str, object]) -> None:
    files: dict[str, Path] = issued["files"]  # type: ignore[assignment]
    out = subprocess.run(
        [
            "openssl",
            "verify",
            "-x509_strict",
            "-purpose",
            "sslserver",
            "-verify_hostname",
            HOST,
            "-CAfile",
            str(files["root"]),
            "-untrusted",
            str(files["fullchain"]),
            str(files["leaf"]),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0 and ": OK" in out.stdout, out.stdout + out.stderr
