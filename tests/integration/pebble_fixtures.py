"""Pebble (Let's Encrypt's test ACME server) and pebble-challtestsrv on loopback (testing-recipes.md section 3).

Pebble ships no TLS certificate, so a throwaway root signs one for 127.0.0.1 and localhost; the ACME client
trusts that root through ``--ca-bundle``. Every listener is bound to 127.0.0.1 (Pebble's example config and
challtestsrv's defaults bind all interfaces). challtestsrv answers every A query with 127.0.0.1, so
Pebble's http-01 check comes back to a listener on this host at ``http_port``; its TXT records are set over
its management API, which the dns-01 hook below calls. ``AriFront`` stands in front of Pebble 2.4 (which
has no ARI) to add ``renewalInfo`` and to record the newOrder bodies, so ``replaces`` can be seen.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

EAB_KID = "kid-ecert-1"
EAB_HMAC_KEY = base64.urlsafe_b64encode(b"ecert renew test: a 32-byte key!").decode().rstrip("=")
VALIDITY = dt.timedelta(days=90)  # Pebble's certificateValidityPeriod: a lifetime the two-thirds rule can act on


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tls_files(where: Path) -> tuple[Path, Path, Path]:
    """A throwaway root and a certificate for 127.0.0.1/localhost signed by it: (root, cert, key)."""
    now = dt.datetime.now(dt.UTC)
    root_key = ec.generate_private_key(ec.SECP256R1())
    root_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ecert test Pebble TLS root")])
    root = (
        x509.CertificateBuilder()
        .subject_name(root_name)
        .issuer_name(root_name)
        .public_key(root_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(root_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    import ipaddress

    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(root_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(root_key, hashes.SHA256())
    )
    paths = (where / "tls-root.pem", where / "tls-cert.pem", where / "tls-key.pem")
    paths[0].write_bytes(root.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return paths


@dataclass
class Pebble:
    """A running Pebble with its challenge test server; the ports and files a test needs."""

    port: int
    management_port: int
    http_port: int
    dns_port: int
    challtest_port: int
    tls_root: Path
    tls_cert: Path
    tls_key: Path
    workdir: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def directory_url(self) -> str:
        return f"https://127.0.0.1:{self.port}/dir"

    @property
    def challtest_url(self) -> str:
        return f"http://127.0.0.1:{self.challtest_port}"

    def ca_pem(self, kind: str) -> bytes:
        """Pebble's issuing root (``roots``) or intermediate (``intermediates``), from the management API."""
        r = httpx.get(
            f"https://127.0.0.1:{self.management_port}/{kind}/0",
            verify=ssl.create_default_context(cafile=str(self.tls_root)),
            trust_env=False,
        )
        r.raise_for_status()
        return r.content


def _wait_for(port: int, proc: subprocess.Popen[bytes], what: str, deadline: float) -> None:
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"{what} exited with {proc.returncode}: {proc.stderr.read().decode()[-500:] if proc.stderr else ''}"
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port}")


def start_pebble(workdir: Path) -> Iterator[Pebble]:
    """Start challtestsrv then Pebble (EAB required, 90-day certificates, no sleeps, no nonce rejection)."""
    root, cert, key = _tls_files(workdir)
    pb = Pebble(free_port(), free_port(), free_port(), free_port(), free_port(), root, cert, key, workdir)
    config = {
        "pebble": {
            "listenAddress": f"127.0.0.1:{pb.port}",
            "managementListenAddress": f"127.0.0.1:{pb.management_port}",
            "certificate": str(cert),
            "privateKey": str(key),
            "httpPort": pb.http_port,
            "tlsPort": free_port(),
            "ocspResponderURL": "",
            "externalAccountBindingRequired": True,
            "externalAccountMACKeys": {EAB_KID: EAB_HMAC_KEY},
            "certificateValidityPeriod": int(VALIDITY.total_seconds()),
        }
    }
    (workdir / "pebble.json").write_text(json.dumps(config))
    env = {
        "PATH": "/usr/bin:/bin",
        "PEBBLE_VA_NOSLEEP": "1",
        "PEBBLE_WFE_NONCEREJECT": "0",
        "PEBBLE_AUTHZREUSE": "0",  # every order proves control again: the renewal's challenge really runs
    }
    challtest = [
        "pebble-challtestsrv",
        "-defaultIPv4", "127.0.0.1",
        "-defaultIPv6", "",
        "-dns01", f"127.0.0.1:{pb.dns_port}",
        "-http01", "",
        "-https01", "",
        "-tlsalpn01", "",
        "-management", f"127.0.0.1:{pb.challtest_port}",
    ]  # fmt: skip
    deadline = time.monotonic() + 30
    try:
        pb.procs.append(subprocess.Popen(challtest, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
        _wait_for(pb.challtest_port, pb.procs[-1], "pebble-challtestsrv", deadline)
        pebble = ["pebble", "-config", str(workdir / "pebble.json"), "-dnsserver", f"127.0.0.1:{pb.dns_port}"]
        log = open(workdir / "pebble.log", "wb")  # noqa: SIM115 - closed with the process below
        pb.procs.append(subprocess.Popen(pebble, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=workdir))
        _wait_for(pb.port, pb.procs[-1], "pebble", deadline)
        _wait_for(pb.management_port, pb.procs[-1], "pebble management", deadline)
        yield pb
    finally:
        for proc in reversed(pb.procs):
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def write_dns_hook(where: Path, pebble: Pebble) -> Path:
    """An executable ``HOOK add|del NAME VALUE`` that sets the TXT record in challtestsrv and logs each call."""
    hook = where / "dns-hook"
    log = where / "dns-hook.log"
    hook.write_text(
        f"#!{sys.executable}\n"
        "import json, sys, urllib.request\n"
        "verb, name, value = sys.argv[1:4]\n"
        f"open({str(log)!r}, 'a').write(f'{{verb}} {{name}} {{value}}\\n')\n"
        "path, body = ('/set-txt', {'host': name + '.', 'value': value}) if verb == 'add' else "
        "('/clear-txt', {'host': name + '.'})\n"
        f"url = {pebble.challtest_url!r} + path\n"
        "req = urllib.request.Request(url, data=json.dumps(body).encode(), method='POST')\n"
        "urllib.request.urlopen(req, timeout=10).read()\n"
    )
    hook.chmod(0o755)
    return hook


class AriFront:
    """An HTTPS front for Pebble that adds ARI: the directory gains ``renewalInfo``, served from ``windows``.

    Requests go on to Pebble with the front's Host header, so Pebble names every URL (and checks every
    JWS ``url``) on the front's address: the client never talks to Pebble directly. ``orders`` keeps the
    payload of each newOrder, decoded, which is how a test sees ``replaces``.
    """

    def __init__(self, pebble: Pebble) -> None:
        self.pebble = pebble
        self.windows: dict[str, tuple[dt.datetime, dt.datetime]] = {}
        self.orders: list[dict[str, Any]] = []
        self.ari_asked: list[str] = []
        self.port = free_port()
        self._upstream: httpx.Client | None = None
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(pebble.tls_cert), str(pebble.tls_key))
        self._server.socket = ctx.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def directory_url(self) -> str:
        return f"https://127.0.0.1:{self.port}/dir"

    def __enter__(self) -> AriFront:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        return type("Handler", (_FrontHandler,), {"front": self})

    @property
    def upstream(self) -> httpx.Client:
        if self._upstream is None:
            ctx = ssl.create_default_context(cafile=str(self.pebble.tls_root))
            self._upstream = httpx.Client(verify=ctx, trust_env=False, timeout=30)
        return self._upstream


class _FrontHandler(BaseHTTPRequestHandler):
    """One request to the ARI front: renewalInfo answered here, the rest relayed to Pebble."""

    front: AriFront

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass

    def do_GET(self) -> None:  # noqa: N802
        self._relay("GET")

    def do_HEAD(self) -> None:  # noqa: N802
        self._relay("HEAD")

    def do_POST(self) -> None:  # noqa: N802
        self._relay("POST")

    def _relay(self, method: str) -> None:
        front = self.front
        if self.path.startswith("/renewal-info/"):
            return self._renewal_info(self.path.rsplit("/", 1)[-1])
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path == "/order-plz":
            payload = json.loads(body)["payload"]
            front.orders.append(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
        headers["Host"] = f"127.0.0.1:{front.port}"
        url = f"https://127.0.0.1:{front.pebble.port}{self.path}"
        r = front.upstream.request(method, url, content=body, headers=headers)
        content = r.content
        if self.path == "/dir":
            d = r.json()
            d["renewalInfo"] = f"https://127.0.0.1:{front.port}/renewal-info"
            content = json.dumps(d).encode()
        self._send(r.status_code, content, [(k, v) for k, v in r.headers.items() if k.lower() in _KEEP])

    def _renewal_info(self, cert_id: str) -> None:
        self.front.ari_asked.append(cert_id)
        if cert_id not in self.front.windows:
            return self._send(404, b'{"type":"urn:ietf:params:acme:error:malformed"}', [])
        start, end = self.front.windows[cert_id]
        body = {"suggestedWindow": {"start": _rfc3339(start), "end": _rfc3339(end)}}
        self._send(200, json.dumps(body).encode(), [("Content-Type", "application/json"), ("Retry-After", "21600")])

    def _send(self, status: int, content: bytes, headers: list[tuple[str, str]]) -> None:
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(content)


_KEEP = {"content-type", "location", "replay-nonce", "link", "retry-after", "cache-control"}


def _rfc3339(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
