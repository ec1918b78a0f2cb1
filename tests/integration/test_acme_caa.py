"""RFC 8657 at issuance, against Knot DNS behind unbound: the ACME account URL the registration authority is
handed reaches the CAA decision, which is stored and audited; a record bound to another account forbids."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select

from ecert.core.errors import ValidationFailed
from ecert.services.caa import check_caa_at_issuance
from ecert.services.context import Context
from ecert.store.models import AuditEvent

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
