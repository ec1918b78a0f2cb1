"""What the command lines print: exactly the text they were given."""

from __future__ import annotations

import pytest

from ecert.cli import output


def test_fingerprints_print_as_hex_never_as_emoji(capsys: pytest.CaptureFixture[str]) -> None:
    """rich turns ':ab:' into an emoji unless told not to; a fingerprint to compare must print as written."""
    output.console().print("SHA-256 12:AB:CD:ab:EF")
    assert "12:AB:CD:ab:EF" in capsys.readouterr().out
