"""ACME Renewal Information (RFC 9773) as certbot's acme.ClientV2 and a plain GET see it, and newOrder's
``replaces`` claim, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from acme import client as acme_client
from acme import messages
from cryptography import x509
from sqlalchemy import select

from ecert.core.acme_rules import AcmeRefusal, ProblemType
from ecert.services import acme_ari, incidents, revocation
from ecert.services.incidents import Selection
from ecert.store.models_acme_orders import AcmeOrder
from tests.integration.acme_ca_fixtures import cert_id, issue_to, subscriber
from tests.integration.acme_fixtures import URN, AcmeServer, Client, assert_refused, nonce_of


def window(server: AcmeServer, cert: x509.Certificate) -> tuple[datetime, datetime, httpx.Response]:
    response = httpx.get(server.url(f"renewal-info/{cert_id(cert)}"), trust_env=False)
    assert response.status_code == 200, response.text
    found = response.json()["suggestedWindow"]
    start = datetime.fromisoformat(found["start"].replace("Z", "+00:00"))
    end = datetime.fromisoformat(found["end"].replace("Z", "+00:00"))
    return start, end, response


def test_directory_lists_renewal_info_revoke_cert_and_key_change(acme_ca: AcmeServer) -> None:
    directory = httpx.get(acme_ca.directory_url, trust_env=False).json()
    assert directory["renewalInfo"] == acme_ca.url("renewal-info")
    assert directory["revokeCert"] == acme_ca.url("revoke-cert")
    assert directory["keyChange"] == acme_ca.url("key-change")


def test_window_starts_at_two_thirds_of_the_validity_and_is_stable(acme_ca: AcmeServer) -> None:
    issued = issue_to(acme_ca.ctx, None, "www.example.com").certificate
    start, end, response = window(acme_ca, issued)
    nb, na = issued.not_valid_before_utc, issued.not_valid_after_utc
    two_thirds = nb + (na - nb) * 2 / 3
    assert two_thirds - timedelta(seconds=1) <= start <= two_thirds + (na - nb) / 30
    assert start < end < na
    assert int(response.headers["Retry-After"]) == 6 * 3600
    assert window(acme_ca, issued)[:2] == (start, end)  # the same certificate always gets the same window


def test_jitter_spreads_certificates_issued_together(acme_ca: AcmeServer) -> None:
    starts = {window(acme_ca, issue_to(acme_ca.ctx, None, "www.example.com").certificate)[0] for _ in range(4)}
    assert len(starts) == 4


def test_revoked_certificate_is_to_be_renewed_now(acme_ca: AcmeServer) -> None:
    issued = issue_to(acme_ca.ctx, None, "www.example.com")
    revocation.revoke_certificate(
        acme_ca.ctx, ca_label=None, serial_hex=issued.serial_hex, reason="superseded", actor="test"
    )
    start, end, response = window(acme_ca, issued.certificate)
    assert start < end < acme_ca.clock()
    assert int(response.headers["Retry-After"]) == 3600


def test_certificate_marked_for_replacement_by_an_incident_is_to_be_renewed_now(acme_ca: AcmeServer) -> None:
    issued = issue_to(acme_ca.ctx, None, "www.example.com")
    other = issue_to(acme_ca.ctx, None, "www.example.com")
    incidents.open_incident(
        acme_ca.ctx,
        reason="wrong policy OID",
        selection=Selection(serials=(issued.serial_hex,)),
        actor="operator:test",
        notify=False,
    )
    assert window(acme_ca, issued.certificate)[1] < acme_ca.clock()
    assert window(acme_ca, other.certificate)[0] > acme_ca.clock()  # the incident names only the first


def test_certbots_client_reads_the_window(acme_ca: AcmeServer) -> None:
    """acme.ClientV2.renewal_time computes the certID itself and picks a time inside our window."""
    issued = issue_to(acme_ca.ctx, None, "www.example.com")
    net = acme_client.ClientNetwork(issued_key(), user_agent="ecert-test", verify_ssl=False)
    directory = messages.Directory.from_json(net.get(acme_ca.directory_url).json())
    client = acme_client.ClientV2(directory, net)
    when, _next_check = client.renewal_time(issued.pem)
    start, end, _ = window(acme_ca, issued.certificate)
    assert when is not None and start <= when.astimezone(UTC) <= end


def issued_key():  # type: ignore[no-untyped-def]
    import josepy as jose
    from cryptography.hazmat.primitives.asymmetric import ec

    return jose.JWKEC(key=ec.generate_private_key(ec.SECP256R1()))


@pytest.mark.parametrize(
    ("segment", "status"),
    [
        ("not-an-id", 400),
        ("AAAA.AAAA", 400),  # serial 0 is not a DER positive integer
        ("AAAA.!!", 400),
        ("q83vEjRWeJq83vEjRWeJq83vEjQ.AQ", 404),  # well formed, no such certificate
    ],
)
def test_unknown_or_malformed_identifier_is_refused(acme_ca: AcmeServer, segment: str, status: int) -> None:
    response = httpx.get(acme_ca.url(f"renewal-info/{segment}"), trust_env=False)
    assert response.status_code == status, response.text
    assert response.json()["type"] == URN + "malformed"
    assert response.headers.get("Replay-Nonce")


# --- replaces (RFC 9773 5) -------------------------------------------------------------------------


def test_replaces_claims_once_then_already_replaced(acme_ca: AcmeServer) -> None:
    sub = subscriber(acme_ca)
    issued = issue_to(acme_ca.ctx, sub.application_id, sub.server_name)
    account_id = int(str(sub.client.kid).rsplit("/", 1)[1])
    claim = dict(
        account_id=account_id,
        application_id=sub.application_id,
        replaces=cert_id(issued.certificate),
        names=[sub.server_name],
    )
    replaced = acme_ari.check_and_claim_replaces(acme_ca.ctx, **claim, order_ref="order-1")  # type: ignore[arg-type]
    assert replaced.serial_hex == issued.serial_hex
    with pytest.raises(AcmeRefusal) as second:
        acme_ari.check_and_claim_replaces(acme_ca.ctx, **claim, order_ref="order-2")  # type: ignore[arg-type]
    assert second.value.problem is ProblemType.ALREADY_REPLACED and second.value.status == 409
    # the first order became invalid: its claim is released and another order may replace the certificate
    with acme_ca.ctx.transaction() as session:
        assert acme_ari.release_replaces(session, issued.row_id, order_ref="order-1")
    acme_ari.check_and_claim_replaces(acme_ca.ctx, **claim, order_ref="order-3")  # type: ignore[arg-type]


def test_replaces_of_another_accounts_certificate_or_without_a_shared_name_is_refused(acme_ca: AcmeServer) -> None:
    mine, theirs = subscriber(acme_ca), subscriber(acme_ca)
    their_cert = issue_to(acme_ca.ctx, theirs.application_id, theirs.server_name)
    my_cert = issue_to(acme_ca.ctx, mine.application_id, mine.server_name)
    account_id = int(str(mine.client.kid).rsplit("/", 1)[1])
    with pytest.raises(AcmeRefusal) as other:
        acme_ari.check_and_claim_replaces(
            acme_ca.ctx,
            account_id=account_id,
            application_id=mine.application_id,
            replaces=cert_id(their_cert.certificate),
            names=[theirs.server_name],
        )
    assert other.value.problem is ProblemType.UNAUTHORIZED
    with pytest.raises(AcmeRefusal) as unrelated:
        acme_ari.check_and_claim_replaces(
            acme_ca.ctx,
            account_id=account_id,
            application_id=mine.application_id,
            replaces=cert_id(my_cert.certificate),
            names=["other.example.com"],
        )
    assert unrelated.value.problem is ProblemType.MALFORMED
    # neither refusal left a claim behind: the right order still may replace the certificate
    acme_ari.check_and_claim_replaces(
        acme_ca.ctx,
        account_id=account_id,
        application_id=mine.application_id,
        replaces=cert_id(my_cert.certificate),
        names=[mine.server_name],
    )


# --- replaces on newOrder, over HTTP ---------------------------------------------------------------------


def new_order(client: Client, names: list[str], **extra: object) -> tuple[dict[str, object], httpx.Response]:
    url = client.url("new-order")
    jws = client.jws(url, {"identifiers": [{"type": "dns", "value": n} for n in names], **extra})
    return jws, client.post(url, jws)


def orders(server: AcmeServer) -> int:
    with server.ctx.read() as session:
        return len(session.scalars(select(AcmeOrder.id)).all())


def test_new_order_replaces_once_then_already_replaced(acme_ca: AcmeServer) -> None:
    sub = subscriber(acme_ca)
    issued = issue_to(acme_ca.ctx, sub.application_id, sub.server_name)
    _, first = new_order(sub.client, [sub.server_name], replaces=cert_id(issued.certificate))
    assert first.status_code == 201, first.text
    before = orders(acme_ca)
    jws, second = new_order(sub.client, [sub.server_name], replaces=cert_id(issued.certificate))
    assert_refused(second, 409, "alreadyReplaced", nonce_of(jws))
    assert orders(acme_ca) == before  # the refused order was not made


def test_new_order_replacing_another_accounts_certificate_is_refused(acme_ca: AcmeServer) -> None:
    mine, theirs = subscriber(acme_ca), subscriber(acme_ca)
    their_cert = issue_to(acme_ca.ctx, theirs.application_id, theirs.server_name)
    before = orders(acme_ca)
    jws, response = new_order(mine.client, [mine.server_name], replaces=cert_id(their_cert.certificate))
    assert_refused(response, 403, "unauthorized", nonce_of(jws))
    jws, response = new_order(mine.client, [mine.server_name], replaces="not-a-cert-id")
    assert_refused(response, 400, "malformed", nonce_of(jws))
    assert orders(acme_ca) == before
