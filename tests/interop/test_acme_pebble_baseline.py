"""The protocol baseline: the same clients against Pebble and against ecert in one test run, timed.

Pebble (Let's Encrypt's test server, Debian ``pebble``, EAB required in its config) is what the clients are
known to work with. Each test runs one client against ecert and against Pebble, asserts both issued (ecert's
certificate through pkilint and openssl via root and cross, Pebble's through openssl to Pebble's root), and
records the seconds each took: time.monotonic around the client's whole run (account, order, challenge,
finalize, download), not around the operator's EAB step or the checks. ``pytest -s`` prints a line per
client and a table at the end of the session, so a note can quote "ecert vs Pebble" per client.

``ECERT_INTEROP_ROUNDS`` (default 1) repeats each pair, alternating which CA goes first, and the table gives
medians: a client's poll interval (uacme waits 5 s whenever its first poll finds the challenge unfinished)
makes single runs bimodal on either server. Pebble stores nothing and lints nothing; ecert does both.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from tests.integration.acme_order_helpers import unique_label
from tests.integration.pebble_fixtures import EAB_HMAC_KEY, EAB_KID, Pebble
from tests.interop.acme_interop import (
    AcmeTarget,
    Durations,
    TlsServer,
    caddy_issue,
    certbot_http01,
    dehydrated,
    ecert_target,
    hook,
    judge,
    lego_dns01,
    names,
    openssl_verifies,
    uacme_issue,
)

CERTBOT = str(Path(sys.executable).parent / "certbot")

# One client run against one CA: (target, workdir, name) -> the full chain file it wrote.
Client = Callable[[AcmeTarget, Path, str], Path]


@dataclass
class Pair:
    """What a test needs to run one client against both servers."""

    ecert: TlsServer
    pebble: Pebble
    durations: Durations
    rounds: int
    workdir: Path

    def compare(self, client: str, domain: str, on_ecert: Client, on_pebble: Client) -> None:
        """Each round: a fresh name (and for ecert a fresh EAB credential), both CAs, order alternating."""
        for round_no in range(self.rounds):
            name = f"{unique_label('base-' + client)}.{domain}"
            self.ecert.knot.set_records(name, "A", ["127.0.0.1"])
            legs = [
                ("ecert", ecert_target(self.ecert, name), on_ecert),
                ("pebble", pebble_target(self.pebble), on_pebble),
            ]
            for ca, target, run_client in legs if round_no % 2 == 0 else legs[::-1]:
                where = self.workdir / f"{ca}-{round_no}"
                with self.durations.timed(client, ca):
                    chain = run_client(target, where, name)
                leaf = judge(self.ecert, chain, where) if ca == "ecert" else pebble_judge(self.pebble, chain, where)
                assert names(leaf) == {name}, ca
        print(f"\n{client}: " + self.durations.line(client))


@pytest.fixture
def pair(tls_server: TlsServer, pebble: Pebble, acme_durations: Durations, tmp_path: Path) -> Pair:
    rounds = int(os.environ.get("ECERT_INTEROP_ROUNDS", "1"))
    return Pair(tls_server, pebble, acme_durations, rounds, tmp_path)


def pebble_target(pebble: Pebble) -> AcmeTarget:
    """Pebble's directory with the EAB key its config holds (Pebble lets one kid bind several accounts)."""
    return AcmeTarget(pebble.directory_url, pebble.tls_root, EAB_KID, EAB_HMAC_KEY, pebble.http_port)


def pebble_judge(pebble: Pebble, fullchain: Path, workdir: Path) -> x509.Certificate:
    """Pebble's certificate verifies to Pebble's root (from its management API) through the chain it served."""
    chain = x509.load_pem_x509_certificates(fullchain.read_bytes())
    untrusted = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain[1:])
    openssl_verifies(workdir, chain[0], pebble.ca_pem("roots"), untrusted)
    return chain[0]


def test_certbot_http01_against_ecert_and_pebble(pair: Pair) -> None:
    def certbot(target: AcmeTarget, workdir: Path, name: str) -> Path:
        return certbot_http01(target, workdir, name, CERTBOT)

    pair.compare("certbot", "example.com", certbot, certbot)


def test_lego_dns01_exec_against_ecert_and_pebble(pair: Pair) -> None:
    knot, pebble = pair.ecert.knot, pair.pebble
    knot_hook = hook(
        pair.workdir / "knot-exec.sh",
        'if [ "$1" = "present" ]; then\n'
        'zone=$(echo "$2" | sed -E "s/.*\\.([^.]+\\.[^.]+)\\.$/\\1/")\n'
        f'printf "server 127.0.0.1 {knot.port}\\nzone %s.\\nupdate add %s 0 TXT \\"%s\\"\\nsend\\n" '
        '"$zone" "$2" "$3" | knsupdate\nfi\n',
    )
    challtest_hook = hook(
        pair.workdir / "challtest-exec.sh",
        'path=/set-txt; [ "$1" = "present" ] || path=/clear-txt\n'
        f'curl -sf -X POST -d "{{\\"host\\":\\"$2\\",\\"value\\":\\"$3\\"}}" {pebble.challtest_url}$path\n',
    )

    def on_ecert(target: AcmeTarget, workdir: Path, name: str) -> Path:
        return lego_dns01(target, workdir, name, knot_hook, knot.resolver_addr)

    def on_pebble(target: AcmeTarget, workdir: Path, name: str) -> Path:
        return lego_dns01(target, workdir, name, challtest_hook, f"127.0.0.1:{pebble.dns_port}")

    pair.compare("lego", "example.org", on_ecert, on_pebble)


def test_dehydrated_http01_against_ecert_and_pebble(pair: Pair) -> None:
    pair.compare("dehydrated", "example.com", dehydrated, dehydrated)


def test_uacme_http01_against_ecert_and_pebble(pair: Pair) -> None:
    pair.compare("uacme", "example.com", uacme_issue, uacme_issue)


def test_caddy_against_ecert_and_pebble(pair: Pair) -> None:
    def on_ecert(target: AcmeTarget, workdir: Path, name: str) -> Path:
        return caddy_issue(target, workdir, name, pair.ecert.tlsalpn_port)

    def on_pebble(target: AcmeTarget, workdir: Path, name: str) -> Path:
        return caddy_issue(target, workdir, name, pebble_tls_alpn_port(pair.pebble))

    pair.compare("caddy", "example.com", on_ecert, on_pebble)


def pebble_tls_alpn_port(pebble: Pebble) -> int:
    """The port Pebble's VA dials for tls-alpn-01, as written in the config the fixture gave it."""
    return int(json.loads((pebble.workdir / "pebble.json").read_text())["pebble"]["tlsPort"])
