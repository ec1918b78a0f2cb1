"""A session-wide softhsm2 token for tests that need a PKCS#11 backend.

tests/conftest.py registers this module (``pytest_plugins``): take ``softhsm_token`` as an argument, no
import needed; it yields ``(module_path, token_label, user_pin)``.

softhsm2 reads ``SOFTHSM2_CONF`` once, when the module is first initialised in the process, and
python-pkcs11 keeps that module loaded; so the token is made once per test session, before any
backend loads the module, and ``SOFTHSM2_CONF`` stays set for the whole session.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so"
TOKEN_LABEL = "ecert"
SO_PIN = "so-pin-1234"
USER_PIN = "user-pin-1234"
INIT_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "softhsm-init.sh"


@pytest.fixture(scope="session")
def softhsm_token(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, str]]:
    """Initialise a fresh softhsm2 token in a temp dir and point ``SOFTHSM2_CONF`` at it."""
    directory = tmp_path_factory.mktemp("softhsm")
    env = {
        **os.environ,
        "ECERT_HSM_LABEL": TOKEN_LABEL,
        "ECERT_HSM_SO_PIN": SO_PIN,
        "ECERT_HSM_USER_PIN": USER_PIN,
    }
    result = subprocess.run(
        ["sh", str(INIT_SCRIPT), str(directory)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    line = result.stdout.strip().splitlines()[-1]
    assert line.startswith("export SOFTHSM2_CONF="), result.stdout
    conf = line.removeprefix("export SOFTHSM2_CONF=")
    previous = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = conf
    try:
        yield SOFTHSM_MODULE, TOKEN_LABEL, USER_PIN
    finally:
        if previous is None:
            os.environ.pop("SOFTHSM2_CONF", None)
        else:
            os.environ["SOFTHSM2_CONF"] = previous
