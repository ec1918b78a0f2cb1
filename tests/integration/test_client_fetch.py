"""`ecert ca fetch` against a scripted repository (httpx MockTransport through the ClientDeps seam): a file
that does not match the index's SHA-256 installs nothing; a root is trusted only on purpose."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization

from ecert.cli.subscriber import ClientDeps
from tests.integration.test_client_cli import run
from tests.unit.test_client_pki import TestPKI


def _repository(pki: TestPKI, *, tamper: bool = False) -> httpx.MockTransport:
    der = serialization.Encoding.DER
    files = {
        "/repository/ca/root.pem": pki.pem(pki.root),
        "/repository/ca/sub.pem": pki.pem(pki.sub),
        "/crl/sub.crl": pki.crl(pki.sub, pki.sub_key, []).public_bytes(der),
    }
    index = {
        "schema": 1,
        "certificates": [
            {"role": "root", "name": "Test Root CA 3", "url": "/repository/ca/root.pem",
             "sha256": hashlib.sha256(pki.root.public_bytes(der)).hexdigest()},
            {"role": "ov", "name": "Test Sub CA", "url": "/repository/ca/sub.pem",
             "sha256": hashlib.sha256(pki.sub.public_bytes(der)).hexdigest()},
        ],
        "crls": [{"role": "ov", "kind": "crl", "name": "Test Sub CA CRL", "url": "/crl/sub.crl",
                  "sha256": hashlib.sha256(files["/crl/sub.crl"]).hexdigest()}],
    }  # fmt: skip
    if tamper:
        files["/repository/ca/sub.pem"] = pki.pem(pki.cross)  # a different certificate than the index names

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/repository/index.json":
            return httpx.Response(200, json=index)
        body = files.get(request.url.path)
        return httpx.Response(200, content=body) if body is not None else httpx.Response(404)

    return httpx.MockTransport(handler)


@pytest.fixture
def pki() -> TestPKI:
    return TestPKI(start=datetime.now(UTC))


def _root_sha(pki: TestPKI) -> str:
    return pki.root.fingerprint(hashes.SHA256()).hex()


def test_fetch_with_the_root_fingerprint_installs_everything(tmp_path: Path, pki: TestPKI) -> None:
    deps = ClientDeps(transport=_repository(pki))
    r = run(tmp_path / "s", "ca", "fetch", "https://ca.test/repository/", "--root-sha256", _root_sha(pki), obj=deps)
    assert r.exit_code == 0, r.output
    assert "Installed 2 CA certificates and 1 revocation lists" in r.output
    assert len(list((tmp_path / "s/ca/roots").glob("*.pem"))) == 1
    assert len(list((tmp_path / "s/crl").glob("*.crl"))) == 1


def test_a_file_that_does_not_match_the_index_installs_nothing(tmp_path: Path, pki: TestPKI) -> None:
    deps = ClientDeps(transport=_repository(pki, tamper=True))
    r = run(tmp_path / "s", "ca", "fetch", "https://ca.test", "--yes", obj=deps)
    assert r.exit_code == 1
    assert "does not match the fingerprint the index gives" in r.output
    assert not (tmp_path / "s/ca/roots").exists() or not list((tmp_path / "s/ca/roots").iterdir())


def test_a_root_is_not_trusted_without_a_terminal_or_a_flag(tmp_path: Path, pki: TestPKI) -> None:
    r = run(tmp_path / "s", "ca", "fetch", "https://ca.test", obj=ClientDeps(transport=_repository(pki)))
    assert r.exit_code == 1
    assert "--root-sha256" in r.output
    assert not (tmp_path / "s/ca/roots").exists() or not list((tmp_path / "s/ca/roots").iterdir())
