"""Our CRLs, ARL, OCSP responses and responder certificates as OpenSSL, GnuTLS and pkilint judge them.

The external tools read the wall clock, so the artefacts here are dated a few minutes before
now rather than at a frozen instant.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import shutil
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from pkilint.bin import lint_cabf_serverauth_cert, lint_crl, lint_ocsp_response

from ecert.signer.status import RevokedEntry, build_crl, build_ocsp_response, build_responder_certificate


def _load_hierarchy_helper():
    """Reuse the BR-shaped throwaway hierarchy of the unit tests (one definition, two suites)."""
    name = "_ecert_status_hierarchy"
    if name not in sys.modules:
        path = Path(__file__).resolve().parents[1] / "unit" / "test_status_signing.py"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name].make_hierarchy


make_hierarchy = _load_hierarchy_helper()
BASE = "http://pki.ecert-demo.hk"
OPENSSL = shutil.which("openssl")
OCSPTOOL = shutil.which("ocsptool")
TIMEOUT = 30


@dataclass(frozen=True)
class Files:
    dir: Path

    def __getattr__(self, stem: str) -> str:  # files.crl -> "<dir>/crl.pem"
        for suffix in (".pem", ".der"):
            candidate = self.dir / f"{stem}{suffix}"
            if candidate.exists():
                return str(candidate)
        raise AttributeError(stem)


def _pem_crl(der: bytes) -> bytes:
    return x509.load_der_x509_crl(der).public_bytes(Encoding.PEM)


@pytest.fixture(scope="module", params=["p256", "p384", "rsa"])
def pki(request, tmp_path_factory) -> Files:
    """A hierarchy, its CRLs and ARLs, a responder certificate and three OCSP responses, as files."""
    now = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    h = make_hierarchy(request.param, now=now)
    d = tmp_path_factory.mktemp(f"status-{request.param}")
    for stem, cert in (("root", h.root), ("int", h.int_), ("leaf", h.leaf)):
        (d / f"{stem}.pem").write_bytes(cert.public_bytes(Encoding.PEM))

    week = now + timedelta(days=7)
    leaf_revoked = RevokedEntry(h.leaf.serial_number, now - timedelta(minutes=1), x509.ReasonFlags.key_compromise)
    crls = {
        "crl": dict(entries=[leaf_revoked, RevokedEntry(77, now - timedelta(days=1))]),
        "crl_empty": dict(entries=[]),
        "crl_partition": dict(entries=[leaf_revoked], idp_url=f"{BASE}/crl/tlsca1.crl"),  # = the leaf's CRLDP
        "crl_other_partition": dict(entries=[], idp_url=f"{BASE}/crl/tlsca1-p2.crl"),
    }
    for stem, extra in crls.items():
        der = build_crl(issuer_cert=h.int_, issuer_key=h.int_key, number=3, this_update=now, next_update=week, **extra)
        (d / f"{stem}.pem").write_bytes(_pem_crl(der))
    for stem, entries in (
        (
            "arl",
            [RevokedEntry(h.int_.serial_number, now - timedelta(minutes=1), x509.ReasonFlags.superseded)],
        ),
        ("arl_empty", []),
    ):
        der = build_crl(
            issuer_cert=h.root,
            issuer_key=h.root_key,
            entries=entries,
            number=1,
            this_update=now,
            next_update=now + timedelta(days=365),
            is_arl=True,
        )
        (d / f"{stem}.pem").write_bytes(_pem_crl(der))
    (d / "chain.pem").write_bytes((d / "root.pem").read_bytes() + (d / "int.pem").read_bytes())

    responder_key = ec.generate_private_key(ec.SECP256R1())
    responder = build_responder_certificate(
        issuer_cert=h.int_,
        issuer_key=h.int_key,
        responder_public_key=responder_key.public_key(),
        subject_cn="Ecert Demo TLS CA 1 OCSP Responder",
        not_before=now,
    )
    (d / "responder.pem").write_bytes(responder.public_bytes(Encoding.PEM))
    for status in ("good", "revoked", "unknown"):
        revoked = dict(revoked_at=leaf_revoked.revoked_at, reason=leaf_revoked.reason) if status == "revoked" else {}
        der = build_ocsp_response(
            issuer_cert=h.int_,
            responder_cert=responder,
            responder_key=responder_key,
            cert_serial=h.leaf.serial_number,
            status=status,
            this_update=now,
            next_update=now + timedelta(days=4),
            now=now,
            **revoked,
        )
        (d / f"ocsp_{status}.der").write_bytes(der)
    return Files(d)


def run(*args: str) -> tuple[int, str]:
    done = subprocess.run(args, capture_output=True, text=True, timeout=TIMEOUT, check=False)
    return done.returncode, done.stdout + done.stderr


# --- OpenSSL -------------------------------------------------------------------------------------


def test_openssl_accepts_the_crl_and_arl_signatures(pki):
    assert run(OPENSSL, "crl", "-in", pki.crl, "-noout", "-CAfile", pki.chain) == (0, "verify OK\n")
    assert run(OPENSSL, "crl", "-in", pki.arl, "-noout", "-CAfile", pki.root) == (0, "verify OK\n")


def test_openssl_sees_a_version_2_crl_with_reason(pki):
    rc, text = run(OPENSSL, "crl", "-in", pki.crl, "-noout", "-text")
    assert rc == 0 and "Version 2 (0x1)" in text and "Key Compromise" in text


def _verify(pki: Files, *crls: str, check: str = "-crl_check_all") -> tuple[int, str]:
    args = [
        OPENSSL,
        "verify",
        "-x509_strict",
        "-purpose",
        "sslserver",
        "-verify_hostname",
        "www.ecert-demo.hk",
        "-CAfile",
        pki.root,
        "-untrusted",
        pki.int,
        check,
    ]
    for crl in crls:
        args += ["-CRLfile", crl]
    return run(*args, pki.leaf)


def test_openssl_accepts_a_leaf_listed_nowhere(pki):
    rc, text = _verify(pki, pki.crl_empty, pki.arl_empty)
    assert rc == 0 and text.strip().endswith("OK"), text


def test_openssl_refuses_a_revoked_leaf(pki):
    rc, text = _verify(pki, pki.crl, check="-crl_check")
    assert rc != 0 and "error 23 at 0 depth" in text, text


def test_openssl_refuses_a_leaf_in_the_partitioned_crl(pki):
    rc, text = _verify(pki, pki.crl_partition, pki.arl_empty)
    assert rc != 0 and "error 23 at 0 depth" in text, text


def test_openssl_will_not_use_a_partition_whose_url_is_not_the_leafs_crldp(pki):
    rc, text = _verify(pki, pki.crl_other_partition, pki.arl_empty)
    assert rc != 0 and "error 44 at 0 depth" in text, text  # different CRL scope: no status found


def test_openssl_refuses_a_leaf_under_a_sub_ca_the_arl_revokes(pki):
    rc, text = _verify(pki, pki.crl_empty, pki.arl)
    assert rc != 0 and "error 23 at 1 depth" in text, text


@pytest.mark.parametrize("status", ["good", "revoked", "unknown"])
@pytest.mark.parametrize("trust", ["VAfile", "chain"])
def test_openssl_ocsp_reads_the_status(pki, status, trust):
    trust_args = ["-VAfile", pki.responder] if trust == "VAfile" else ["-verify_other", pki.int]
    rc, text = run(
        OPENSSL,
        "ocsp",
        "-respin",
        getattr(pki, f"ocsp_{status}"),
        "-issuer",
        pki.int,
        "-cert",
        pki.leaf,
        "-no_nonce",
        "-CAfile",
        pki.root,
        *trust_args,
    )
    assert rc == 0, text  # rc is 0 for revoked too: the status is in the text
    assert "Response verify OK" in text
    assert f"leaf.pem: {status}\n" in text
    assert "WARNING" not in text  # e.g. "Status times invalid"
    if status == "revoked":
        assert "Reason: keyCompromise" in text


# --- GnuTLS --------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["good", "revoked", "unknown"])
def test_gnutls_ocsptool_verifies_the_response(pki, status):
    rc, text = run(
        OCSPTOOL,
        "--verify-response",
        "--load-response",
        getattr(pki, f"ocsp_{status}"),
        "--load-signer",
        pki.responder,
    )
    assert rc == 0 and "Verifying OCSP Response: Success." in text, text
    assert f"Certificate Status: {status}" in text


def test_gnutls_ocsptool_refuses_a_tampered_response(pki, tmp_path):
    der = bytearray(Path(pki.ocsp_good).read_bytes())
    der[-3] ^= 0x01  # inside the signature
    (tmp_path / "bad.der").write_bytes(bytes(der))
    rc, text = run(
        OCSPTOOL,
        "--verify-response",
        "--load-response",
        str(tmp_path / "bad.der"),
        "--load-signer",
        pki.responder,
    )
    assert rc != 0 and "Verifying OCSP Response: Success." not in text


# --- pkilint -------------------------------------------------------------------------------------


def _pkilint(main, *args: str) -> tuple[int, str]:
    """Run a pkilint CLI entry point in-process (saves the interpreter start) at ERROR and above."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = main(["lint", *args])
    return rc, out.getvalue()


@pytest.mark.parametrize(("stem", "crl_type"), [("crl", "CRL"), ("crl_partition", "CRL"), ("arl", "ARL")])
def test_pkilint_finds_no_error_in_crls(pki, stem, crl_type):
    rc, text = _pkilint(lint_crl.main, "-t", crl_type, "-p", "BR", "-s", "ERROR", getattr(pki, stem))
    assert (rc, text.strip()) == (0, "")


@pytest.mark.parametrize("status", ["good", "revoked", "unknown"])
def test_pkilint_finds_no_error_in_ocsp_responses(pki, status):
    rc, text = _pkilint(lint_ocsp_response.main, "-s", "ERROR", getattr(pki, f"ocsp_{status}"))
    assert (rc, text.strip()) == (0, "")


def test_pkilint_finds_no_error_or_warning_in_the_responder_certificate(pki):
    rc, text = _pkilint(lint_cabf_serverauth_cert.main, "-t", "OCSP-RESPONDER", "-s", "WARNING", pki.responder)
    assert (rc, text.strip()) == (0, "")


def test_pkilint_does_flag_a_crl_with_a_forbidden_reason(tmp_path):
    """A control: the linter run the same way does report what BR 7.2.2 forbids."""
    h = make_hierarchy("p256")
    now = datetime.now(UTC)
    builder = x509.CertificateRevocationListBuilder(
        issuer_name=h.int_.subject,
        last_update=now,
        next_update=now + timedelta(days=7),
        revoked_certificates=[
            x509.RevokedCertificateBuilder()
            .serial_number(5)
            .revocation_date(now)
            .add_extension(x509.CRLReason(x509.ReasonFlags.certificate_hold), False)
            .build()
        ],
    ).add_extension(x509.CRLNumber(1), False)
    (tmp_path / "hold.pem").write_bytes(builder.sign(h.int_key, hashes.SHA256()).public_bytes(Encoding.PEM))
    rc, text = _pkilint(lint_crl.main, "-t", "CRL", "-p", "BR", "-s", "ERROR", str(tmp_path / "hold.pem"))
    assert rc > 0 and "crl_prohibited_reason_code" in text
