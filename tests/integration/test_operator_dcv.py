"""Operator-held validations: every check is audited, failed ones included; the record names its method."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import select

from ecert.core.errors import ValidationFailed
from ecert.services.context import Context
from ecert.services.operator_dcv import (
    check_operator_validation,
    list_operator_validations,
    start_operator_validation,
)
from ecert.store.models import AuditEvent, DcvChallenge
from tests.integration.dcv_fixtures import KnotDns


@pytest.fixture
def op_ctx(make_demo_ctx: Callable[..., Context], knot_dns: KnotDns) -> Context:
    return make_demo_ctx(dns_resolvers=(knot_dns.resolver_addr,), allow_private_addresses=True)


def test_a_failed_check_is_audited_and_leaves_the_challenge_pending(op_ctx: Context) -> None:
    start_operator_validation(op_ctx, "example.org", actor="operator")
    with pytest.raises(ValidationFailed, match="example.org"):
        check_operator_validation(op_ctx, "example.org", actor="operator")
    with op_ctx.read() as s:
        checked = s.scalars(select(AuditEvent).where(AuditEvent.event == "dcv.operator_checked")).all()
        assert [e.details["passed"] for e in checked] == [False]
        challenge = s.scalar(select(DcvChallenge).where(DcvChallenge.application_id.is_(None)))
        assert challenge.status == "pending" and challenge.last_result
    assert list_operator_validations(op_ctx) == []


def test_a_passed_check_is_listed_with_its_method(op_ctx: Context, knot_dns: KnotDns) -> None:
    challenge = start_operator_validation(op_ctx, "EXAMPLE.org", actor="operator")
    assert challenge.domain == "example.org" and len(challenge.txt_value) >= 19  # >= 112 bits, BR 3.2.2.4
    knot_dns.add_txt(challenge.txt_hosts[1], challenge.txt_value)  # the _pki-validation label works too
    held = check_operator_validation(op_ctx, "example.org", actor="operator")
    assert (held.domain, held.method) == ("example.org", "dns")
    assert [h.domain for h in list_operator_validations(op_ctx)] == ["example.org"]
