"""`ecert acme register` and `ecert renew` against Pebble on loopback: EAB, http-01 and dns-01, versions, redeploy."""

from __future__ import annotations

import datetime as dt
import functools
import json
import stat
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ecert.cli import client_shared
from ecert.client.store import LocalStore
from tests.integration.pebble_fixtures import EAB_HMAC_KEY, EAB_KID, Pebble, free_port, start_pebble, write_dns_hook
from tests.integration.test_client_cli import run
from tests.unit.test_client_pki import TestPKI

HOST = "web.renew.example.com"
LATER = dt.timedelta(days=61)  # past two thirds of Pebble's 90-day certificates


@pytest.fixture(scope="module")
def pebble(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pebble]:
    yield from start_pebble(tmp_path_factory.mktemp("pebble"))


def register(store: Path, pebble: Pebble, hmac_key: str = EAB_HMAC_KEY):  # type: ignore[no-untyped-def]
    return run(
        store,
        "acme",
        "register",
        "--server",
        pebble.directory_url,
        "--ca-bundle",
        str(pebble.tls_root),
        "--eab-kid",
        EAB_KID,
        "--eab-hmac-key",
        hmac_key,
        "--email",
        "admin@renew.example.com",
    )


def standalone(pebble: Pebble) -> list[str]:
    return ["--http-01-port", str(pebble.http_port), "--http-01-address", "127.0.0.1"]


@pytest.fixture
def issued(tmp_path: Path, pebble: Pebble) -> Path:
    """A store with an account, Pebble's root installed, and 'web' issued by Pebble and deployed for nginx."""
    store = tmp_path / "store"
    assert register(store, pebble).exit_code == 0
    (tmp_path / "pebble-root.pem").write_bytes(pebble.ca_pem("roots"))
    assert run(store, "ca", "install", str(tmp_path / "pebble-root.pem")).exit_code == 0
    r = run(store, "acme", "order", "web", "--name", HOST, "--name", f"www.{HOST}", *standalone(pebble))
    assert r.exit_code == 0, r.output
    r = run(store, "deploy", "web", "--format", "nginx", "--out", str(tmp_path / "nginx"))
    assert r.exit_code == 0, r.output
    return store


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_register_with_eab_stores_a_p256_account_key_0600(tmp_path: Path, pebble: Pebble) -> None:
    store = tmp_path / "store"
    r = register(store, pebble)
    assert r.exit_code == 0, r.output
    assert "Registered https://127.0.0.1" in r.output
    accounts = list((store / "accounts").glob("*/*/account.json"))
    assert len(accounts) == 1 and accounts[0].parent.parent.name == f"127.0.0.1_{pebble.port}"
    key = accounts[0].parent / "key.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert b"BEGIN PRIVATE KEY" in key.read_bytes()
    record = json.loads(accounts[0].read_text())
    assert record["eab_kid"] == EAB_KID and EAB_HMAC_KEY not in accounts[0].read_text()
    listed = run(store, "--json", "acme", "list")
    assert json.loads(listed.output)["accounts"][0]["account"] == record["uri"]


def test_register_with_a_wrong_hmac_key_is_refused_and_stores_nothing(tmp_path: Path, pebble: Pebble) -> None:
    store = tmp_path / "store"
    wrong = "A" * 43
    r = register(store, pebble, hmac_key=wrong)
    assert r.exit_code == 1
    assert "refused the account" in r.output and "--eab-hmac-key" in r.output
    assert not list((store / "accounts").glob("*/*/account.json")) if (store / "accounts").exists() else True


def test_register_without_eab_is_refused_before_anything_is_sent(tmp_path: Path, pebble: Pebble) -> None:
    r = run(tmp_path / "s", "acme", "register", "--server", pebble.directory_url, "--ca-bundle", str(pebble.tls_root))
    assert r.exit_code == 1 and "requires External Account Binding" in r.output


def test_not_due_exits_0_and_touches_no_file(issued: Path, tmp_path: Path) -> None:
    nginx = tmp_path / "nginx" / "fullchain.pem"
    before = (nginx.read_bytes(), nginx.stat().st_mtime_ns)
    r = run(issued, "--json", "renew", "web", "--http-01-port", "1")
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)["results"][0]
    assert out["status"] == "not-due" and out["decided_by"] == "lifetime"
    assert (nginx.read_bytes(), nginx.stat().st_mtime_ns) == before
    assert sorted(p.name for p in (issued / "archive/web").glob("cert*.pem")) == ["cert1.pem"]


def test_due_renews_by_http01_standalone_new_key_new_version_redeployed(
    issued: Path, tmp_path: Path, pebble: Pebble, monkeypatch: pytest.MonkeyPatch
) -> None:
    old_cert = _cert(issued / "live/web/cert.pem")
    old_key = (issued / "live/web/privkey.pem").read_bytes()
    monkeypatch.setattr(client_shared, "now", lambda: dt.datetime.now(dt.UTC) + LATER)
    r = run(issued, "renew", "web", *standalone(pebble))
    assert r.exit_code == 0, r.output
    assert "renewed, version 2" in r.output
    new_cert = _cert(issued / "live/web/cert.pem")
    assert new_cert.serial_number != old_cert.serial_number
    assert (issued / "live/web/privkey.pem").read_bytes() != old_key  # a new key by default
    assert _cert(issued / "archive/web/cert1.pem") == old_cert  # the old version is kept
    assert (issued / "archive/web/privkey1.pem").read_bytes() == old_key
    nginx = tmp_path / "nginx"
    assert _cert(nginx / "fullchain.pem") == new_cert  # the nginx files were written again
    assert (nginx / "privkey.pem").read_bytes() != old_key
    assert stat.S_IMODE((nginx / "privkey.pem").stat().st_mode) == 0o600
    assert str(nginx / "fullchain.pem") in r.output or "deployed nginx" in r.output


def test_renew_by_dns01_hook_and_reuse_key(
    issued: Path, tmp_path: Path, pebble: Pebble, monkeypatch: pytest.MonkeyPatch
) -> None:
    hook = write_dns_hook(tmp_path, pebble)
    old_key = (issued / "live/web/privkey.pem").read_bytes()
    r = run(issued, "--json", "renew", "web", "--force", "--reuse-key", "--dns-hook", str(hook))
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)["results"][0]
    assert out["status"] == "renewed" and out["decided_by"] == "force" and out["version"] == 2
    calls = (tmp_path / "dns-hook.log").read_text().splitlines()
    adds = sorted(c.split()[1] for c in calls if c.startswith("add "))
    assert adds == [f"_acme-challenge.{HOST}", f"_acme-challenge.www.{HOST}"]
    assert sum(c.startswith("del ") for c in calls) == 2  # cleaned up after
    assert (issued / "live/web/privkey.pem").read_bytes() == old_key
    assert out["deployed"][0]["format"] == "nginx" and not out["deployed"][0]["error"]


def _backdated_lineage(store: Path, name: str, names: list[str]) -> x509.Certificate:
    """A certificate the portal issued 80 days ago for 90 days (due), stored as a lineage with no ACME record."""
    key = ec.generate_private_key(ec.SECP256R1())
    pki = TestPKI(start=dt.datetime.now(dt.UTC) - dt.timedelta(days=80))
    cert = pki.issue(key.public_key(), names, days=90)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    LocalStore(store).write_live(name, cert=cert, chain=[pki.sub], key_pem=pem, meta={"friendly_name": name})
    return cert


def test_renew_all_renews_only_the_due_ones(issued: Path, tmp_path: Path, pebble: Pebble) -> None:
    old = _backdated_lineage(issued, "portal", [f"portal.{HOST}"])
    web_before = (issued / "live/web/cert.pem").read_bytes()
    r = run(issued, "--json", "renew", "--all", *standalone(pebble))
    assert r.exit_code == 0, r.output
    results = {x["name"]: x for x in json.loads(r.output)["results"]}
    assert results["portal"]["status"] == "renewed" and results["portal"]["decided_by"] == "lifetime"
    assert results["web"]["status"] == "not-due"
    assert (issued / "live/web/cert.pem").read_bytes() == web_before
    assert _cert(issued / "archive/portal/cert1.pem") == old
    renewed = _cert(issued / "live/portal/cert.pem")
    assert renewed.issuer != old.issuer  # now from the ACME server, the lineage remembers it
    meta = json.loads((issued / "live/portal/meta.json").read_text())
    assert meta["acme"]["directory"] == pebble.directory_url and meta["version"] == 2
    again = run(issued, "--json", "renew", "--all", *standalone(pebble))
    assert {x["status"] for x in json.loads(again.output)["results"]} == {"not-due"}


def test_renew_fails_with_exit_1_when_validation_fails(issued: Path, pebble: Pebble) -> None:
    """Nobody answers http-01 on the port Pebble checks: the CA's reason is shown and nothing is stored."""
    r = run(issued, "renew", "web", "--force", "--http-01-port", str(free_port()), "--http-01-address", "127.0.0.1")
    assert r.exit_code == 1
    assert "web: FAILED: the ACME server could not validate" in r.output
    assert HOST in r.output
    assert sorted(p.name for p in (issued / "archive/web").glob("cert*.pem")) == ["cert1.pem"]


class _QuietFiles(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass


@pytest.fixture
def web_server(tmp_path: Path, pebble: Pebble) -> Iterator[Path]:
    """A plain web server on the port Pebble checks, serving a web root (what nginx would do)."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(_QuietFiles, directory=str(root))
    server = ThreadingHTTPServer(("127.0.0.1", pebble.http_port), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root
    finally:
        server.shutdown()
        server.server_close()


def test_renew_by_http01_webroot_leaves_no_token_behind(issued: Path, web_server: Path) -> None:
    r = run(issued, "--json", "renew", "web", "--force", "--webroot", str(web_server))
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["results"][0]["version"] == 2
    challenge_dir = web_server / ".well-known" / "acme-challenge"
    assert challenge_dir.is_dir() and not list(challenge_dir.iterdir())


def test_deploy_records_each_format_once_and_renew_writes_them_all(
    issued: Path, tmp_path: Path, pebble: Pebble
) -> None:
    again = run(issued, "deploy", "web", "--format", "nginx", "--out", str(tmp_path / "nginx"), "--force")
    assert again.exit_code == 0, again.output
    (tmp_path / "pw").write_text("s3cret\n")
    pfx = run(
        issued,
        "deploy",
        "web",
        "--format",
        "pfx",
        "--out",
        str(tmp_path / "iis"),
        "--password-file",
        str(tmp_path / "pw"),
    )
    assert pfx.exit_code == 0, pfx.output
    records = json.loads((issued / "live/web/meta.json").read_text())["deploys"]
    assert [(d["format"], d["out"]) for d in records] == [
        ("nginx", str(tmp_path / "nginx")),
        ("pfx", str(tmp_path / "iis")),
    ]
    assert "s3cret" not in (issued / "live/web/meta.json").read_text()
    hook = write_dns_hook(tmp_path, pebble)
    r = run(issued, "--json", "renew", "web", "--force", "--dns-hook", str(hook))
    assert r.exit_code == 0, r.output
    deployed = json.loads(r.output)["results"][0]["deployed"]
    assert [(d["format"], d["error"]) for d in deployed] == [("nginx", None), ("pfx", None)]
    from cryptography.hazmat.primitives.serialization import pkcs12

    restored = pkcs12.load_pkcs12((tmp_path / "iis" / "web.pfx").read_bytes(), b"s3cret")
    assert restored.cert is not None and restored.cert.certificate == _cert(issued / "live/web/cert.pem")
    assert json.loads((issued / "live/web/meta.json").read_text())["deploys"] == records  # carried to version 2


def test_deploy_hook_runs_after_renewal_is_remembered_and_its_failure_exits_1(
    issued: Path, tmp_path: Path, pebble: Pebble
) -> None:
    log = tmp_path / "reloads.log"
    hook = tmp_path / "reload"
    hook.write_text(f'#!/bin/sh\necho "$ECERT_RENEWED_NAME $ECERT_RENEWED_LINEAGE $1" >> {log}\nexit "${{2:-0}}"\n')
    hook.chmod(0o755)
    dns = write_dns_hook(tmp_path, pebble)
    r = run(issued, "renew", "web", "--force", "--dns-hook", str(dns), "--deploy-hook", f"{hook} nginx")
    assert r.exit_code == 0, r.output
    assert log.read_text().splitlines() == [f"web {issued / 'live' / 'web'} nginx"]
    r = run(issued, "renew", "web", "--force", "--dns-hook", str(dns))  # remembered from the last renewal
    assert r.exit_code == 0, r.output
    assert len(log.read_text().splitlines()) == 2
    r = run(issued, "renew", "web", "--force", "--dns-hook", str(dns), "--deploy-hook", f"{hook} nginx 7")
    assert r.exit_code == 1  # renewed, but the server was not reloaded: the cron job must hear of it
    assert "renewed, version 4" in r.output and "the deploy hook exited with 7" in r.output


def test_a_second_renew_while_one_runs_is_refused(issued: Path) -> None:
    import fcntl

    with open(issued / ".renew.lock", "a+b") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        r = run(issued, "renew", "web", "--force", "--http-01-port", "1")
    assert r.exit_code == 1 and "another 'ecert renew' is running" in r.output
    assert LocalStore(issued).versions("web") == [1]
