"""When `ecert renew` renews: force, expiry, the CA's ARI window, else two thirds of the lifetime (no I/O)."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from tests.unit.test_client_pki import TestPKI

from ecert.client.acme_renew import RenewalWindow, decide

START = dt.datetime(2027, 3, 15, tzinfo=dt.UTC)  # the day 100-day certificates begin (BR 6.3.2)


@pytest.fixture(scope="module")
def cert():  # type: ignore[no-untyped-def]
    """A 90-day certificate from START (TestPKI back-dates notBefore by an hour)."""
    key = ec.generate_private_key(ec.SECP256R1())
    return TestPKI(start=START).issue(key.public_key(), ["www.example.com"], days=90)


def _window(days: float) -> RenewalWindow:
    return RenewalWindow(START + dt.timedelta(days=days), START + dt.timedelta(days=days, hours=1))


@pytest.mark.parametrize(
    ("days_after_start", "window", "force", "due", "source"),
    [
        (1, None, True, True, "force"),
        (59, None, False, False, "lifetime"),  # two thirds of 90 days (and an hour) is day 60
        (60.5, None, False, True, "lifetime"),
        (91, _window(200), False, True, "expired"),  # never wait for a window after notAfter
        (10, _window(9), False, True, "ari"),  # the CA asks early (an incident): ARI wins over the lifetime
        (70, _window(80), False, False, "ari"),  # the CA asks later: ARI wins over the lifetime too
    ],
)
def test_decide(cert, days_after_start, window, force, due, source) -> None:  # type: ignore[no-untyped-def]
    decision = decide(cert, START + dt.timedelta(days=days_after_start), window, force=force)
    assert (decision.due, decision.source) == (due, source)


def test_the_ari_point_is_inside_the_window_and_stable(cert) -> None:  # type: ignore[no-untyped-def]
    window = RenewalWindow(START + dt.timedelta(days=50), START + dt.timedelta(days=52))
    first = decide(cert, START, window).at
    assert window.start <= first <= window.end
    assert decide(cert, START + dt.timedelta(days=1), window).at == first  # a daily cron job sees one answer
