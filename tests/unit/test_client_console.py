"""What the ``ecert`` command prints reaches the person unchanged."""

from __future__ import annotations

import pytest

from ecert.cli import client_shared


def test_a_fingerprint_is_printed_as_it_is(capsys: pytest.CaptureFixture[str]) -> None:
    """rich turned ``:CD:`` into an emoji, so a SHA-256 fingerprint shown by ``ecert ca fetch`` no longer
    matched the one on the CA's page (seen in test_client_real_ca, whenever a fingerprint held ``:CD:``)."""
    fingerprint = "F8:0C:07:9F:A4:CD:1C:6F:1F:72:6C:9B:FB:DA:4D:43"
    client_shared.console().print(f"    SHA-256 {fingerprint}", markup=False)
    assert fingerprint in capsys.readouterr().out
