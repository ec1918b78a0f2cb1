"""ACME rate limits (issue 13 point 8) on SQLite, PostgreSQL and Redis: each refusal is rateLimited with a
Retry-After that ends with the window, is audited, and makes nothing; two contexts on one store (as two
processes are) share one count."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from ecert.core.acme_limits import RateLimitRefusal
from ecert.services import acme_limits
from ecert.store.models import AuditEvent
from tests.integration.acme_ca_fixtures import acme_ca_with, cert_id, issue_to, subscriber
from tests.integration.acme_fixtures import (
    Client,
    Clock,
    assert_refused,
    db_state,
    new_eab,
    nonce_of,
    refusals_logged,
)
from tests.integration.acme_order_helpers import b64_csr, make_csr, ready_order, wait_status
from tests.integration.dcv_fixtures import KnotDns
from tests.integration.foundation_fixtures import make_ctx

REDIS_URL = "redis://127.0.0.1:6379/0"


def register(server_url: str, made: object) -> object:
    client = Client(server_url)
    return client, client.register(made)  # type: ignore[arg-type]


def test_new_accounts_per_address_refused_past_the_limit_until_the_window_ends(
    tmp_path: Path, db_url: str, clock: Clock
) -> None:
    with acme_ca_with(tmp_path, db_url, clock, acme_new_accounts_per_ip=2, acme_new_accounts_window_seconds=3600) as ca:
        for _ in range(2):
            assert register(ca.running.url, new_eab(ca.ctx))[1].status_code == 201  # type: ignore[attr-defined]
        made = new_eab(ca.ctx)
        before = db_state(ca.ctx)
        client = Client(ca.running.url)
        body = client.jws(client.url("new-account"), client.new_account_body(made))
        response = client.post(client.url("new-account"), body)
        assert_refused(response, 429, "rateLimited", nonce_of(body))
        retry = int(response.headers["Retry-After"])
        assert 0 < retry <= 3600
        accounts, credentials, audit = db_state(ca.ctx)
        assert (accounts, credentials) == before[:2] and audit == before[2] + 1  # only the refusal, audited
        with ca.ctx.read() as session:
            event = session.scalars(select(AuditEvent).where(AuditEvent.event == "acme.rate_limited")).one()
        assert event.details["limit"] == "new_accounts_per_ip" and event.subject == "127.0.0.1"
        assert refusals_logged(ca.ctx) == []  # audited once, by the service, not again by the edge
        clock.advance(timedelta(seconds=retry))
        assert client.register(made).status_code == 201  # a new window: the same credential binds now


def test_an_existing_key_finding_its_account_spends_nothing(tmp_path: Path, db_url: str, clock: Clock) -> None:
    with acme_ca_with(tmp_path, db_url, clock, acme_new_accounts_per_ip=1) as ca:
        client, response = register(ca.running.url, new_eab(ca.ctx))
        assert response.status_code == 201  # type: ignore[attr-defined]
        url = client.url("new-account")  # type: ignore[attr-defined]
        again = client.post(url, client.jws(url, {"onlyReturnExisting": True}, use_kid=False))  # type: ignore[attr-defined]
        assert again.status_code == 200


def _ctx_pair(tmp_path: Path, db_url: str | None, clock: Clock, **overrides: object):  # type: ignore[no-untyped-def]
    """Two contexts on one store, each with its own engine and process memory: two processes, in effect."""
    first = make_ctx(tmp_path / "a", db_url, **overrides)
    second = make_ctx(tmp_path / "b", db_url or first.settings.effective_database_url, **overrides)
    first.clock = second.clock = clock
    return first, second


@pytest.fixture(params=["database", "redis"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    if request.param == "redis":
        # a namespace of this test's own, so runs in parallel (and earlier runs) never share a counter
        return {"redis_url": REDIS_URL, "redis_namespace": f"ecert-test:{uuid.uuid4().hex}:"}
    return {}


def test_new_orders_per_account_shared_by_two_processes(
    tmp_path: Path, db_url: str, clock: Clock, backend: dict[str, object]
) -> None:
    first, second = _ctx_pair(tmp_path, db_url, clock, acme_new_orders_per_account=3, **backend)
    try:
        acme_limits.spend_new_order(first, 7)
        acme_limits.spend_new_order(second, 7)
        acme_limits.spend_new_order(first, 7)
        with pytest.raises(RateLimitRefusal) as refused:
            acme_limits.spend_new_order(second, 7)
        assert refused.value.problem.value == "rateLimited" and refused.value.status == 429
        acme_limits.spend_new_order(second, 8)  # another account has its own count
        clock.advance(timedelta(hours=3))
        acme_limits.spend_new_order(second, 7)  # the next window
    finally:
        first.close()
        second.close()


def test_failed_validations_per_name_per_account(
    tmp_path: Path, db_url: str, clock: Clock, backend: dict[str, object]
) -> None:
    first, second = _ctx_pair(tmp_path, db_url, clock, acme_failed_validations_per_name=2, **backend)
    try:
        acme_limits.check_failed_validations(first, 5, ["www.example.com"])
        acme_limits.record_failed_validation(first, 5, "www.example.com")
        acme_limits.record_failed_validation(second, 5, "WWW.example.com")
        with pytest.raises(RateLimitRefusal) as refused:
            acme_limits.check_failed_validations(second, 5, ["other.example.com", "www.example.com"])
        assert "5:www.example.com" in str(refused.value)
        acme_limits.check_failed_validations(second, 6, ["www.example.com"])  # another account
        acme_limits.check_failed_validations(second, 5, ["other.example.com"])  # another name
    finally:
        first.close()
        second.close()


def test_certificates_per_application_per_week(
    tmp_path: Path, db_url: str, clock: Clock, backend: dict[str, object]
) -> None:
    first, second = _ctx_pair(tmp_path, db_url, clock, acme_certificates_per_application_week=2, **backend)
    try:
        acme_limits.spend_certificate(first, 11)
        acme_limits.spend_certificate(second, 11)
        with pytest.raises(RateLimitRefusal) as refused:
            acme_limits.spend_certificate(first, 11)
        assert 0 < refused.value.retry_after <= 7 * 24 * 3600
    finally:
        first.close()
        second.close()


def test_a_limit_of_zero_is_off(tmp_path: Path, clock: Clock) -> None:
    ctx = make_ctx(tmp_path, None, acme_new_orders_per_account=0)
    ctx.clock = clock
    try:
        for _ in range(5):
            acme_limits.spend_new_order(ctx, 1)
    finally:
        ctx.close()


def _order(client: Client, name: str) -> tuple[dict[str, object], object]:
    url = client.url("new-order")
    jws = client.jws(url, {"identifiers": [{"type": "dns", "value": name}]})
    return jws, client.post(url, jws)


def test_new_orders_per_account_over_http(tmp_path: Path, db_url: str, clock: Clock) -> None:
    with acme_ca_with(tmp_path, db_url, clock, acme_new_orders_per_account=1) as ca:
        sub = subscriber(ca)
        assert _order(sub.client, sub.server_name)[1].status_code == 201  # type: ignore[attr-defined]
        jws, refused = _order(sub.client, sub.server_name)
        assert_refused(refused, 429, "rateLimited", nonce_of(jws))
        assert int(refused.headers["Retry-After"]) > 0  # type: ignore[attr-defined]


def test_a_name_that_failed_validation_too_often_refuses_new_orders(tmp_path: Path, db_url: str, clock: Clock) -> None:
    with acme_ca_with(tmp_path, db_url, clock, acme_failed_validations_per_name=1) as ca:
        sub = subscriber(ca)
        account_id = int(str(sub.client.kid).rsplit("/", 1)[1])
        acme_limits.record_failed_validation(ca.ctx, account_id, sub.server_name)  # as a failed challenge does
        jws, refused = _order(sub.client, sub.server_name)
        assert_refused(refused, 429, "rateLimited", nonce_of(jws))


def _fail_an_order(client: Client, knot: KnotDns, name: str, **extra: object) -> str:
    """An order whose dns-01 challenge the CA checks and finds wrong: the order ends invalid."""
    url = client.url("new-order")
    response = client.post(url, client.jws(url, {"identifiers": [{"type": "dns", "value": name}], **extra}))
    assert response.status_code == 201, response.text
    order_url = response.headers["Location"]
    authz_url = response.json()["authorizations"][0]
    authz = client.post(authz_url, client.jws(authz_url, None)).json()
    challenge = next(c for c in authz["challenges"] if c["type"] == "dns-01")
    knot.set_records(f"_acme-challenge.{name}", "TXT", ['"not-the-digest"'])
    client.post(challenge["url"], client.jws(challenge["url"], {}))
    assert wait_status(client, order_url, {"invalid", "ready"})["status"] == "invalid"
    return order_url


def test_a_failed_challenge_counts_against_the_name(
    tmp_path: Path, db_url: str, clock: Clock, knot_dns: KnotDns
) -> None:
    dns = {"dns_resolvers": (knot_dns.resolver_addr,), "allow_private_addresses": True}
    with acme_ca_with(tmp_path, db_url, clock, acme_failed_validations_per_name=1, **dns) as ca:
        sub = subscriber(ca)
        _fail_an_order(sub.client, knot_dns, sub.server_name)
        jws, refused = _order(sub.client, sub.server_name)
        assert_refused(refused, 429, "rateLimited", nonce_of(jws))


def test_an_invalid_order_releases_the_certificate_it_replaced(
    tmp_path: Path, db_url: str, clock: Clock, knot_dns: KnotDns
) -> None:
    dns = {"dns_resolvers": (knot_dns.resolver_addr,), "allow_private_addresses": True}
    with acme_ca_with(tmp_path, db_url, clock, **dns) as ca:
        sub = subscriber(ca)
        issued = issue_to(ca.ctx, sub.application_id, sub.server_name)
        replaces = cert_id(issued.certificate)
        _fail_an_order(sub.client, knot_dns, sub.server_name, replaces=replaces)
        url = sub.client.url("new-order")
        payload = {"identifiers": [{"type": "dns", "value": sub.server_name}], "replaces": replaces}
        again = sub.client.post(url, sub.client.jws(url, payload))
        assert again.status_code == 201, again.text  # RFC 9773 5: an invalid order holds no claim


def test_certificates_per_application_per_week_at_finalize(
    tmp_path: Path, db_url: str, clock: Clock, knot_dns: KnotDns
) -> None:
    dns = {"dns_resolvers": (knot_dns.resolver_addr,), "allow_private_addresses": True}
    with acme_ca_with(tmp_path, db_url, clock, acme_certificates_per_application_week=1, **dns) as ca:
        sub = subscriber(ca)
        acme_limits.spend_certificate(ca.ctx, sub.application_id)  # this week's one certificate was issued
        order_url, order = ready_order(sub.client, knot_dns, [sub.server_name])
        jws = sub.client.jws(order["finalize"], {"csr": b64_csr(make_csr([sub.server_name]))})
        refused = sub.client.post(order["finalize"], jws)
        assert_refused(refused, 429, "rateLimited", nonce_of(jws))
        assert wait_status(sub.client, order_url, {"ready"})["status"] == "ready"  # nothing moved: retry later
