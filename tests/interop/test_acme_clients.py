"""Real ACME clients no one here wrote, against ecert's ACME server over HTTPS on loopback.

certbot (PyPI): EAB flags, http-01 standalone on a loopback port, dns-01 by manual hooks (a wildcard) with
--required-profile / --preferred-profile; lego (Debian): --eab --kid --hmac with http-01, dns-01 exec and
tls-alpn-01 on loopback ports. Every certificate is then judged by pkilint (lint_cabf_serverauth_cert, no
ERROR or FATAL) and by ``openssl verify`` through our root and through the cross-certificate.

ecert serves ACME over TLS with a certificate from a throwaway test root; the clients trust it through
REQUESTS_CA_BUNDLE (certbot) and LEGO_CA_CERTIFICATES (lego).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from tests.integration.acme_order_helpers import unique_label
from tests.interop.acme_interop import TlsServer
from tests.interop.acme_interop import hook as _hook
from tests.interop.acme_interop import judge as _judge
from tests.interop.acme_interop import knsupdate_line as _knsupdate_line
from tests.interop.acme_interop import names as _names
from tests.interop.acme_interop import run as _run

from ecert.services.acme_accounts import EabMade

CERTBOT = str(Path(sys.executable).parent / "certbot")
LEGO = "lego"


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
        f"--eab-hmac-key={made.hmac_key}",  # '=': a key starting with '-' would read as an option to argparse
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
