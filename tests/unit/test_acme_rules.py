"""The pure ACME rules (core/acme_rules.py): one table of inputs and the refusal each must give."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ecert.core.acme_rules import (
    AccountAction,
    AcmeRefusal,
    ProblemType,
    account_move,
    application_unfit_for_acme,
    check_alg,
    check_eab_alg,
    check_eab_usable,
    check_key_locator,
    check_url,
)
from ecert.core.errors import Conflict

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)

REFUSALS: list[tuple[str, object, ProblemType]] = [
    ("alg none", lambda: check_alg("none", "EC", "P-256"), ProblemType.BAD_SIGNATURE_ALGORITHM),
    ("alg HS256", lambda: check_alg("HS256", "oct", None), ProblemType.BAD_SIGNATURE_ALGORITHM),
    ("alg RS384 (not listed)", lambda: check_alg("RS384", "RSA", None), ProblemType.BAD_SIGNATURE_ALGORITHM),
    ("ES256 with an RSA key", lambda: check_alg("ES256", "RSA", None), ProblemType.BAD_SIGNATURE_ALGORITHM),
    ("ES384 with a P-256 key", lambda: check_alg("ES384", "EC", "P-256"), ProblemType.BAD_SIGNATURE_ALGORITHM),
    ("jwk and kid", lambda: check_key_locator(has_jwk=True, has_kid=True, jwk_allowed=True), ProblemType.MALFORMED),
    ("neither", lambda: check_key_locator(has_jwk=False, has_kid=False, jwk_allowed=False), ProblemType.MALFORMED),
    (
        "jwk on a kid resource",
        lambda: check_key_locator(has_jwk=True, has_kid=False, jwk_allowed=False),
        ProblemType.MALFORMED,
    ),
    (
        "kid on newAccount",
        lambda: check_key_locator(has_jwk=False, has_kid=True, jwk_allowed=True),
        ProblemType.MALFORMED,
    ),
    ("url of another resource", lambda: check_url("https://a/acme/x", "https://a/acme/y"), ProblemType.UNAUTHORIZED),
    ("url missing", lambda: check_url(None, "https://a/acme/y"), ProblemType.UNAUTHORIZED),
    ("EAB signed with ES256", lambda: check_eab_alg("ES256"), ProblemType.MALFORMED),
    (
        "EAB bound",
        lambda: check_eab_usable(status="bound", expires_at=NOW + timedelta(days=1), now=NOW),
        ProblemType.UNAUTHORIZED,
    ),
    ("EAB expired", lambda: check_eab_usable(status="unused", expires_at=NOW, now=NOW), ProblemType.UNAUTHORIZED),
]


@pytest.mark.parametrize(("case", "call", "problem"), REFUSALS, ids=[r[0] for r in REFUSALS])
def test_refusal(case: str, call: object, problem: ProblemType) -> None:
    with pytest.raises(AcmeRefusal) as caught:
        call()  # type: ignore[operator]
    assert caught.value.problem is problem and caught.value.rule and caught.value.rule.startswith("RFC 8555")


def test_accepted_values_pass() -> None:
    check_alg("RS256", "RSA", None)
    check_alg("ES256", "EC", "P-256")
    check_alg("ES384", "EC", "P-384")
    check_key_locator(has_jwk=True, has_kid=False, jwk_allowed=True)
    check_key_locator(has_jwk=False, has_kid=True, jwk_allowed=False)
    check_url("https://a/acme/x", "https://a/acme/x")
    for alg in ("HS256", "HS384", "HS512"):
        check_eab_alg(alg)
    check_eab_usable(status="unused", expires_at=NOW + timedelta(seconds=1), now=NOW)


def test_account_moves() -> None:
    assert [s.value for s in account_move("valid", AccountAction.DEACTIVATE)] == ["valid", "deactivated"]
    assert [s.value for s in account_move("valid", AccountAction.REVOKE)] == ["valid", "revoked"]
    with pytest.raises(Conflict):
        account_move("deactivated", AccountAction.DEACTIVATE)


def test_application_fit_for_acme() -> None:
    assert application_unfit_for_acme("accepted", NOW + timedelta(days=1), NOW) is None
    assert "rejected" in (application_unfit_for_acme("rejected", NOW + timedelta(days=1), NOW) or "")
    assert "ended" in (application_unfit_for_acme("accepted", NOW, NOW) or "")


def test_eab_keys_never_start_with_a_dash() -> None:
    """A key starting with "-" pasted after --eab-hmac-key is read as an option by certbot, lego and ecert."""
    import base64

    from ecert.services.acme_accounts import _hmac_key

    keys = [base64.urlsafe_b64encode(_hmac_key()).decode() for _ in range(2000)]
    assert not [k for k in keys if k.startswith("-")]
    assert len({k[0] for k in keys}) > 32  # still spread over the alphabet
