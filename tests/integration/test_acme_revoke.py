"""revokeCert over ACME (RFC 8555 7.6), on SQLite and PostgreSQL: by the account of the certificate's
application or by the certificate's own key; BR 7.2.2 reasons only; CRL and OCSP change before the answer;
keyCompromise blocks the key; every refusal is a problem document, audited, and changes nothing else."""

from __future__ import annotations

import base64
from typing import Any

import josepy as jose
import pytest
from cryptography import x509
from sqlalchemy import select

from ecert.services import applications, publication, revocation
from ecert.store.models import CA, AuditEvent, BlockedKey, Certificate
from tests.integration.acme_ca_fixtures import Issued, issue_to, subscriber
from tests.integration.acme_fixtures import AcmeServer, Client, assert_refused, new_eab, nonce_of


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def revoke(client: Client, issued: Issued, reason: Any = None, *, use_kid: bool | None = None) -> Any:
    payload: dict[str, Any] = {"certificate": b64(issued.der)}
    if reason is not None:
        payload["reason"] = reason
    url = client.url("revoke-cert")
    body = client.jws(url, payload, use_kid=use_kid)
    return client.post(url, body), body


def crl_reason(server: AcmeServer, issued: Issued) -> x509.ReasonFlags | None | str:
    with server.ctx.read() as session:
        label = session.scalar(
            select(CA.label).join(Certificate, Certificate.ca_id == CA.id).where(Certificate.id == issued.row_id)
        )
    crl = x509.load_der_x509_crl(publication.latest_crl(server.ctx, str(label)).der)
    entry = crl.get_revoked_certificate_by_serial_number(issued.certificate.serial_number)
    if entry is None:
        return "absent"
    try:
        return entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
    except x509.ExtensionNotFound:
        return None


def not_revoked(server: AcmeServer, issued: Issued) -> bool:
    with server.ctx.read() as session:
        return session.scalar(select(Certificate.revoked_at).where(Certificate.id == issued.row_id)) is None


def events(server: AcmeServer, name: str) -> list[AuditEvent]:
    with server.ctx.read() as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.event == name)))


def test_account_of_the_application_revokes_and_the_crl_shows_it_at_once(acme_ca: AcmeServer) -> None:
    sub = subscriber(acme_ca)
    issued = issue_to(acme_ca.ctx, sub.application_id, sub.server_name)
    response, _ = revoke(sub.client, issued, 4)
    assert response.status_code == 200, response.text
    assert response.headers.get("Replay-Nonce")
    assert crl_reason(acme_ca, issued) is x509.ReasonFlags.superseded
    revoked = events(acme_ca, "cert.revoked")
    assert revoked[-1].subject == issued.serial_hex and revoked[-1].actor.startswith("acme:account:")


def test_certificate_key_revokes_for_key_compromise_and_the_key_is_blocked(acme_ca: AcmeServer) -> None:
    issued = issue_to(acme_ca.ctx, None, "www.example.com")
    holder = Client(acme_ca.running.url, key=jose.JWKEC(key=issued.key))
    response, _ = revoke(holder, issued, 1)
    assert response.status_code == 200, response.text
    assert crl_reason(acme_ca, issued) is x509.ReasonFlags.key_compromise
    with acme_ca.ctx.read() as session:
        blocked = session.scalars(select(BlockedKey.spki_sha256)).all()
    assert len(blocked) == 1


def test_the_certificate_key_always_revokes_for_key_compromise(acme_ca: AcmeServer) -> None:
    issued = issue_to(acme_ca.ctx, None, "www.example.com")
    holder = Client(acme_ca.running.url, key=jose.JWKEC(key=issued.key))
    response, _ = revoke(holder, issued, 4)  # superseded asked for: the key holder proved possession instead
    assert response.status_code == 200, response.text
    assert crl_reason(acme_ca, issued) is x509.ReasonFlags.key_compromise


def test_no_reason_means_no_reason_code(acme_ca: AcmeServer) -> None:
    sub = subscriber(acme_ca)
    issued = issue_to(acme_ca.ctx, sub.application_id, sub.server_name)
    response, _ = revoke(sub.client, issued)
    assert response.status_code == 200, response.text
    assert crl_reason(acme_ca, issued) is None


def _audit_count(server: AcmeServer) -> int:
    with server.ctx.read() as session:
        return len(session.scalars(select(AuditEvent.id)).all())


@pytest.mark.parametrize("reason", [2, 6, 8, 9, 10, 7, 11, -1, "1", True])
def test_reasons_outside_br_7_2_2_are_refused(acme_ca: AcmeServer, reason: Any) -> None:
    sub = subscriber(acme_ca)
    issued = issue_to(acme_ca.ctx, sub.application_id, sub.server_name)
    before = _audit_count(acme_ca)
    response, body = revoke(sub.client, issued, reason)
    assert_refused(response, 400, "badRevocationReason", nonce_of(body))
    assert not_revoked(acme_ca, issued)
    assert _audit_count(acme_ca) == before + 1  # only the refusal itself
    assert events(acme_ca, "acme.revocation.refused")[-1].details["problem"] == "badRevocationReason"


def test_another_applications_account_may_not_revoke(acme_ca: AcmeServer) -> None:
    owner, stranger = subscriber(acme_ca), subscriber(acme_ca)
    issued = issue_to(acme_ca.ctx, owner.application_id, owner.server_name)
    response, body = revoke(stranger.client, issued, 4)
    assert_refused(response, 403, "unauthorized", nonce_of(body))
    assert not_revoked(acme_ca, issued)


def test_another_key_may_not_revoke_by_jwk(acme_ca: AcmeServer) -> None:
    issued = issue_to(acme_ca.ctx, None, "www.example.com")
    response, body = revoke(Client(acme_ca.running.url), issued, 1)
    assert_refused(response, 403, "unauthorized", nonce_of(body))
    assert not_revoked(acme_ca, issued)


def test_second_revocation_is_already_revoked(acme_ca: AcmeServer) -> None:
    sub = subscriber(acme_ca)
    issued = issue_to(acme_ca.ctx, sub.application_id, sub.server_name)
    assert revoke(sub.client, issued, 5)[0].status_code == 200
    response, body = revoke(sub.client, issued, 4)
    assert_refused(response, 400, "alreadyRevoked", nonce_of(body))
    assert crl_reason(acme_ca, issued) is x509.ReasonFlags.cessation_of_operation


def test_unknown_certificate_and_bad_payload(acme_ca: AcmeServer) -> None:
    sub = subscriber(acme_ca)
    issued = issue_to(acme_ca.ctx, sub.application_id, sub.server_name)
    garbage = Issued(b"\x30\x03\x02\x01\x01", b"", "1", issued.key, 0)
    response, body = revoke(sub.client, garbage, 4)
    assert_refused(response, 400, "malformed", nonce_of(body))
    # a well-formed certificate with our issuer's key identifier and a serial we never issued
    forged = issue_to(acme_ca.ctx, sub.application_id, sub.server_name)
    with acme_ca.ctx.transaction() as session:
        row = session.get(Certificate, forged.row_id)
        assert row is not None
        row.serial_hex = "1"  # the stored row no longer answers to the certificate's serial
    response, body = revoke(sub.client, forged, 4)
    assert_refused(response, 404, "malformed", nonce_of(body))
    url = sub.client.url("revoke-cert")
    body = sub.client.jws(url, {"certificate": 42})
    assert_refused(sub.client.post(url, body), 400, "malformed", nonce_of(body))


def test_get_is_not_allowed(acme_ca: AcmeServer) -> None:
    response = Client(acme_ca.running.url).http.get(acme_ca.url("revoke-cert"))
    assert_refused(response, 405, "malformed")


# --- the application's accounts stop with it (issue 13 point 2) -----------------------------------------


def assert_account_stopped(server: AcmeServer, client: Client) -> None:
    body = client.jws(str(client.kid), None)
    response = client.post(str(client.kid), body)
    assert_refused(response, 403, "unauthorized", nonce_of(body))
    assert "revoked" in response.json()["detail"]
    assert str(client.kid).rsplit("/", 1)[1] in {e.subject for e in events(server, "acme.account.revoked")}


def test_closing_the_application_revokes_its_accounts(acme_ca: AcmeServer) -> None:
    sub, bystander = subscriber(acme_ca), subscriber(acme_ca)
    other_account = Client(acme_ca.running.url)
    other_account.register(new_eab(acme_ca.ctx, sub.reference))
    applications.reject_application(acme_ca.ctx, sub.application_id, reason="wrong name", actor="subscriber:test")
    assert_account_stopped(acme_ca, sub.client)
    assert_account_stopped(acme_ca, other_account)
    untouched = bystander.client  # another application's account goes on
    assert untouched.post(str(untouched.kid), untouched.jws(str(untouched.kid), None)).status_code == 200


def test_the_operator_closing_the_application_revokes_its_accounts(acme_ca: AcmeServer) -> None:
    sub = subscriber(acme_ca)
    issue_to(acme_ca.ctx, sub.application_id, sub.server_name)
    closed = applications.close_application(
        acme_ca.ctx, sub.reference, reason="organisation dissolved", actor="operator:test"
    )
    assert closed.state == "closed"
    assert_account_stopped(acme_ca, sub.client)
    assert [e.subject for e in events(acme_ca, "application.closed")] == [sub.reference]


def test_revoking_a_certificate_keeps_the_accounts_for_its_replacement(acme_ca: AcmeServer) -> None:
    """A subscriber revoking a compromised certificate needs ACME to get the next one: the application stays."""
    sub = subscriber(acme_ca)
    issue_to(acme_ca.ctx, sub.application_id, sub.server_name)
    revocation.revoke_for_application(acme_ca.ctx, sub.application_id, None, "subscriber:test")
    account = sub.client
    assert account.post(str(account.kid), account.jws(str(account.kid), None)).status_code == 200
