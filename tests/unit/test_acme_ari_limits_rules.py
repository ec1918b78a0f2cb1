"""Pure rules of ARI (RFC 9773), ACME rate-limit windows and revokeCert reasons (RFC 8555 7.6, BR 7.2.2)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ecert.core.acme_ari import cert_id, parse_cert_id, window
from ecert.core.acme_limits import Limit, LimitName, refuse, retry_after_seconds, window_start
from ecert.core.acme_revocation import revocation_reason
from ecert.core.acme_rules import AcmeRefusal, ProblemType

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("serial", "encoded_serial"),
    [
        (0x01, "AQ"),
        (0x7F, "fw"),
        (0x80, "AIA"),  # the top bit set: DER puts a zero octet in front (RFC 9773 4.1)
        (0x87654321, "AIdlQyE"),
    ],
)
def test_cert_id_is_aki_dot_serial_content_octets(serial: int, encoded_serial: str) -> None:
    text = cert_id(bytes.fromhex("69882a3b"), serial)
    assert text == f"aYgqOw.{encoded_serial}"
    parsed = parse_cert_id(text)
    assert (parsed.key_identifier, parsed.serial) == (bytes.fromhex("69882a3b"), serial)


@pytest.mark.parametrize(
    "text",
    ["", "abc", "a.b.c", "aYgqOw.", ".AQ", "aYgqOw.AQ==", "aYgqOw.AAE", "aYgqOw.gA", "aYgqOw.AA", "aY+qOw.AQ"],
)
def test_malformed_cert_ids_are_refused(text: str) -> None:
    with pytest.raises(AcmeRefusal) as refused:
        parse_cert_id(text)
    assert refused.value.problem is ProblemType.MALFORMED and refused.value.rule == "RFC 9773 4.1"


def test_window_starts_at_two_thirds_with_jitter_and_is_stable() -> None:
    nb, na = NOW, NOW + timedelta(days=90)
    found = window(not_before=nb, not_after=na, serial=12345, revoked=False, replace_now=False, now=NOW)
    assert nb + timedelta(days=60) <= found.start <= nb + timedelta(days=63)
    assert found.start < found.end < na and not found.urgent
    assert found == window(not_before=nb, not_after=na, serial=12345, revoked=False, replace_now=False, now=NOW)
    other = window(not_before=nb, not_after=na, serial=12346, revoked=False, replace_now=False, now=NOW)
    assert other.start != found.start


@pytest.mark.parametrize(("revoked", "replace_now"), [(True, False), (False, True)])
def test_revoked_or_marked_is_a_window_in_the_past(revoked: bool, replace_now: bool) -> None:
    found = window(
        not_before=NOW - timedelta(days=1),
        not_after=NOW + timedelta(days=89),
        serial=1,
        revoked=revoked,
        replace_now=replace_now,
        now=NOW,
    )
    assert found.start < found.end < NOW and found.urgent
    assert found.retry_after < timedelta(hours=6)


def test_fixed_windows_and_retry_after() -> None:
    limit = Limit(LimitName.NEW_ORDERS_PER_ACCOUNT, 3, timedelta(hours=3))
    start = window_start(limit, NOW + timedelta(minutes=10))
    assert start == datetime(2026, 11, 25, 12, 0, tzinfo=UTC)  # 12:00 is a multiple of 3 h since the epoch
    assert retry_after_seconds(limit, NOW + timedelta(minutes=10)) == 170 * 60
    refusal = refuse(limit, "17", NOW)
    assert refusal.problem is ProblemType.RATE_LIMITED and refusal.status == 429
    assert refusal.headers == {"Retry-After": str(3 * 3600)}


def test_a_limit_needs_a_positive_window() -> None:
    with pytest.raises(ValueError):
        Limit(LimitName.NEW_ORDERS_PER_ACCOUNT, 3, timedelta(0))


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (None, None),
        (0, None),
        (1, "keyCompromise"),
        (3, "affiliationChanged"),
        (4, "superseded"),
        (5, "cessationOfOperation"),
    ],
)
def test_subscriber_reasons(code: object, reason: str | None) -> None:
    assert revocation_reason(code) == reason


@pytest.mark.parametrize("code", [2, 6, 7, 8, 9, 10, 11, -1, "1", 1.0, True])
def test_reasons_outside_br_7_2_2(code: object) -> None:
    with pytest.raises(AcmeRefusal) as refused:
        revocation_reason(code)
    assert refused.value.problem is ProblemType.BAD_REVOCATION_REASON
