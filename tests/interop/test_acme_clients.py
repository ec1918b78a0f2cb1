"""Real ACME clients no one here wrote, against ecert's ACME server over HTTPS on loopback.

certbot (PyPI): EAB flags, http-01 standalone on a loopback port, dns-01 by manual hooks (a wildcard) with
--required-profile / --preferred-profile; lego (Debian): --eab --kid --hmac with http-01, dns-01 exec and
tls-alpn-01 on loopback ports. Every certificate is then judged by pkilint (lint_cabf_serverauth_cert, no
ERROR or FATAL) and by ``openssl verify`` through our root and through the cross-certificate.

ecert serves ACME over TLS with a certificate from a throwaway test root; the clients trust it through
REQUESTS_CA_BUNDLE (certbot) and LEGO_CA_CERTIFICATES (lego).
"""

from __future__ import annotations

# ruff: noqa: F811  (pytest fixtures imported from the fixture modules are parameters of the tests below)
import contextlib
import datetime as dt
import io
import ipaddress
import os
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID
from pkilint.bin import lint_cabf_serverauth_cert
from sqlalchemy import select
from tests.integration.acme_fixtures import EAB_SECRET, ENV
from tests.integration.acme_order_helpers import add_named_application, unique_label
from tests.integration.dcv_fixtures import KnotDns, free_port
from tests.integration.foundation_fixtures import make_ctx

from ecert.services.acme_accounts import EabMade, make_eab
from ecert.services.ca_config import load_hierarchy_config
from ecert.services.ceremony import init_hierarchy
from ecert.services.context import Context
from ecert.store.models import CA
from ecert.web.app import create_app

CERTBOT = str(Path(sys.executable).parent / "certbot")
LEGO = "lego"
CLIENT_TIMEOUT = 120


@dataclass
class TlsServer:
    ctx: Context
    url: str  # https://127.0.0.1:PORT
    tls_root: Path  # what the clients trust for the ACME server itself
    http01_port: int  # where the CA fetches http-01 (the client's standalone listener)
    tlsalpn_port: int  # where the CA connects for tls-alpn-01
    knot: KnotDns
    workdir: Path

    @property
    def directory(self) -> str:
        return f"{self.url}/acme/directory"

    def eab_for(self, *names: str, cert_type: str = "server") -> EabMade:
        reference = add_named_application(self.ctx, names[0], names[1:], cert_type=cert_type)
        return make_eab(self.ctx, reference, wrap_secret=EAB_SECRET, actor="operator:test")


def _name_builder(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, common_name)])


def _tls_material(workdir: Path) -> tuple[Path, Path, Path]:
    """A throwaway root and a 127.0.0.1/localhost server certificate under it (for the ACME server's TLS)."""
    now = dt.datetime.now(dt.UTC)
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = (
        x509.CertificateBuilder()
        .subject_name(_name_builder("ecert ACME test TLS root"))
        .issuer_name(_name_builder("ecert ACME test TLS root"))
        .public_key(root_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(root_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name_builder("localhost"))
        .issuer_name(root.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(root_key, hashes.SHA256())
    )
    root_pem, cert_pem, key_pem = workdir / "tls-root.pem", workdir / "tls-cert.pem", workdir / "tls-key.pem"
    root_pem.write_bytes(root.public_bytes(serialization.Encoding.PEM))
    cert_pem.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_pem.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return root_pem, cert_pem, key_pem


def _serve_tls(app: Any, cert: Path, key: Path) -> tuple[str, Any, threading.Thread]:
    import uvicorn

    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="error", lifespan="on", ssl_certfile=str(cert), ssl_keyfile=str(key)
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the ACME server did not start")
        time.sleep(0.02)
    return f"https://127.0.0.1:{port}", server, thread


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory, knot_dns: KnotDns) -> Iterator[TlsServer]:
    """ecert (SQLite, real clock, demo hierarchy) serving ACME over HTTPS on 127.0.0.1."""
    workdir = tmp_path_factory.mktemp("acme-clients")
    http01_port, tlsalpn_port = free_port(), free_port()
    ctx = make_ctx(
        workdir,
        None,
        dns_resolvers=(knot_dns.resolver_addr,),
        allow_private_addresses=True,
        caa_identities=("ecert.example.hk",),
        http_port=http01_port,
        https_port=tlsalpn_port,
    )
    ctx.acme_secret = EAB_SECRET
    init_hierarchy(ctx, load_hierarchy_config(None), demo=True)
    tls_root, cert, key = _tls_material(workdir)
    url, server, thread = _serve_tls(create_app(ctx.settings, {**ENV, "ECERT_JOBS": "off"}, context=ctx), cert, key)
    try:
        yield TlsServer(ctx, url, tls_root, http01_port, tlsalpn_port, knot_dns, workdir)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        ctx.close()


# --- what every certificate must pass ---------------------------------------------------------------------------


def _ca_pems(ctx: Context) -> dict[str, x509.Certificate]:
    with ctx.read() as session:
        return {
            row.role + ":" + row.label: x509.load_der_x509_certificate(row.cert_der)
            for row in session.scalars(select(CA))
        }


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _judge(server: TlsServer, fullchain: Path, workdir: Path) -> x509.Certificate:
    """pkilint finds no ERROR/FATAL; openssl verifies through our root and through the cross-certificate."""
    chain = x509.load_pem_x509_certificates(fullchain.read_bytes())
    leaf, issuing = chain[0], chain[1]
    (workdir / "leaf.pem").write_bytes(_pem(leaf))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = lint_cabf_serverauth_cert.main(
            ["lint", "-t", "OV-FINAL-CERTIFICATE", "-s", "ERROR", str(workdir / "leaf.pem")]
        )
    assert (rc, out.getvalue().strip()) == (0, ""), out.getvalue()
    cas = _ca_pems(server.ctx)
    root = next(c for k, c in cas.items() if k.startswith("root:") and c.subject == issuing.issuer)
    cross = next(c for k, c in cas.items() if k.startswith("cross:") and c.subject == root.subject)
    external = next(c for k, c in cas.items() if k.startswith("external-root:") and c.subject == cross.issuer)
    (workdir / "issuing.pem").write_bytes(_pem(issuing))
    (workdir / "root.pem").write_bytes(_pem(root))
    (workdir / "via-cross.pem").write_bytes(_pem(issuing) + _pem(cross))
    (workdir / "external.pem").write_bytes(_pem(external))
    for anchor, untrusted in (("root.pem", "issuing.pem"), ("external.pem", "via-cross.pem")):
        done = subprocess.run(
            ["openssl", "verify", "-CAfile", anchor, "-untrusted", untrusted, "leaf.pem"],
            cwd=workdir,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == 0 and "leaf.pem: OK" in done.stdout, (anchor, done.stdout, done.stderr)
    return leaf


def _names(cert: x509.Certificate) -> set[str]:
    return set(
        cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    )


def _run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=CLIENT_TIMEOUT)
    assert done.returncode == 0, f"{args[0]} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def _hook(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\nset -e\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


def _knsupdate_line(server: TlsServer, action: str, fqdn: str, value: str) -> str:
    """A knsupdate script (sh) adding or deleting one TXT record at the loopback Knot."""
    zone = server.knot.zone_of(fqdn.rstrip(".").removeprefix("_acme-challenge."))
    return (
        f'printf "server 127.0.0.1 {server.knot.port}\\nzone {zone}.\\n'
        f'update {action} {fqdn} 0 TXT \\"%s\\"\\nsend\\n" "{value}" | knsupdate\n'
    )


# --- certbot -----------------------------------------------------------------------------------------------------


def _certbot(server: TlsServer, workdir: Path, made: EabMade, names: list[str], *extra: str) -> Path:
    args = [
        CERTBOT,
        "certonly",
        "--non-interactive",
        "--agree-tos",
        "-m",
        "admin@example.com",
        "--server",
        server.directory,
        "--eab-kid",
        made.kid,
        "--eab-hmac-key",
        made.hmac_key,
        "--config-dir",
        str(workdir / "conf"),
        "--work-dir",
        str(workdir / "work"),
        "--logs-dir",
        str(workdir / "logs"),
        "--key-type",
        "ecdsa",
        "--cert-name",
        "t",
        *extra,
    ]
    for name in names:
        args += ["-d", name]
    _run(args, {**os.environ, "REQUESTS_CA_BUNDLE": str(server.tls_root)}, workdir)
    return workdir / "conf" / "live" / "t" / "fullchain.pem"


def test_certbot_http01_standalone_with_required_profile(tls_server: TlsServer, tmp_path: Path) -> None:
    name = f"{unique_label('certbot')}.example.com"
    tls_server.knot.set_records(name, "A", ["127.0.0.1"])
    made = tls_server.eab_for(name)
    fullchain = _certbot(
        tls_server,
        tmp_path,
        made,
        [name],
        "--standalone",
        "--preferred-challenges",
        "http",
        "--http-01-address",
        "127.0.0.1",
        "--http-01-port",
        str(tls_server.http01_port),
        "--required-profile",
        "server",
    )
    assert _names(_judge(tls_server, fullchain, tmp_path)) == {name}


def test_certbot_dns01_manual_hooks_wildcard_with_preferred_profile(tls_server: TlsServer, tmp_path: Path) -> None:
    base = f"{unique_label('certbot')}.example.org"
    made = tls_server.eab_for(f"*.{base}", cert_type="wildcard")
    auth = _hook(
        tmp_path / "auth.sh", _knsupdate_line(tls_server, "add", f"_acme-challenge.{base}.", "$CERTBOT_VALIDATION")
    )
    fullchain = _certbot(
        tls_server,
        tmp_path,
        made,
        [f"*.{base}", base],
        "--manual",
        "--preferred-challenges",
        "dns",
        "--manual-auth-hook",
        str(auth),
        "--preferred-profile",
        "wildcard",
    )
    assert _names(_judge(tls_server, fullchain, tmp_path)) == {f"*.{base}", base}


# --- lego --------------------------------------------------------------------------------------------------------


def _lego(
    server: TlsServer, workdir: Path, made: EabMade, names: list[str], *extra: str, env: dict[str, str] | None = None
) -> Path:
    args = [
        LEGO,
        "--server",
        server.directory,
        "--eab",
        "--kid",
        made.kid,
        "--hmac",
        made.hmac_key,
        "--email",
        "admin@example.com",
        "--accept-tos",
        "--path",
        str(workdir / "lego"),
        "--key-type",
        "ec256",
        *extra,
    ]
    for name in names:
        args += ["-d", name]
    _run([*args, "run"], {**os.environ, "LEGO_CA_CERTIFICATES": str(server.tls_root), **(env or {})}, workdir)
    stem = names[0].replace("*", "_")
    return workdir / "lego" / "certificates" / f"{stem}.crt"


def test_lego_http01(tls_server: TlsServer, tmp_path: Path) -> None:
    name = f"{unique_label('lego')}.example.net"
    tls_server.knot.set_records(name, "A", ["127.0.0.1"])
    chain = _lego(
        tls_server,
        tmp_path,
        tls_server.eab_for(name),
        [name],
        "--http",
        "--http.port",
        f"127.0.0.1:{tls_server.http01_port}",
    )
    assert _names(_judge(tls_server, chain, tmp_path)) == {name}


def test_lego_tls_alpn01(tls_server: TlsServer, tmp_path: Path) -> None:
    name = f"{unique_label('lego')}.example.net"
    tls_server.knot.set_records(name, "A", ["127.0.0.1"])
    chain = _lego(
        tls_server,
        tmp_path,
        tls_server.eab_for(name),
        [name],
        "--tls",
        "--tls.port",
        f"127.0.0.1:{tls_server.tlsalpn_port}",
    )
    assert _names(_judge(tls_server, chain, tmp_path)) == {name}


def test_lego_dns01_exec_multi_domain(tls_server: TlsServer, tmp_path: Path) -> None:
    names = [f"{unique_label('lego')}.example.com", f"{unique_label('lego')}.example.org"]
    hook = _hook(
        tmp_path / "exec.sh",
        'if [ "$1" = "present" ]; then\n' + _knsupdate_line_for_exec(tls_server) + "fi\n",
    )
    env = {
        "EXEC_PATH": str(hook),
        "EXEC_PROPAGATION_TIMEOUT": "30",
        "EXEC_POLLING_INTERVAL": "1",
        "EXEC_SEQUENCE_INTERVAL": "1",
    }
    chain = _lego(
        tls_server,
        tmp_path,
        tls_server.eab_for(*names, cert_type="multi"),
        names,
        "--dns",
        "exec",
        "--dns.resolvers",
        tls_server.knot.resolver_addr,
        "--dns.disable-cp",
        env=env,
    )
    assert _names(_judge(tls_server, chain, tmp_path)) == set(names)


def _knsupdate_line_for_exec(server: TlsServer) -> str:
    """lego's exec provider calls ``hook present <fqdn.> <value>``; the zone is the fqdn's last two labels."""
    return (
        'zone=$(echo "$2" | sed -E "s/.*\\.([^.]+\\.[^.]+)\\.$/\\1/")\n'
        f'printf "server 127.0.0.1 {server.knot.port}\\nzone %s.\\nupdate add %s 0 TXT \\"%s\\"\\nsend\\n" '
        '"$zone" "$2" "$3" | knsupdate\n'
    )
