"""The client store keeps every certificate version (certbot's lineages) and switches live/NAME atomically."""

from __future__ import annotations

import json
import os
import shutil
import stat
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ecert.client.store import LocalStore
from ecert.core.errors import Conflict
from tests.integration.test_client_cli import run
from tests.unit.test_client_pki import TestPKI

HOST = "www.example.com"


@pytest.fixture
def pki() -> TestPKI:
    return TestPKI(start=datetime.now(UTC))


def _key_pem() -> tuple[ec.EllipticCurvePrivateKey, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return key, pem


def _add(store: LocalStore, pki: TestPKI, *, force: bool = True) -> x509.Certificate:
    key, pem = _key_pem()
    cert = pki.issue(key.public_key(), [HOST])
    store.write_live("web", cert=cert, chain=[pki.sub], key_pem=pem, meta={"friendly_name": "Web 2026"}, force=force)
    return cert


def test_force_adds_a_version_and_keeps_the_old_one(tmp_path: Path, pki: TestPKI) -> None:
    store = LocalStore(tmp_path / "s")
    first = _add(store, pki, force=False)
    with pytest.raises(Conflict, match="--force"):
        _add(store, pki, force=False)
    second = _add(store, pki)
    assert store.versions("web") == [1, 2]
    assert store.current("web").cert == second and store.current("web").version == 2
    old = x509.load_pem_x509_certificate((tmp_path / "s/archive/web/cert1.pem").read_bytes())
    assert old == first
    live = tmp_path / "s/live/web"
    assert live.is_symlink() and not os.path.isabs(os.readlink(live))
    assert not os.path.isabs(os.readlink(live / "cert.pem"))  # a moved store still works
    assert stat.S_IMODE((tmp_path / "s/archive/web/privkey2.pem").stat().st_mode) == 0o600
    moved = tmp_path / "moved"
    shutil.move(str(tmp_path / "s"), moved)
    assert LocalStore(moved).current("web").cert == second


def test_live_name_is_never_missing_while_versions_switch(tmp_path: Path, pki: TestPKI) -> None:
    store = LocalStore(tmp_path / "s")
    _add(store, pki, force=False)
    misses: list[str] = []
    mixed: list[str] = []
    stop = threading.Event()

    def reader() -> None:
        live = tmp_path / "s/live/web"
        while not stop.is_set():
            try:
                entry = store.live_entry("web")
            except Exception as exc:  # noqa: BLE001 - any failure to read is what the test looks for
                misses.append(repr(exc))
                continue
            full = x509.load_pem_x509_certificates((entry.files or live).joinpath("fullchain.pem").read_bytes())
            if full[0] != entry.cert:
                mixed.append(str(entry.version))
            if not (live / "privkey.pem").exists():
                misses.append("privkey.pem missing")

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for _ in range(30):
            _add(store, pki)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert misses == [] and mixed == []
    assert store.versions("web") == list(range(1, 32))


def test_a_store_of_the_old_layout_is_read_and_migrated(tmp_path: Path, pki: TestPKI) -> None:
    root = tmp_path / "s"
    plain = root / "live/web"
    plain.mkdir(parents=True)
    key, pem = _key_pem()
    old = pki.issue(key.public_key(), [HOST])
    old_pem = old.public_bytes(serialization.Encoding.PEM)
    (plain / "cert.pem").write_bytes(old_pem)
    (plain / "chain.pem").write_bytes(pki.pem(pki.sub))
    (plain / "fullchain.pem").write_bytes(old_pem + pki.pem(pki.sub))
    (plain / "privkey.pem").write_bytes(pem)
    (plain / "meta.json").write_text(json.dumps({"friendly_name": "Old one"}))
    store = LocalStore(root)
    assert store.current("web").cert == old and store.versions("web") == [1]
    new = _add(store, pki)
    assert store.versions("web") == [1, 2] and store.current("web").cert == new
    assert (root / "archive/web/cert1.pem").read_bytes() == old_pem
    assert (root / "archive/web/privkey1.pem").read_bytes() == pem
    assert (root / "live/web").is_symlink()


def test_list_shows_versions_and_the_friendly_name(tmp_path: Path, pki: TestPKI) -> None:
    store = LocalStore(tmp_path / "s")
    _add(store, pki, force=False)
    _add(store, pki)
    r = run(tmp_path / "s", "--json", "list")
    assert r.exit_code == 0, r.output
    [row] = json.loads(r.output)["entries"]
    assert row["versions"] == 2 and row["friendly_name"] == "Web 2026"
    text = run(tmp_path / "s", "list").output
    assert "Web 2026" in text and "Versions" in text
