"""What the ACME interop tests share: ecert over HTTPS on loopback, a webroot server, and the certificate checks.

Real clients (certbot, lego, dehydrated, uacme, Caddy) speak to ecert the way they speak to any CA: over TLS,
so ecert is served by uvicorn with a certificate from a throwaway root the clients are told to trust. Each
certificate they bring back is judged the same way: pkilint's CA/B Forum server-auth lint finds no ERROR or
FATAL, and ``openssl verify`` builds a path through our root and another through the cross-certificate.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import io
import ipaddress
import os
import signal
import stat
import statistics
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID
from pkilint.bin import lint_cabf_serverauth_cert
from sqlalchemy import select
from tests.integration.acme_fixtures import EAB_SECRET
from tests.integration.acme_order_helpers import add_named_application
from tests.integration.dcv_fixtures import KnotDns, free_port

from ecert.services.acme_accounts import EabMade, make_eab
from ecert.services.context import Context
from ecert.store.models import CA

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


def tls_material(workdir: Path) -> tuple[Path, Path, Path]:
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


def serve_tls(app: Any, cert: Path, key: Path) -> tuple[str, Any, threading.Thread]:
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


# --- what every certificate must pass ---------------------------------------------------------------------------


def ca_pems(ctx: Context) -> dict[str, x509.Certificate]:
    with ctx.read() as session:
        return {
            row.role + ":" + row.label: x509.load_der_x509_certificate(row.cert_der)
            for row in session.scalars(select(CA))
        }


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def lint_clean(leaf: x509.Certificate, workdir: Path) -> None:
    """pkilint's CA/B Forum OV lint reports nothing at ERROR or above."""
    (workdir / "leaf.pem").write_bytes(pem(leaf))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = lint_cabf_serverauth_cert.main(
            ["lint", "-t", "OV-FINAL-CERTIFICATE", "-s", "ERROR", str(workdir / "leaf.pem")]
        )
    assert (rc, out.getvalue().strip()) == (0, ""), out.getvalue()


def openssl_verifies(workdir: Path, leaf: x509.Certificate, anchor: bytes, untrusted: bytes) -> None:
    """``openssl verify`` builds a path from ``leaf`` through ``untrusted`` to ``anchor`` (as a relying party)."""
    (workdir / "leaf.pem").write_bytes(pem(leaf))
    (workdir / "anchor.pem").write_bytes(anchor)
    (workdir / "untrusted.pem").write_bytes(untrusted)
    done = subprocess.run(
        ["openssl", "verify", "-CAfile", "anchor.pem", "-untrusted", "untrusted.pem", "leaf.pem"],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0 and "leaf.pem: OK" in done.stdout, (done.stdout, done.stderr)


def judge(server: TlsServer, fullchain: Path, workdir: Path) -> x509.Certificate:
    """pkilint finds no ERROR/FATAL; openssl verifies through our root and through the cross-certificate."""
    chain = x509.load_pem_x509_certificates(fullchain.read_bytes())
    leaf, issuing = chain[0], chain[1]
    lint_clean(leaf, workdir)
    cas = ca_pems(server.ctx)
    root = next(c for k, c in cas.items() if k.startswith("root:") and c.subject == issuing.issuer)
    cross = next(c for k, c in cas.items() if k.startswith("cross:") and c.subject == root.subject)
    external = next(c for k, c in cas.items() if k.startswith("external-root:") and c.subject == cross.issuer)
    openssl_verifies(workdir, leaf, pem(root), pem(issuing))
    openssl_verifies(workdir, leaf, pem(external), pem(issuing) + pem(cross))
    return leaf


def names(cert: x509.Certificate) -> set[str]:
    return set(
        cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    )


def run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run a client to completion within CLIENT_TIMEOUT; on timeout its whole process group (and no other) dies.

    Shell-script clients (dehydrated) leave curl and openssl children that killing the script alone would orphan.
    """
    proc = subprocess.Popen(
        args, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        stdout, stderr = proc.communicate(timeout=CLIENT_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        raise AssertionError(f"{args[0]} ran past {CLIENT_TIMEOUT} s:\n{stdout[-3000:]}\n{stderr[-3000:]}") from None
    assert proc.returncode == 0, f"{args[0]} failed:\n{stdout[-3000:]}\n{stderr[-3000:]}"
    return subprocess.CompletedProcess(args, proc.returncode, stdout, stderr)


def hook(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\nset -e\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


def knsupdate_line(server: TlsServer, action: str, fqdn: str, value: str) -> str:
    """A knsupdate script (sh) adding or deleting one TXT record at the loopback Knot."""
    zone = server.knot.zone_of(fqdn.rstrip(".").removeprefix("_acme-challenge."))
    return (
        f'printf "server 127.0.0.1 {server.knot.port}\\nzone {zone}.\\n'
        f'update {action} {fqdn} 0 TXT \\"%s\\"\\nsend\\n" "{value}" | knsupdate\n'
    )


# --- a webroot on loopback, for clients that only write files (dehydrated, uacme hooks) --------------------------


class _QuietFiles(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass


@contextlib.contextmanager
def webroot(root: Path, port: int) -> Iterator[Path]:
    """Serve ``root`` over plain HTTP on 127.0.0.1:``port`` (the http-01 port); yield the challenge directory.

    A client writes ``<token>`` into the yielded ``.well-known/acme-challenge`` directory, and the CA's fetch
    of ``http://NAME:port/.well-known/acme-challenge/<token>`` finds it, as a web server's docroot would.
    """
    challenges = root / ".well-known" / "acme-challenge"
    challenges.mkdir(parents=True, exist_ok=True)
    server = ThreadingHTTPServer(("127.0.0.1", port), functools.partial(_QuietFiles, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield challenges
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


# --- durations, printed at the end so ``pytest -s`` shows "ecert vs Pebble" -------------------------------------


@dataclass
class Durations:
    """Seconds per (client, CA), each run measured with time.monotonic around the client's whole run."""

    seconds: dict[tuple[str, str], list[float]] = field(default_factory=dict)

    @contextlib.contextmanager
    def timed(self, client: str, ca: str) -> Iterator[None]:
        start = time.monotonic()
        yield
        self.seconds.setdefault((client, ca), []).append(time.monotonic() - start)

    def median(self, client: str, ca: str) -> float | None:
        runs = self.seconds.get((client, ca))
        return statistics.median(runs) if runs else None

    def line(self, client: str) -> str:
        """``ecert 2.95 s, Pebble 2.82 s, ratio 1.05 (median of N)`` for one client."""
        e, p = self.median(client, "ecert"), self.median(client, "pebble")
        n = len(self.seconds.get((client, "ecert"), []))
        return f"ecert {_secs(e)} s, Pebble {_secs(p)} s, ratio {_ratio(e, p)} (median of {n})"

    def table(self) -> str:
        clients = sorted({c for c, _ in self.seconds})
        lines = [f"{'client':<12} {'ecert s':>8} {'Pebble s':>9} {'ratio':>6} {'runs':>5}  all runs (ecert | Pebble)"]
        for client in clients:
            e, p = self.median(client, "ecert"), self.median(client, "pebble")
            runs = " ".join(f"{s:.2f}" for s in self.seconds.get((client, "ecert"), []))
            runs += " | " + " ".join(f"{s:.2f}" for s in self.seconds.get((client, "pebble"), []))
            n = len(self.seconds.get((client, "ecert"), []))
            lines.append(f"{client:<12} {_secs(e):>8} {_secs(p):>9} {_ratio(e, p):>6} {n:>5}  {runs}")
        return "\n".join(lines)


def _secs(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _ratio(ecert: float | None, pebble: float | None) -> str:
    return f"{ecert / pebble:.2f}" if ecert and pebble else "-"


# --- the clients, each against any ACME server (ecert or Pebble) ------------------------------------------------


@dataclass(frozen=True)
class AcmeTarget:
    """Where a client goes and what it needs to get in: the directory, the TLS root to trust, EAB, ports."""

    directory: str
    tls_root: Path
    eab_kid: str
    eab_hmac_key: str
    http01_port: int  # where this CA fetches http-01 answers on 127.0.0.1


def ecert_target(server: TlsServer, *names: str, cert_type: str = "server") -> AcmeTarget:
    """ecert with a fresh EAB credential for an approved application covering ``names`` (each binds once)."""
    made = server.eab_for(*names, cert_type=cert_type)
    return AcmeTarget(server.directory, server.tls_root, made.kid, made.hmac_key, server.http01_port)


def dehydrated(target: AcmeTarget, workdir: Path, name: str, preferred_chain: str = "") -> Path:
    """dehydrated registers (RSA account key: its EAB code builds an RSA JWK) and orders ``name`` by http-01.

    It only writes token files into WELLKNOWN; the test's loopback webroot serves them on the http-01 port.
    Its curl trusts the CA's TLS root through CURL_OPTS, in the config file like any other setting. A
    ``preferred_chain`` (an issuer CN) makes it follow the certificate's ``Link: rel="alternate"`` chains.
    """
    base = workdir / "dehydrated"
    base.mkdir(parents=True, exist_ok=True)
    config = base / "config"
    with webroot(workdir / "docroot", target.http01_port) as challenges:
        config.write_text(
            f'CA="{target.directory}"\nBASEDIR="{base}"\nWELLKNOWN="{challenges}"\nCHALLENGETYPE="http-01"\n'
            f'CONTACT_EMAIL="admin@example.com"\nEAB_KID="{target.eab_kid}"\nEAB_HMAC_KEY="{target.eab_hmac_key}"\n'
            f'IP_VERSION=4\nCURL_OPTS="--cacert {target.tls_root}"\nPREFERRED_CHAIN="{preferred_chain}"\n'
        )
        env = {"PATH": "/usr/bin:/bin", "HOME": str(workdir)}
        run(["dehydrated", "-f", str(config), "--register", "--accept-terms"], env, workdir)
        run(["dehydrated", "-f", str(config), "--cron", "--domain", name], env, workdir)
    return base / "certs" / name / "fullchain.pem"


UACME_HOOK = Path("/usr/share/uacme/uacme.sh")  # the http-01 hook Debian ships with uacme


def uacme(target: AcmeTarget, confdir: Path, challenges: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """uacme in a mount namespace of its own whose /etc/ssl/certs holds only the CA's TLS root.

    uacme has no CA-bundle option and libcurl-gnutls reads neither CURL_CA_BUNDLE nor SSL_CERT_FILE, so the
    system store it reads is replaced for this one process: ``unshare -m`` (private propagation) and a bind
    mount over /etc/ssl/certs; the host's store is untouched and the mount dies with the process.
    """
    trust = confdir.parent / "uacme-trust"
    trust.mkdir(parents=True, exist_ok=True)
    (trust / "ca-certificates.crt").write_bytes(target.tls_root.read_bytes())
    inner = 'mount --bind "$0" /etc/ssl/certs && exec "$@"'
    command = ["unshare", "-m", "sh", "-c", inner, str(trust), "uacme", "-v", "-y", "-a", target.directory]
    env = {"PATH": "/usr/bin:/bin", "UACME_CHALLENGE_PATH": str(challenges)}
    return run([*command, "-c", str(confdir), "-h", str(UACME_HOOK), *args], env, confdir.parent)


# --- Caddy: a web server that gets its own certificate -----------------------------------------------------------


CADDYFILE = """{{
	admin off
	storage file_system {{
		root {storage}
	}}
	acme_ca {directory}
	acme_ca_root {tls_root}
	acme_eab {{
		key_id {kid}
		mac_key {mac}
	}}
	email admin@example.com
	http_port {http_port}
	https_port {https_port}
	default_bind 127.0.0.1
	ocsp_stapling off
	skip_install_trust
}}

{name} {{
	respond "served by caddy"
}}
"""


@dataclass
class RunningCaddy:
    proc: subprocess.Popen[bytes]
    storage: Path
    log: Path

    def certificate_file(self, name: str) -> Path | None:
        return next(iter(self.storage.glob(f"certificates/*/{name}/{name}.crt")), None)

    def listeners(self) -> list[str]:
        """The local addresses Caddy listens on (TCP), read from ``ss`` by its pid."""
        out = subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True, timeout=10).stdout
        return [line.split()[3] for line in out.splitlines() if f"pid={self.proc.pid}," in line]


@contextlib.contextmanager
def caddy(target: AcmeTarget, workdir: Path, name: str, https_port: int) -> Iterator[RunningCaddy]:
    """``caddy run`` with a Caddyfile naming ecert as its ACME CA (acme_ca, acme_ca_root, acme_eab).

    Caddy answers http-01 on ``target.http01_port`` and tls-alpn-01 on ``https_port`` (ecert's tls-alpn-01
    port), both on 127.0.0.1 only. Its home and data go under ``workdir``; the process is ended on exit.
    """
    storage = workdir / "caddy-data"
    caddyfile = workdir / "Caddyfile"
    caddyfile.write_text(
        CADDYFILE.format(
            storage=storage,
            directory=target.directory,
            tls_root=target.tls_root,
            kid=target.eab_kid,
            mac=target.eab_hmac_key,
            http_port=target.http01_port,
            https_port=https_port,
            name=name,
        )
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(workdir),
        "XDG_DATA_HOME": str(workdir),
        "XDG_CONFIG_HOME": str(workdir),
    }
    log = workdir / "caddy.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            ["caddy", "run", "--config", str(caddyfile), "--adapter", "caddyfile"],
            env=env,
            cwd=workdir,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield RunningCaddy(proc, storage, log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_for_certificate(running: RunningCaddy, name: str, timeout: float = 90) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = running.certificate_file(name)
        if found is not None:
            return found
        assert running.proc.poll() is None, running.log.read_text()[-3000:]
        time.sleep(0.25)
    raise AssertionError("Caddy got no certificate in time:\n" + running.log.read_text()[-3000:])


def s_client_chain(port: int, name: str, ca_file: Path) -> tuple[list[x509.Certificate], str]:
    """What a TLS client sees at 127.0.0.1:``port`` for SNI ``name``: the served chain and openssl's verdict."""
    done = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", name, "-showcerts"]
        + ["-CAfile", str(ca_file), "-verify_hostname", name],
        input="",
        capture_output=True,
        text=True,
        timeout=30,
    )
    return x509.load_pem_x509_certificates(done.stdout.encode()), done.stdout


def certbot_http01(target: AcmeTarget, workdir: Path, name: str, certbot: str) -> Path:
    """certbot certonly with EAB and its standalone http-01 listener on 127.0.0.1 at the CA's http-01 port."""
    workdir.mkdir(parents=True, exist_ok=True)
    args = [certbot, "certonly", "--non-interactive", "--agree-tos", "-m", "admin@example.com"]
    # "--opt=value": a base64url key may start with '-', which argparse would take for an option
    args += ["--server", target.directory, f"--eab-kid={target.eab_kid}", f"--eab-hmac-key={target.eab_hmac_key}"]
    args += ["--config-dir", str(workdir / "conf"), "--work-dir", str(workdir / "work")]
    args += ["--logs-dir", str(workdir / "logs"), "--key-type", "ecdsa", "--cert-name", "t", "-d", name]
    args += ["--standalone", "--preferred-challenges", "http", "--http-01-address", "127.0.0.1"]
    args += ["--http-01-port", str(target.http01_port)]
    run(args, {"PATH": "/usr/bin:/bin", "HOME": str(workdir), "REQUESTS_CA_BUNDLE": str(target.tls_root)}, workdir)
    return workdir / "conf" / "live" / "t" / "fullchain.pem"


def lego_dns01(target: AcmeTarget, workdir: Path, name: str, exec_hook: Path, resolver: str) -> Path:
    """lego with EAB and its exec DNS provider (``hook present|cleanup FQDN VALUE``), resolving at ``resolver``."""
    workdir.mkdir(parents=True, exist_ok=True)
    args = ["lego", "--server", target.directory, "--eab", f"--kid={target.eab_kid}", f"--hmac={target.eab_hmac_key}"]
    args += ["--email", "admin@example.com", "--accept-tos", "--path", str(workdir / "lego"), "--key-type", "ec256"]
    args += ["--dns", "exec", "--dns.resolvers", resolver, "--dns.disable-cp", "-d", name, "run"]
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(workdir),
        "LEGO_CA_CERTIFICATES": str(target.tls_root),
        "EXEC_PATH": str(exec_hook),
        "EXEC_PROPAGATION_TIMEOUT": "30",
        "EXEC_POLLING_INTERVAL": "1",
        "EXEC_SEQUENCE_INTERVAL": "1",
    }
    run(args, env, workdir)
    return workdir / "lego" / "certificates" / f"{name}.crt"


def uacme_issue(target: AcmeTarget, workdir: Path, name: str) -> Path:
    """uacme registers with ``-e KEYID:KEY`` and issues ``name`` by http-01 through Debian's hook and a webroot."""
    confdir = workdir / "uacme"
    eab = f"{target.eab_kid}:{target.eab_hmac_key}"
    with webroot(workdir / "docroot", target.http01_port) as challenges:
        uacme(target, confdir, challenges, "-e", eab, "new", "admin@example.com")
        uacme(target, confdir, challenges, "-t", "EC", "issue", name)
    return confdir / name / "cert.pem"


def caddy_issue(target: AcmeTarget, workdir: Path, name: str, https_port: int) -> Path:
    """Caddy started for a site ``name`` until its certificate is stored (its whole first run, then stopped)."""
    workdir.mkdir(parents=True, exist_ok=True)
    with caddy(target, workdir, name, https_port) as running:
        return wait_for_certificate(running, name)
