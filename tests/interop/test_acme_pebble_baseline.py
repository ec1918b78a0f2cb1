"""The protocol baseline: the same clients against Pebble and against ecert in one test run, timed.

Pebble (Let's Encrypt's test server, Debian ``pebble``, EAB required in its config) is what the clients are
known to work with; each test runs one client against ecert, then against Pebble, asserts both issued, and
records the seconds each took (time.monotonic around the client's whole run: account, order, challenge,
finalize, download). ``pytest -s`` prints a line per client and the table at the end of the session, so a
note can quote "ecert vs Pebble" per client. Pebble stores nothing and lints nothing; ecert does both.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

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


def pebble_target(pebble: Pebble) -> AcmeTarget:
    return AcmeTarget(pebble.directory_url, pebble.tls_root, EAB_KID, EAB_HMAC_KEY, pebble.http_port)


def pebble_judge(pebble: Pebble, fullchain: Path, workdir: Path) -> x509.Certificate:
    """Pebble's certificate verifies to Pebble's root (from its management API) through the chain it served."""
    chain = x509.load_pem_x509_certificates(fullchain.read_bytes())
    untrusted = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain[1:])
    openssl_verifies(workdir, chain[0], pebble.ca_pem("roots"), untrusted)
    return chain[0]


def report(durations: Durations, client: str) -> None:
    ecert, pebble = durations.seconds[(client, "ecert")], durations.seconds[(client, "pebble")]
    print(f"\n{client}: ecert {ecert:.2f} s, Pebble {pebble:.2f} s, ratio {ecert / pebble:.2f}")


def test_certbot_http01_against_ecert_and_pebble(
    tls_server: TlsServer, pebble: Pebble, acme_durations: Durations, tmp_path: Path
) -> None:
    name = f"{unique_label('base-certbot')}.example.com"
    tls_server.knot.set_records(name, "A", ["127.0.0.1"])
    target = ecert_target(tls_server, name)
    with acme_durations.timed("certbot", "ecert"):
        ours = certbot_http01(target, tmp_path / "ecert", name, CERTBOT)
    with acme_durations.timed("certbot", "pebble"):
        theirs = certbot_http01(pebble_target(pebble), tmp_path / "pebble", name, CERTBOT)
    assert names(judge(tls_server, ours, tmp_path)) == names(pebble_judge(pebble, theirs, tmp_path)) == {name}
    report(acme_durations, "certbot")


def test_lego_dns01_exec_against_ecert_and_pebble(
    tls_server: TlsServer, pebble: Pebble, acme_durations: Durations, tmp_path: Path
) -> None:
    name = f"{unique_label('base-lego')}.example.org"
    target = ecert_target(tls_server, name)
    knot_hook = hook(
        tmp_path / "knot-exec.sh",
        'if [ "$1" = "present" ]; then\n'
        'zone=$(echo "$2" | sed -E "s/.*\\.([^.]+\\.[^.]+)\\.$/\\1/")\n'
        f'printf "server 127.0.0.1 {tls_server.knot.port}\\nzone %s.\\nupdate add %s 0 TXT \\"%s\\"\\nsend\\n" '
        '"$zone" "$2" "$3" | knsupdate\nfi\n',
    )
    challtest_hook = hook(
        tmp_path / "challtest-exec.sh",
        'path=/set-txt; [ "$1" = "present" ] || path=/clear-txt\n'
        f'curl -sf -X POST -d "{{\\"host\\":\\"$2\\",\\"value\\":\\"$3\\"}}" {pebble.challtest_url}$path\n',
    )
    with acme_durations.timed("lego", "ecert"):
        ours = lego_dns01(target, tmp_path / "ecert", name, knot_hook, tls_server.knot.resolver_addr)
    with acme_durations.timed("lego", "pebble"):
        theirs = lego_dns01(pebble_target(pebble), tmp_path / "pebble", name, challtest_hook, pebble_resolver(pebble))
    assert names(judge(tls_server, ours, tmp_path)) == names(pebble_judge(pebble, theirs, tmp_path)) == {name}
    report(acme_durations, "lego")


def pebble_resolver(pebble: Pebble) -> str:
    return f"127.0.0.1:{pebble.dns_port}"


def test_dehydrated_http01_against_ecert_and_pebble(
    tls_server: TlsServer, pebble: Pebble, acme_durations: Durations, tmp_path: Path
) -> None:
    name = f"{unique_label('base-dehydrated')}.example.com"
    tls_server.knot.set_records(name, "A", ["127.0.0.1"])
    target = ecert_target(tls_server, name)
    with acme_durations.timed("dehydrated", "ecert"):
        ours = dehydrated(target, tmp_path / "ecert", name)
    with acme_durations.timed("dehydrated", "pebble"):
        theirs = dehydrated(pebble_target(pebble), tmp_path / "pebble", name)
    assert names(judge(tls_server, ours, tmp_path)) == names(pebble_judge(pebble, theirs, tmp_path)) == {name}
    report(acme_durations, "dehydrated")


def test_uacme_http01_against_ecert_and_pebble(
    tls_server: TlsServer, pebble: Pebble, acme_durations: Durations, tmp_path: Path
) -> None:
    name = f"{unique_label('base-uacme')}.example.com"
    tls_server.knot.set_records(name, "A", ["127.0.0.1"])
    target = ecert_target(tls_server, name)
    with acme_durations.timed("uacme", "ecert"):
        ours = uacme_issue(target, tmp_path / "ecert", name)
    with acme_durations.timed("uacme", "pebble"):
        theirs = uacme_issue(pebble_target(pebble), tmp_path / "pebble", name)
    assert names(judge(tls_server, ours, tmp_path)) == names(pebble_judge(pebble, theirs, tmp_path)) == {name}
    report(acme_durations, "uacme")


def test_caddy_against_ecert_and_pebble(
    tls_server: TlsServer, pebble: Pebble, acme_durations: Durations, tmp_path: Path
) -> None:
    name = f"{unique_label('base-caddy')}.example.com"
    tls_server.knot.set_records(name, "A", ["127.0.0.1"])
    target = ecert_target(tls_server, name)
    with acme_durations.timed("caddy", "ecert"):
        ours = caddy_issue(target, tmp_path / "ecert", name, tls_server.tlsalpn_port)
    with acme_durations.timed("caddy", "pebble"):
        theirs = caddy_issue(pebble_target(pebble), tmp_path / "pebble", name, pebble_tls_alpn_port(pebble))
    assert names(judge(tls_server, ours, tmp_path)) == names(pebble_judge(pebble, theirs, tmp_path)) == {name}
    report(acme_durations, "caddy")


def pebble_tls_alpn_port(pebble: Pebble) -> int:
    """The port Pebble's VA dials for tls-alpn-01, as written in the config the fixture gave it."""
    return int(json.loads((pebble.workdir / "pebble.json").read_text())["pebble"]["tlsPort"])
