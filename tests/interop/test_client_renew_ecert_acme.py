"""`ecert renew` against ecert's own ACME server over HTTPS on loopback: register with the application's EAB,
a first certificate by http-01, then a renewal that the CA's ARI window and ``replaces`` govern.

The server is the interop suite's (`tests/interop/test_acme_clients.py`: real clock, Knot behind unbound for
DCV and CAA, the demo hierarchy); this file adds only the subscriber's side.
"""

from __future__ import annotations

import json
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from tests.integration.acme_order_helpers import unique_label
from tests.integration.test_client_cli import run
from tests.interop.acme_interop import TlsServer  # the tls_server fixture comes from tests/interop/conftest.py
from tests.interop.acme_interop import ca_pems as _ca_pems

from ecert.client.acme_renew import ari_cert_id


def _listener(server: TlsServer) -> list[str]:
    return ["--http-01-port", str(server.http01_port), "--http-01-address", "127.0.0.1"]


def _store_with_first_certificate(server: TlsServer, tmp_path: Path, name: str) -> Path:
    """Account bound to the application for ``name``, ecert's roots installed, 'web' ordered and deployed."""
    made = server.eab_for(name)
    store = tmp_path / "store"
    r = run(
        store,
        "acme",
        "register",
        "--server",
        server.directory,
        "--ca-bundle",
        str(server.tls_root),
        "--eab-kid",
        made.kid,
        "--eab-hmac-key",
        made.hmac_key,
    )
    assert r.exit_code == 0, r.output
    cas = tmp_path / "cas.pem"
    cas.write_bytes(
        b"".join(c.public_bytes(serialization.Encoding.PEM) for k, c in _ca_pems(server.ctx).items() if "root" in k)
    )
    assert run(store, "ca", "install", str(cas)).exit_code == 0
    r = run(store, "acme", "order", "web", "--name", name, *_listener(server))
    assert r.exit_code == 0, r.output
    r = run(store, "deploy", "web", "--format", "nginx", "--out", str(tmp_path / "nginx"))
    assert r.exit_code == 0, r.output
    return store


def test_renew_over_ecerts_acme_with_ari_and_replaces(tls_server: TlsServer, tmp_path: Path) -> None:
    name = f"{unique_label('renew')}.example.com"
    tls_server.knot.set_records(name, "A", ["127.0.0.1"])
    store = _store_with_first_certificate(tls_server, tmp_path, name)
    first = x509.load_pem_x509_certificate((store / "live/web/cert.pem").read_bytes())

    r = run(store, "--json", "renew", "web", *_listener(tls_server))
    assert r.exit_code == 3, r.output  # ecert's window starts at two thirds of the validity
    assert json.loads(r.output)["results"][0]["decided_by"] == "ari"

    r = run(store, "--json", "renew", "web", "--force", *_listener(tls_server))
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)["results"][0]
    assert out["status"] == "renewed" and out["version"] == 2 and out["replaces"] == ari_cert_id(first)
    assert [d["error"] for d in out["deployed"]] == [None]
    second = x509.load_pem_x509_certificate((store / "live/web/cert.pem").read_bytes())
    assert second.serial_number != first.serial_number and second.issuer == first.issuer
    fullchain = x509.load_pem_x509_certificates((tmp_path / "nginx" / "fullchain.pem").read_bytes())
    assert fullchain[0] == second
    assert x509.load_pem_x509_certificate((store / "archive/web/cert1.pem").read_bytes()) == first


def test_wildcard_by_dns01_hook_with_the_wildcard_profile_renews_with_the_same_profile(
    tls_server: TlsServer, tmp_path: Path
) -> None:
    base = f"{unique_label('renew')}.example.org"
    made = tls_server.eab_for(f"*.{base}", cert_type="wildcard")
    hook = tmp_path / "dns-hook"
    zone = tls_server.knot.zone_of(base)
    hook.write_text(
        "#!/bin/sh\nset -e\n"
        f'echo "$1 $2" >> {tmp_path / "hook.log"}\n'
        '[ "$1" = add ] || exit 0\n'
        f'printf "server 127.0.0.1 {tls_server.knot.port}\\nzone {zone}.\\nupdate add %s. 0 TXT \\"%s\\"\\nsend\\n" '
        '"$2" "$3" | knsupdate\n'
    )
    hook.chmod(0o755)
    store = tmp_path / "store"
    args = ["--server", tls_server.directory, "--ca-bundle", str(tls_server.tls_root)]
    assert run(store, "acme", "register", *args, "--eab-kid", made.kid, "--eab-hmac-key", made.hmac_key).exit_code == 0
    r = run(
        store, "acme", "order", "wild", "-n", f"*.{base}", "-n", base, "--dns-hook", str(hook), "--profile", "wildcard"
    )
    assert r.exit_code == 0, r.output
    r = run(store, "--json", "renew", "wild", "--force", "--dns-hook", str(hook))
    assert r.exit_code == 0, r.output
    meta = json.loads((store / "live/wild/meta.json").read_text())
    assert meta["acme"]["profile"] == "wildcard" and meta["version"] == 2  # remembered from the first order
    renewed = x509.load_pem_x509_certificate((store / "live/wild/cert.pem").read_bytes())
    san = renewed.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(san.get_values_for_type(x509.DNSName)) == {f"*.{base}", base}
    log = (tmp_path / "hook.log").read_text().split()
    # The first order put two TXT records at one name (the wildcard and its base share it) and took them away;
    # the renewal needed none: ecert reused the authorizations inside their BR 4.2.1 period.
    assert (log.count("add"), log.count("del"), set(log) - {"add", "del"}) == (2, 2, {f"_acme-challenge.{base}"})
