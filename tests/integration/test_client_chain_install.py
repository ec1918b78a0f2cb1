"""Completing a request before its issuing CA is installed, then `ecert ca install`: the live chain files
are rebuilt, deploy and export build the chain from what is installed now, refuse an incomplete chain in
one line, and name the cross-certificate only when a real one is appended."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from tests.integration.test_client_cli import HOST, run
from tests.unit.test_client_pki import TestPKI

FORMATS = ["nginx", "apache", "haproxy", "pem", "pfx", "jks"]


@pytest.fixture
def pki() -> TestPKI:
    return TestPKI(start=datetime.now(UTC))


@pytest.fixture
def early(tmp_path: Path, pki: TestPKI) -> Path:
    """A store where the CA's .cer (the leaf alone) was completed before any CA certificate was installed."""
    store = tmp_path / "store"
    assert run(store, "request", "new", "web", "--name", HOST, "--key-type", "p256", "--no-encrypt").exit_code == 0
    csr = x509.load_pem_x509_csr((store / "pending/web/request.csr").read_bytes())
    (tmp_path / "web.cer").write_bytes(pki.issue(csr, [HOST]).public_bytes(serialization.Encoding.DER))
    r = run(store, "request", "complete", str(tmp_path / "web.cer"))
    assert r.exit_code == 0, r.output
    assert "is not installed" in r.output  # completion says the chain is not there yet
    for name, cert in (("sub", pki.sub), ("root", pki.root), ("cross", pki.cross)):
        (tmp_path / f"{name}.pem").write_bytes(pki.pem(cert))
    return store


def install(store: Path, *names: str) -> str:
    output = ""
    for name in names:
        r = run(store, "ca", "install", str(store.parent / f"{name}.pem"))
        assert r.exit_code == 0, r.output
        output += r.output
    return output


def pem_certs(path: Path) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(path.read_bytes()) if path.read_bytes().strip() else []


def deploy(store: Path, fmt: str, *extra: str):
    out = store.parent / f"out-{fmt}"
    pw = store.parent / "pw"
    pw.write_text("deploy-pass\n")
    r = run(store, "deploy", "web", "--format", fmt, "--out", str(out), "--password-file", str(pw), *extra)
    return r, out


def served_after_leaf(out: Path, fmt: str) -> list[x509.Certificate]:
    """The CA certificates each format carries after the server's own certificate."""
    if fmt in ("nginx", "apache", "pem"):
        return pem_certs(out / "fullchain.pem")[1:]
    if fmt == "haproxy":
        return pem_certs(out / "web.pem")[1:]
    bundle = pkcs12.load_pkcs12((out / "web.pfx").read_bytes(), b"deploy-pass")
    return [c.certificate for c in bundle.additional_certs]


def test_ca_install_after_completion_rebuilds_the_live_chain_files(early: Path, pki: TestPKI) -> None:
    live = early / "live/web"
    assert pem_certs(live / "chain.pem") == []
    out = install(early, "sub")
    assert "Updated the chain of web" in out
    assert pem_certs(live / "chain.pem") == [pki.sub]
    install(early, "root")
    leaf = pem_certs(live / "cert.pem")[0]
    assert pem_certs(live / "fullchain.pem") == [leaf, pki.sub]
    assert json.loads((live / "meta.json").read_text())["chain_complete"] is True


@pytest.mark.parametrize("fmt", FORMATS)
def test_deploy_refuses_a_chain_that_stops_short_in_one_line(early: Path, fmt: str) -> None:
    r, out = deploy(early, fmt)
    assert r.exit_code == 1
    [line] = [ln for ln in r.output.splitlines() if ln.strip()]
    assert line.startswith("error: the chain of web is incomplete")
    assert "'Test e-Cert SSL CA 3 - 17' is not installed" in line and "ecert ca install" in line
    assert "cross" not in line
    assert not out.exists()


@pytest.mark.parametrize("fmt", FORMATS)
def test_deploy_after_installing_the_cas_serves_them_and_the_real_cross_certificate(
    early: Path, pki: TestPKI, fmt: str
) -> None:
    install(early, "sub", "root")
    r, out = deploy(early, fmt)
    assert r.exit_code == 0, r.output
    assert "Chain: Test e-Cert SSL CA 3 - 17 — not via a cross-certificate" in r.output
    if fmt != "jks":
        assert served_after_leaf(out, fmt) == [pki.sub]
    install(early, "cross")
    r, out = deploy(early, fmt, "--force")
    assert r.exit_code == 0, r.output
    assert "Chain: Test e-Cert SSL CA 3 - 17 → Test Root CA 3 — via the cross-certificate" in r.output
    if fmt != "jks":
        assert served_after_leaf(out, fmt) == [pki.sub, pki.cross]


def test_no_cross_with_an_incomplete_chain_is_refused_not_written_leaf_only(early: Path) -> None:
    r, out = deploy(early, "nginx", "--no-cross")
    assert r.exit_code == 1 and "ecert ca install" in r.output
    assert not (out / "fullchain.pem").exists()


def test_allow_incomplete_chain_goes_on_with_a_warning(early: Path) -> None:
    r, out = deploy(early, "nginx", "--allow-incomplete-chain")
    assert r.exit_code == 0, r.output
    assert "warning: the chain of web is incomplete" in r.stderr
    assert len(pem_certs(out / "fullchain.pem")) == 1


def test_export_builds_the_chain_from_the_installed_cas(early: Path, pki: TestPKI) -> None:
    pw = early.parent / "pfxpw"
    pw.write_text("pfx-pass\n")
    pfx = early.parent / "backup.pfx"
    r = run(early, "export", "web", "--pfx", str(pfx), "--password-file", str(pw))
    assert r.exit_code == 1 and "ecert ca install" in r.output and not pfx.exists()
    install(early, "sub", "root")
    r = run(early, "export", "web", "--pfx", str(pfx), "--password-file", str(pw))
    assert r.exit_code == 0, r.output
    bundle = pkcs12.load_pkcs12(pfx.read_bytes(), b"pfx-pass")
    assert [c.certificate for c in bundle.additional_certs] == [pki.sub, pki.root]

    # The backup restores into an empty store that can deploy at once (the root comes along, untrusted).
    store2 = early.parent / "store2"
    r = run(store2, "import", str(pfx), "--name", "web", "--password-file", str(pw), "--no-encrypt")
    assert r.exit_code == 0, r.output
    r, out = deploy(store2, "nginx")
    assert r.exit_code == 0, r.output
    assert served_after_leaf(out, "nginx") == [pki.sub]
    assert not any(c["root"] for c in json.loads(run(store2, "--json", "ca", "list").output)["cas"])
