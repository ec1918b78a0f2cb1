"""The ACME secret when the operator sets none: `ecert-ca serve` keeps one in the data directory, and
`ecert-ca acme eab new` run beside it seals EAB keys with that same one.

Before, a fresh `serve --demo` answered every ACME request with an error (no secret to sign nonces with), and
`acme eab new`, as the README lists it, failed with a message naming a setting nobody would know to look up.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import josepy as jose
import pytest
from acme import client as acme_client
from acme import messages
from cryptography.hazmat.primitives.asymmetric import ec

from tests.integration.test_serve_workers import _register, serve_env, serving

ECERT_CA = Path(sys.executable).with_name("ecert-ca")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    env = serve_env(tmp_path)  # no ECERT_ACME_EAB_SECRET, as on a machine where nobody has set one
    with serving(env, ready="/acme/directory") as (base, _):
        yield base, env


def test_serve_keeps_one_private_acme_secret_and_hands_out_nonces(
    served: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    base, _ = served
    kept = tmp_path / "data" / "secrets" / "acme-secret"
    assert kept.stat().st_mode & 0o777 == 0o600 and len(kept.read_text().strip()) >= 32
    nonces = [httpx.head(f"{base}/acme/new-nonce", timeout=10) for _ in range(4)]  # new connections: both workers
    assert all(n.status_code == 200 and n.headers["Replay-Nonce"] for n in nonces), [n.status_code for n in nonces]


def test_a_credential_from_the_cli_binds_an_account_at_the_served_directory(
    served: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    base, env = served
    _, registered = _register(tmp_path / "data", env)
    made = subprocess.run(
        [str(ECERT_CA), "acme", "eab", "new", registered.reference_number, "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    eab_data = json.loads(made.stdout)["data"]

    key = jose.JWKEC(key=ec.generate_private_key(ec.SECP256R1()))
    net = acme_client.ClientNetwork(key, alg=jose.ES256, user_agent="ecert-test")
    directory = acme_client.ClientV2.get_directory(f"{base}/acme/directory", net)
    client = acme_client.ClientV2(directory, net)
    eab = messages.ExternalAccountBinding.from_data(key.public_key(), eab_data["kid"], eab_data["hmac_key"], directory)
    account = client.new_account(
        messages.NewRegistration.from_data(terms_of_service_agreed=True, external_account_binding=eab)
    )
    assert account.body.status == "valid"
