"""keyChange (RFC 8555 7.3.5) on SQLite and PostgreSQL: the account moves to a new key that no other account
holds; each malformed rollover is refused with a problem, audited, and leaves the account's key as it was.
uacme (Debian, a client no one here wrote) rolls its key over with ``newkey`` and revokes with ``revoke``."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import josepy as jose
import pytest
from acme import jws as acme_jws
from sqlalchemy import select

from ecert.store.models import AuditEvent
from ecert.store.models_acme import AcmeAccount
from tests.integration.acme_ca_fixtures import issue_to, subscriber
from tests.integration.acme_fixtures import (
    AcmeServer,
    Client,
    add_application,
    assert_refused,
    ec_key,
    new_eab,
    nonce_of,
)


def inner_jws(
    client: Client,
    new_key: jose.JWK,
    *,
    url: str | None = None,
    account: str | None = None,
    old_key: jose.JWK | None = None,
    nonce: bytes | None = None,
    signer: jose.JWK | None = None,
) -> dict[str, Any]:
    """The inner JWS of RFC 8555 7.3.5, built with certbot's acme.jws; each argument breaks one rule."""
    payload = {"account": account or client.kid, "oldKey": (old_key or client.key).public_key().to_partial_json()}
    signing = signer or new_key
    alg = jose.RS256 if isinstance(signing, jose.JWKRSA) else jose.ES256
    signed = acme_jws.JWS.sign(
        json.dumps(payload).encode(), key=signing, alg=alg, nonce=nonce, url=url or client.url("key-change")
    )
    out = dict(signed.to_partial_json(flat=True))
    if signer is not None:  # present the new key as jwk while another key signed
        header = json.loads(jose.b64decode(out["protected"]))
        header["jwk"] = new_key.public_key().to_partial_json()
        out["protected"] = jose.b64encode(json.dumps(header).encode()).decode()
    return out


def roll(client: Client, inner: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    url = client.url("key-change")
    body = client.jws(url, inner)
    return client.post(url, body), body


def key_of(server: AcmeServer, account_url: str) -> str:
    with server.ctx.read() as session:
        row = session.get(AcmeAccount, int(account_url.rsplit("/", 1)[1]))
        assert row is not None
        return row.key_thumbprint


def test_rollover_moves_the_account_to_the_new_key(acme_ca: AcmeServer) -> None:
    sub = subscriber(acme_ca)
    client = sub.client
    new_key = ec_key()
    response, _ = roll(client, inner_jws(client, new_key))
    assert response.status_code == 200, response.text
    assert response.headers["Location"] == client.kid
    old_key, client.key = client.key, new_key
    assert client.post(str(client.kid), client.jws(str(client.kid), None)).status_code == 200
    client.key = old_key  # the old key no longer speaks for the account
    body = client.jws(str(client.kid), None)
    assert_refused(client.post(str(client.kid), body), 400, "malformed", nonce_of(body))
    with acme_ca.ctx.read() as session:
        event = session.scalars(select(AuditEvent).where(AuditEvent.event == "acme.account.key_changed")).one()
    assert event.subject == client.kid.rsplit("/", 1)[1]


def test_new_key_of_another_account_is_a_conflict_with_its_location(acme_ca: AcmeServer) -> None:
    mine, theirs = subscriber(acme_ca), subscriber(acme_ca)
    before = key_of(acme_ca, str(mine.client.kid))
    response, body = roll(mine.client, inner_jws(mine.client, theirs.client.key))
    assert_refused(response, 409, "malformed", nonce_of(body))
    assert response.headers["Location"] == theirs.client.kid
    assert key_of(acme_ca, str(mine.client.kid)) == before


BROKEN: dict[str, Callable[[Client, jose.JWK], dict[str, Any]]] = {
    "oldKey is another key": lambda c, k: inner_jws(c, k, old_key=ec_key()),
    "url of another resource": lambda c, k: inner_jws(c, k, url=c.url("new-account")),
    "account of another account": lambda c, k: inner_jws(c, k, account=c.url("acct/999999")),
    "inner nonce": lambda c, k: inner_jws(c, k, nonce=b"0123456789abcdef"),
    "signed by a key other than its jwk": lambda c, k: inner_jws(c, k, signer=ec_key()),
    "inner unprotected header": lambda c, k: {**inner_jws(c, k), "header": {"kid": "x"}},
    "inner is not a JWS": lambda c, k: {"account": c.kid},
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_malformed_rollover_is_refused_and_changes_nothing(acme_ca: AcmeServer, case: str) -> None:
    sub = subscriber(acme_ca)
    before = key_of(acme_ca, str(sub.client.kid))
    response, body = roll(sub.client, BROKEN[case](sub.client, ec_key()))
    assert_refused(response, 400, "malformed", nonce_of(body))
    assert key_of(acme_ca, str(sub.client.kid)) == before


# --- uacme ------------------------------------------------------------------------------------------


def uacme(server: AcmeServer, confdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """uacme speaks to the loopback server over plain HTTP, so it needs no CA bundle (it has no option for one:
    libcurl-gnutls reads only the system store); -y accepts the terms, -v logs what it sends."""
    binary = shutil.which("uacme")
    assert binary, "uacme is missing: apt-get install uacme (scripts/system-packages.txt)"
    return subprocess.run(
        [binary, "-v", "-y", "-a", server.directory_url, "-c", str(confdir), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_uacme_registers_with_eab_rolls_its_key_and_revokes(sqlite_acme_ca: AcmeServer, tmp_path: Path) -> None:
    server = sqlite_acme_ca
    reference = add_application(server.ctx)
    made = new_eab(server.ctx, reference)
    confdir = tmp_path / "uacme"
    created = uacme(server, confdir, "-e", f"{made.kid}:{made.hmac_key}", "new", "admin@example.com")
    assert created.returncode == 0, created.stderr
    with server.ctx.read() as session:
        account = session.scalars(select(AcmeAccount)).one()
    first_key = account.key_thumbprint
    rolled = uacme(server, confdir, "newkey")
    assert rolled.returncode == 0, rolled.stderr
    assert key_of(server, f"x/{account.id}") != first_key
    # the rolled account revokes a certificate of its application (RFC 8555 7.6 with kid)
    with server.ctx.read() as session:
        app_id = account.application_id
        from ecert.store import applications as store_apps

        name = store_apps.get_application(session, app_id).server_name  # type: ignore[union-attr]
    issued = issue_to(server.ctx, app_id, name)
    cert_file = tmp_path / "cert.pem"
    cert_file.write_bytes(issued.pem)
    revoked = uacme(server, confdir, "-r", "4", "revoke", str(cert_file))
    assert revoked.returncode == 0, revoked.stderr
    with server.ctx.read() as session:
        events = session.scalars(select(AuditEvent.event).where(AuditEvent.subject == issued.serial_hex)).all()
    assert "cert.revoked" in events
