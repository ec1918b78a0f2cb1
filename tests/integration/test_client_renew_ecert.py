"""`ecert acme register` and `ecert renew`'s ARI check against ecert's own ACME server (orders are not built yet).

The account is bound with EAB credentials the operator made for an application; the certificate to renew
comes straight from the issuance pipeline into that application, as the portal would give it, and is put
in the subscriber's store as a lineage with no ACME history: the case of a portal customer moving to ACME.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from ecert.cli import client_shared
from ecert.client.store import LocalStore
from ecert.services import revocation
from ecert.store import applications as store_apps
from tests.integration.acme_ca_fixtures import issue_to
from tests.integration.acme_fixtures import AcmeServer, add_application, new_eab
from tests.integration.test_client_cli import run


def _register(store: Path, server: AcmeServer, kid: str, hmac_key: str):  # type: ignore[no-untyped-def]
    return run(
        store, "acme", "register", "--server", server.directory_url, "--eab-kid", kid, "--eab-hmac-key", hmac_key
    )


@pytest.fixture
def lineage(tmp_path: Path, sqlite_acme_ca: AcmeServer, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, str]:
    """A store with an account bound to an application and that application's certificate as 'web'."""
    server = sqlite_acme_ca
    monkeypatch.setattr(client_shared, "now", server.clock)
    reference = add_application(server.ctx)
    made = new_eab(server.ctx, reference)
    store = tmp_path / "store"
    r = _register(store, server, made.kid, made.hmac_key)
    assert r.exit_code == 0, r.output
    with server.ctx.read() as session:
        app = store_apps.get_application_by_reference(session, reference)
        assert app is not None
        app_id, name = app.id, app.server_name
    issued = issue_to(server.ctx, app_id, name)
    key_pem = issued.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    LocalStore(store).write_live("web", cert=issued.certificate, chain=[], key_pem=key_pem, meta={})
    return store, issued.serial_hex


def test_register_with_ecerts_eab_stores_the_account(lineage: tuple[Path, str], sqlite_acme_ca: AcmeServer) -> None:
    store, _ = lineage
    listed = json.loads(run(store, "--json", "acme", "list").output)["accounts"]
    assert [a["directory"] for a in listed] == [sqlite_acme_ca.directory_url]
    assert listed[0]["account"].startswith(sqlite_acme_ca.url("acct/"))


def test_a_wrong_hmac_key_is_refused_by_ecert_with_a_clear_error(tmp_path: Path, sqlite_acme_ca: AcmeServer) -> None:
    made = new_eab(sqlite_acme_ca.ctx)
    r = _register(tmp_path / "s", sqlite_acme_ca, made.kid, "B" * 43)
    assert r.exit_code == 1
    assert "refused the account" in r.output and "--eab-hmac-key" in r.output
    assert not (tmp_path / "s" / "accounts").exists() or not list((tmp_path / "s" / "accounts").rglob("account.json"))


def test_ecerts_ari_window_says_not_yet_then_now_after_revocation(
    lineage: tuple[Path, str], sqlite_acme_ca: AcmeServer
) -> None:
    store, serial_hex = lineage
    r = run(store, "--json", "renew", "web", "--check")
    assert r.exit_code == 3, r.output
    out = json.loads(r.output)["results"][0]
    assert out["status"] == "not-yet" and out["decided_by"] == "ari"
    revocation.revoke_certificate(
        sqlite_acme_ca.ctx, ca_label=None, serial_hex=serial_hex, reason="superseded", actor="test"
    )
    r = run(store, "--json", "renew", "web", "--check")
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)["results"][0]
    assert out["status"] == "due" and out["decided_by"] == "ari"
    assert LocalStore(store).versions("web") == [1]
