"""Fixtures shared by the integration tests of the subscriber tool: a test hierarchy and password files."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.unit.test_client_pki import TestPKI


@pytest.fixture
def pki() -> TestPKI:
    """A root, issuing CAs and leaves dated from the wall clock (openssl and nginx check validity against it)."""
    return TestPKI(start=datetime.now(UTC))


@pytest.fixture
def secrets(tmp_path: Path) -> dict[str, str]:
    """Password files for ``--passphrase-file`` and friends: the key's, the PFX's, and a wrong one."""
    (tmp_path / "pass").write_text("key-pass\n")
    (tmp_path / "pfxpw").write_text("pfx-pass\n")
    (tmp_path / "wrongpw").write_text("nope\n")
    return {"key": str(tmp_path / "pass"), "pfx": str(tmp_path / "pfxpw"), "wrong": str(tmp_path / "wrongpw")}
