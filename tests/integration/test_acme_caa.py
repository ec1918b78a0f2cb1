"""RFC 8657 at issuance, against Knot DNS behind unbound: the ACME account URL the registration authority is
handed reaches the CAA decision, which is stored and audited; a record bound to another account forbids."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from ecert.core.errors import ValidationFailed
from ecert.services.caa import check_caa_at_issuance
from ecert.services.context import Context
from ecert.store.models import AuditEvent
from tests.integration.acme_ca_fixtures import acme_ca_with, subscriber
from tests.integration.acme_fixtures import Clock, assert_refused, nonce_of
from tests.integration.acme_order_helpers import b64_csr, make_csr, ready_order

ME = "https://acme.ecert.example.hk/acme/acct/17"
OTHER = "https://acme.ecert.example.hk/acme/acct/18"


@pytest.fixture(scope="module")
def rfc8657_zone(knot_dns: Any) -> Any:
    knot_dns.set_records("mine.acct.caa.example.com", "CAA", [f'0 issue "ecert.example.hk; accounturi={ME}"'])
    knot_dns.set_records(
        "dnsonly.acct.caa.example.com", "CAA", ['0 issue "ecert.example.hk; validationmethods=dns-01"']
    )
    return knot_dns


@pytest.fixture
def ctx(make_demo_ctx: Callable[..., Context], unbound_resolver: Any, rfc8657_zone: Any) -> Context:
    return make_demo_ctx(dns_resolvers=(unbound_resolver.resolver_addr,), allow_private_addresses=True)


def test_the_bound_account_may_issue(ctx: Context) -> None:
    check_caa_at_issuance(ctx, ["www.mine.acct.caa.example.com"], actor="acme:account:17", account_uri=ME)
    with ctx.read() as session:
        event = session.scalars(select(AuditEvent).where(AuditEvent.event == "caa.checked")).one()
    assert event.details["permitted"] is True


@pytest.mark.parametrize("account", [OTHER, None])
def test_another_account_or_no_account_may_not(ctx: Context, account: str | None) -> None:
    with pytest.raises(ValidationFailed) as refused:
        check_caa_at_issuance(ctx, ["www.mine.acct.caa.example.com"], actor="test", account_uri=account)
    assert "bound to another account" in str(refused.value)


def test_validationmethods_sees_the_method_used(ctx: Context) -> None:
    name = "dnsonly.acct.caa.example.com"
    check_caa_at_issuance(ctx, [name], actor="test", methods={name: "dns"}, account_uri=ME)
    with pytest.raises(ValidationFailed):
        check_caa_at_issuance(ctx, [name], actor="test", methods={name: "http_file"}, account_uri=ME)


# --- through ACME finalize: the account URL the client knows is the one CAA is matched against ----------------


@pytest.mark.parametrize("bound_to_me", [True, False])
def test_finalize_honours_accounturi(
    tmp_path: Path, db_url: str, clock: Clock, knot_dns: Any, bound_to_me: bool
) -> None:
    dns = {"dns_resolvers": (knot_dns.resolver_addr,), "allow_private_addresses": True}
    with acme_ca_with(tmp_path, db_url, clock, **dns) as ca:
        sub, other = subscriber(ca), subscriber(ca)
        _, order = ready_order(sub.client, knot_dns, [sub.server_name])
        account = sub.client.kid if bound_to_me else other.client.kid
        knot_dns.set_records(sub.server_name, "CAA", [f'0 issue "ecert.example.hk; accounturi={account}"'])
        try:
            jws = sub.client.jws(order["finalize"], {"csr": b64_csr(make_csr([sub.server_name]))})
            response = sub.client.post(order["finalize"], jws)
        finally:
            knot_dns.delete(sub.server_name, "CAA")
        if bound_to_me:
            assert response.status_code == 200, response.text
        else:
            assert_refused(response, 403, "caa", nonce_of(jws))
            assert "bound to another account" in response.json()["detail"]
