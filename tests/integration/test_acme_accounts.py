"""The directory, newNonce and newAccount with required External Account Binding (RFC 8555 7.1-7.3.4).

Each EAB refusal checks the problem type, the status, a fresh Replay-Nonce and that nothing changed; the
happy path is also walked by certbot's own ``acme.ClientV2``, a client no one here wrote.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import josepy as jose
import pytest
from acme import client as acme_client
from acme import messages
from sqlalchemy import select

from ecert.core.errors import Conflict
from ecert.services.acme_accounts import make_eab
from ecert.store.models import AuditEvent
from ecert.store.models_acme import AcmeAccount, AcmeEabCredential
from tests.integration.acme_fixtures import (
    EAB_SECRET,
    URN,
    AcmeServer,
    Client,
    add_application,
    assert_refused,
    db_state,
    ec_key,
    new_eab,
    nonce_of,
    rsa_key,
)

ECERT_CA = str(Path(sys.executable).parent / "ecert-ca")


def test_directory_requires_eab_and_lists_the_profiles(acme_server: AcmeServer) -> None:
    client = Client(acme_server.running.url)
    response = client.http.get(acme_server.directory_url)
    assert response.status_code == 200
    body = response.json()
    assert body["newNonce"] == client.url("new-nonce") and body["newAccount"] == client.url("new-account")
    assert body["meta"]["externalAccountRequired"] is True
    assert set(body["meta"]["profiles"]) == {"server", "multi", "wildcard", "ev", "ev_multi"}
    assert "OV" in body["meta"]["profiles"]["server"] and "EV" in body["meta"]["profiles"]["ev_multi"]
    directory = messages.Directory.from_json(body)  # certbot's parser reads it
    assert directory.meta.external_account_required is True


def test_new_nonce_head_and_get(acme_server: AcmeServer) -> None:
    client = Client(acme_server.running.url)
    head = client.http.head(client.url("new-nonce"))
    get = client.http.get(client.url("new-nonce"))
    assert (head.status_code, get.status_code) == (200, 204)
    for response in (head, get):
        assert response.headers["Cache-Control"] == "no-store"
        assert len(jose.b64decode(response.headers["Replay-Nonce"])) >= 16  # at least 128 bits (RFC 8555 6.5.1)
        assert 'rel="index"' in response.headers["Link"]
    assert head.headers["Replay-Nonce"] != get.headers["Replay-Nonce"]


def test_new_account_binds_once_and_is_audited(acme_server: AcmeServer) -> None:
    ctx = acme_server.ctx
    reference = add_application(ctx)
    made = make_eab(ctx, reference, wrap_secret=EAB_SECRET, actor="operator:test")
    client = Client(acme_server.running.url, key=rsa_key())
    created = client.register(made)
    assert created.status_code == 201, created.text
    account_id = created.headers["Location"].rsplit("/", 1)[-1]
    assert created.json() == {
        "status": "valid",
        "contact": ["mailto:admin@example.com"],
        "orders": client.url(f"orders/{account_id}"),  # RFC 8555 7.1.2
    }
    assert created.headers["Location"].startswith(client.url("acct/")) and created.headers["Replay-Nonce"]
    # The same key again finds the same account (RFC 8555 7.3.1), with or without a binding.
    again = client.post(
        client.url("new-account"), client.jws(client.url("new-account"), {"onlyReturnExisting": True}, use_kid=False)
    )
    assert again.status_code == 200 and again.headers["Location"] == created.headers["Location"]
    with ctx.read() as session:
        account = session.scalars(select(AcmeAccount)).one()
        credential = session.scalars(select(AcmeEabCredential)).one()
        events = [(e.event, e.subject) for e in session.scalars(select(AuditEvent).order_by(AuditEvent.id))]
        assert credential.hmac_key_sealed and made.hmac_key.encode() not in credential.hmac_key_sealed
    assert (credential.status, account.application_id, account.eab_credential_id) == (
        "bound",
        credential.application_id,
        credential.id,
    )
    assert events == [("acme.eab.created", reference), ("acme.account.created", reference)]


def _register_with(change: Callable[[Client, AcmeServer, dict[str, Any]], None]) -> Callable[..., Any]:
    def make(client: Client, server: AcmeServer) -> Any:
        body = client.new_account_body(new_eab(server.ctx))
        change(client, server, body)
        jws = client.jws(client.url("new-account"), body)
        return client.post(client.url("new-account"), jws), nonce_of(jws)

    return make


def _wrong_mac(client: Client, server: AcmeServer, body: dict[str, Any]) -> None:
    sig = bytearray(jose.b64decode(body["externalAccountBinding"]["signature"]))
    sig[0] ^= 0x01
    body["externalAccountBinding"]["signature"] = jose.b64encode(bytes(sig)).decode()


def _used_kid(client: Client, server: AcmeServer, body: dict[str, Any]) -> None:
    made = new_eab(server.ctx)
    assert Client(client.base).register(made).status_code == 201
    body["externalAccountBinding"] = client.eab(made)


def _expired_kid(client: Client, server: AcmeServer, body: dict[str, Any]) -> None:
    server.clock.advance(timedelta(days=7, seconds=1))  # core.acme_rules.EAB_UNUSED_LIFETIME


def _unknown_kid(client: Client, server: AcmeServer, body: dict[str, Any]) -> None:
    made = new_eab(server.ctx)
    body["externalAccountBinding"] = client.eab(
        type(made)(made.reference_number, "ecert-nosuchkid", made.hmac_key, made.expires_at)
    )


def _other_key(client: Client, server: AcmeServer, body: dict[str, Any]) -> None:
    body["externalAccountBinding"] = client.eab(new_eab(server.ctx), key=ec_key())


def _other_url(client: Client, server: AcmeServer, body: dict[str, Any]) -> None:
    body["externalAccountBinding"] = client.eab(new_eab(server.ctx), url=client.url("new-order"))


def _missing(client: Client, server: AcmeServer, body: dict[str, Any]) -> None:
    body.pop("externalAccountBinding")


def _not_a_jws(client: Client, server: AcmeServer, body: dict[str, Any]) -> None:
    body["externalAccountBinding"] = "kid:key"


def _rejected_application(client: Client, server: AcmeServer, body: dict[str, Any]) -> None:
    reference = add_application(server.ctx)
    made = new_eab(server.ctx, reference)
    with server.ctx.transaction() as session:  # the RA rejected it after making the credential
        from ecert.store.applications import get_application_by_reference

        row = get_application_by_reference(session, reference)
        assert row is not None
        row.state = "rejected"
    body["externalAccountBinding"] = client.eab(made)


EAB_CASES: list[tuple[str, Callable[..., None], int, str]] = [
    ("missing binding", _missing, 403, "externalAccountRequired"),
    ("wrong MAC", _wrong_mac, 403, "unauthorized"),
    ("used kid", _used_kid, 403, "unauthorized"),
    ("expired kid", _expired_kid, 403, "unauthorized"),
    ("unknown kid", _unknown_kid, 403, "unauthorized"),
    ("application rejected since", _rejected_application, 403, "unauthorized"),
    ("payload key not the outer key", _other_key, 400, "malformed"),
    ("binding url not newAccount", _other_url, 400, "malformed"),
    ("binding not a JWS", _not_a_jws, 400, "malformed"),
]


@pytest.mark.parametrize(("case", "change", "status", "problem"), EAB_CASES, ids=[c[0] for c in EAB_CASES])
def test_eab_refusal(
    acme_server: AcmeServer, case: str, change: Callable[..., None], status: int, problem: str
) -> None:
    client = Client(acme_server.running.url)
    make = _register_with(change)
    before_accounts = db_state(acme_server.ctx)[0]
    response, sent_nonce = make(client, acme_server)
    assert_refused(response, status, problem, sent_nonce)
    state = db_state(acme_server.ctx)
    bound = [kid for kid, status_ in state[1] if status_ == "bound"]
    assert len(state[0]) - len(before_accounts) == len(bound)  # only a case's own setup account, if any
    assert len(bound) == (1 if case == "used kid" else 0)
    if case == "expired kid":
        assert "expired" in response.json()["detail"]


def test_refused_requests_leave_the_audit_log_alone(sqlite_acme_server: AcmeServer) -> None:
    client = Client(sqlite_acme_server.running.url)
    made = new_eab(sqlite_acme_server.ctx)
    before = db_state(sqlite_acme_server.ctx)
    body = client.new_account_body(made)
    _wrong_mac(client, sqlite_acme_server, body)
    assert client.post(client.url("new-account"), client.jws(client.url("new-account"), body)).status_code == 403
    assert db_state(sqlite_acme_server.ctx) == before
    # The credential still binds afterwards: a failed attempt does not burn it.
    assert client.register(made).status_code == 201


def test_eab_only_for_an_application_in_force(sqlite_acme_server: AcmeServer) -> None:
    ctx = sqlite_acme_server.ctx
    with pytest.raises(Conflict, match="rejected"):
        make_eab(ctx, add_application(ctx, state="rejected"), wrap_secret=EAB_SECRET, actor="operator:test")
    with pytest.raises(Conflict, match="subscription ended"):
        make_eab(ctx, add_application(ctx, days_left=-1), wrap_secret=EAB_SECRET, actor="operator:test")


def _certbot_account(
    server: AcmeServer, email: str
) -> tuple[acme_client.ClientV2, messages.RegistrationResource, acme_client.ClientNetwork]:
    """An account registered through EAB by certbot's protocol library (acme.ClientV2), a client no one here wrote."""
    made = new_eab(server.ctx)
    key = ec_key()
    net = acme_client.ClientNetwork(key, alg=jose.ES256, user_agent="ecert-test")
    directory = acme_client.ClientV2.get_directory(server.directory_url, net)
    client = acme_client.ClientV2(directory, net)
    eab = messages.ExternalAccountBinding.from_data(key.public_key(), made.kid, made.hmac_key, directory)
    regr = client.new_account(
        messages.NewRegistration.from_data(email=email, terms_of_service_agreed=True, external_account_binding=eab)
    )
    return client, regr, net


def test_certbot_acme_client_registers_with_eab(acme_server: AcmeServer) -> None:
    """certbot's protocol library (acme.ClientV2) reads the directory and registers through EAB."""
    client, regr, _ = _certbot_account(acme_server, "admin@example.com")
    assert regr.body.status == "valid" and regr.uri.startswith(f"{acme_server.running.url}/acme/acct/")
    assert client.query_registration(regr).body.contact == ("mailto:admin@example.com",)


def test_cli_makes_eab_credentials(sqlite_acme_server: AcmeServer) -> None:
    """`ecert-ca acme eab new REFERENCE`: the kid and the HMAC key, shown once, bind through the server."""
    ctx = sqlite_acme_server.ctx
    reference = add_application(ctx)
    env = {
        **os.environ,
        "ECERT_DATA_DIR": str(ctx.settings.data_dir),
        "ECERT_BASE_URL": ctx.settings.base_url,
        "ECERT_ACME_EAB_SECRET": EAB_SECRET,
        "ECERT_KEY_PASSPHRASE": "x",
    }
    env.pop("ECERT_DATABASE_URL", None)
    done = subprocess.run(
        [ECERT_CA, "acme", "eab", "new", reference, "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)["data"]
    assert data["reference_number"] == reference and len(jose.b64decode(data["hmac_key"])) == 32
    missing = subprocess.run(
        [ECERT_CA, "acme", "eab", "new", "123456789"], capture_output=True, text=True, env=env, timeout=60, check=False
    )
    assert missing.returncode != 0 and "no application" in (missing.stderr + missing.stdout)
    made = type(new_eab(ctx))(reference, data["kid"], data["hmac_key"], ctx.clock())
    client = Client(sqlite_acme_server.running.url)
    assert client.register(made).status_code == 201
    assert URN  # the module's constants are shared with the JWS suite


@pytest.mark.parametrize(
    ("contact", "problem"),
    [
        (["tel:+85221234567"], "unsupportedContact"),
        (["mailto:admin@example.com?subject=renew"], "invalidContact"),
        (["mailto:admin@localhost"], "invalidContact"),
        ([f"mailto:a{i}@example.com" for i in range(11)], "invalidContact"),
    ],
)
def test_new_account_refuses_a_contact_it_could_not_mail(
    sqlite_acme_server: AcmeServer, contact: list[str], problem: str
) -> None:
    """RFC 8555 7.3: the contacts are stored and audited, so only mailto: with one plain address, and few."""
    client = Client(sqlite_acme_server.running.url)
    made = new_eab(sqlite_acme_server.ctx)
    before = db_state(sqlite_acme_server.ctx)
    jws = client.jws(client.url("new-account"), client.new_account_body(made, contact=contact))
    assert_refused(client.post(client.url("new-account"), jws), 400, problem, nonce_of(jws))
    assert db_state(sqlite_acme_server.ctx) == before
    assert client.register(made).status_code == 201  # the credential was not spent


class _Body(jose.JSONDeSerializable):
    """A request body as given, for what acme.messages would not send (fields the server must ignore)."""

    def __init__(self, fields: dict[str, Any]) -> None:
        self.fields = fields

    def to_partial_json(self) -> dict[str, Any]:
        return self.fields

    @classmethod
    def from_json(cls, jobj: Any) -> _Body:
        return cls(dict(jobj))


def test_certbot_acme_client_updates_the_accounts_contacts(acme_server: AcmeServer) -> None:
    """RFC 8555 7.3.2 through certbot's protocol library: contacts replaced and audited; fields the server does not
    take (termsOfServiceAgreed) ignored, not refused; a contact it could not mail refused, nothing changed."""
    client, regr, net = _certbot_account(acme_server, "old@example.com")
    directory = client.directory
    updated = client.update_registration(regr, messages.Registration(contact=("mailto:new@example.com",)))
    assert updated.body.contact == ("mailto:new@example.com",)
    assert client.query_registration(regr).body.contact == ("mailto:new@example.com",)
    same = net.post(regr.uri, _Body({"termsOfServiceAgreed": True, "orders": "x"}), new_nonce_url=directory.newNonce)
    assert same.json() == {**same.json(), "status": "valid", "contact": ["mailto:new@example.com"]}
    with pytest.raises(messages.Error, match="unsupportedContact"):
        client.update_registration(regr, messages.Registration(contact=("tel:+85221234567",)))
    assert client.query_registration(regr).body.contact == ("mailto:new@example.com",)
    with acme_server.ctx.read() as session:
        updates = session.scalars(select(AuditEvent.details).where(AuditEvent.event == "acme.account.updated")).all()
    assert [d["contact"] for d in updates] == [["mailto:new@example.com"]]
