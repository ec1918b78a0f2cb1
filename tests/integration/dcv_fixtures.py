"""Loopback servers for DCV tests: Knot DNS, unbound in front, a scripted HTTP(S) server, an SMTP sink.

tests/conftest.py registers this module (``pytest_plugins``): ask for ``knot_dns`` by name, import only helpers.
Every server listens on 127.0.0.1 only, on a free port, and is stopped by the fixture that started it.
"""

from __future__ import annotations

import base64
import datetime as dt
import http.server
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dns.message
import dns.query
import dns.rcode
import pytest

__all__ = [
    "ZONES",
    "KnotDns",
    "UnboundResolver",
    "HttpFileServer",
    "SmtpSink",
    "free_port",
    "wait_for_dns",
    "knot_dns",
    "unbound_resolver",
    "http_file_server",
    "smtp_sink",
    "start_asgi",
    "RunningApp",
    "dcv_settings",
    "SIGNED_ZONE",
    "signed_knot",
    "signed_zone_ksk",
    "validating_resolver",
    "good_resolver",
    "bogus_resolver",
]

ZONES = ("example.com", "example.net", "example.org")
STARTUP_TIMEOUT = 10.0


def free_port() -> int:
    """A port free for both TCP and UDP on 127.0.0.1 (DNS servers need both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
            t.bind(("127.0.0.1", 0))
            port = t.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                try:
                    u.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free port")


def wait_for_dns(port: int, qname: str = "example.com.", timeout: float = STARTUP_TIMEOUT) -> None:
    """Poll until a DNS server on 127.0.0.1:port answers anything."""
    deadline = time.monotonic() + timeout
    query = dns.message.make_query(qname, "SOA")
    while time.monotonic() < deadline:
        try:
            dns.query.udp(query, "127.0.0.1", port=port, timeout=0.3)
            return
        except Exception:
            time.sleep(0.05)
    raise RuntimeError(f"no DNS server answered on 127.0.0.1:{port} within {timeout} s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


# --- Knot DNS ---------------------------------------------------------------------------------


def _zone_text(zone: str) -> str:
    # TTL 0 and negative TTL 0: a resolver in front caches nothing, so live updates show at once.
    return (
        f"$ORIGIN {zone}.\n$TTL 0\n"
        f"@ SOA ns.{zone}. hostmaster.{zone}. 1 3600 600 86400 0\n"
        f"@ NS ns.{zone}.\n"
        "ns A 127.0.0.1\n"
        "@ A 127.0.0.1\n"
        "www A 127.0.0.1\n"
    )


@dataclass
class KnotDns:
    """A Knot DNS authoritative server for ZONES with live updates (RFC 2136 through knsupdate)."""

    workdir: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None
    zones: tuple[str, ...] = ZONES
    signed: tuple[str, ...] = ()  # zones Knot signs itself (DNSSEC, default ECDSA P-256 policy)
    front: UnboundResolver | None = None  # a recursive resolver in front: ecert refuses authoritative answers

    @property
    def resolver_addr(self) -> str:
        """What to give ecert as its resolver: the recursive front if there is one (no RA flag = failed lookup)."""
        return self.front.resolver_addr if self.front is not None else self.authoritative_addr

    @property
    def authoritative_addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def conf(self) -> Path:
        return self.workdir / "knot.conf"

    def start(self) -> None:
        for sub in ("run", "db", "zones"):
            (self.workdir / sub).mkdir(parents=True, exist_ok=True)
        for zone in self.zones:
            (self.workdir / "zones" / f"{zone}.zone").write_text(_zone_text(zone))
        zone_lines = "".join(
            f"  - domain: {z}\n    acl: local_update\n" + ("    dnssec-signing: on\n" if z in self.signed else "")
            for z in self.zones
        )
        self.conf.write_text(
            "server:\n"
            f'    rundir: "{self.workdir}/run"\n'
            f"    listen: 127.0.0.1@{self.port}\n"
            "log:\n  - target: stderr\n    any: error\n"
            "database:\n"
            f'    storage: "{self.workdir}/db"\n'
            "acl:\n  - id: local_update\n    address: 127.0.0.1\n    action: update\n"
            "template:\n  - id: default\n"
            f'    storage: "{self.workdir}/zones"\n'
            '    file: "%s.zone"\n    zonefile-sync: -1\n    journal-content: none\n'
            "zone:\n" + zone_lines
        )
        subprocess.run(["knotc", "-c", str(self.conf), "conf-check"], check=True, capture_output=True, timeout=10)
        self.proc = subprocess.Popen(["knotd", "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_for_dns(self.port)

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc)
            self.proc = None

    def zone_of(self, name: str) -> str:
        name = name.rstrip(".").lower()
        for zone in sorted(self.zones, key=len, reverse=True):
            if name == zone or name.endswith("." + zone):
                return zone
        raise ValueError(f"{name} is in no zone this server holds ({self.zones})")

    def _update(self, zone: str, lines: list[str]) -> None:
        script = f"server 127.0.0.1 {self.port}\nzone {zone}.\n" + "".join(f"{ln}\n" for ln in lines) + "send\nquit\n"
        done = subprocess.run(["knsupdate"], input=script.encode(), capture_output=True, timeout=10)
        if done.returncode != 0:
            raise RuntimeError(f"knsupdate failed: {done.stderr.decode()} for\n{script}")

    def set_records(self, name: str, rtype: str, values: list[str] | tuple[str, ...], ttl: int = 0) -> None:
        """Replace the RRset (name, rtype) with ``values`` (zone-file rdata text); empty deletes it."""
        fqdn = name.rstrip(".") + "."
        lines = [f"update delete {fqdn} {rtype}"]
        lines += [f"update add {fqdn} {ttl} {rtype} {v}" for v in values]
        self._update(self.zone_of(name), lines)

    def add_txt(self, name: str, value: str | list[str], ttl: int = 0) -> None:
        """Add one TXT record; a list gives one record made of several strings."""
        parts = [value] if isinstance(value, str) else value
        rdata = " ".join('"' + p.replace('"', '\\"') + '"' for p in parts)
        self._update(self.zone_of(name), [f"update add {name.rstrip('.')}. {ttl} TXT {rdata}"])

    def delete(self, name: str, rtype: str | None = None) -> None:
        fqdn = name.rstrip(".") + "."
        self._update(self.zone_of(name), [f"update delete {fqdn}" + (f" {rtype}" if rtype else "")])


@pytest.fixture(scope="session")
def knot_dns(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KnotDns]:
    server = KnotDns(tmp_path_factory.mktemp("knot"), free_port())
    server.start()
    front = UnboundResolver(tmp_path_factory.mktemp("knot-front"), free_port(), server.port)
    try:
        front.start()
        server.front = front
        yield server
    finally:
        front.stop()
        server.stop()


# --- unbound in front -------------------------------------------------------------------------


@dataclass
class UnboundResolver:
    """unbound as a recursive resolver whose only upstream is the Knot fixture (stub zones).

    Names in no Knot zone get REFUSED upstream, so unbound answers SERVFAIL for them: the test's
    source of real resolver failures.
    """

    workdir: Path
    port: int
    upstream_port: int
    zones: tuple[str, ...] = ZONES
    proc: subprocess.Popen[bytes] | None = None
    extra: str = ""

    @property
    def resolver_addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        stubs = "".join(
            f'stub-zone:\n    name: "{z}."\n    stub-addr: 127.0.0.1@{self.upstream_port}\n' for z in ("",) + self.zones
        )
        conf = self.workdir / "unbound.conf"
        conf.write_text(
            "server:\n"
            f"    interface: 127.0.0.1@{self.port}\n"
            f"    port: {self.port}\n"
            "    do-ip6: no\n"
            "    do-not-query-localhost: no\n"
            '    username: ""\n    chroot: ""\n'
            f'    directory: "{self.workdir}"\n    pidfile: ""\n'
            "    use-syslog: no\n    verbosity: 0\n    num-threads: 1\n"
            '    module-config: "iterator"\n'
            "    access-control: 127.0.0.0/8 allow\n"
            "    qname-minimisation: no\n"
            "    cache-max-ttl: 0\n    cache-max-negative-ttl: 0\n"
            "    infra-host-ttl: 1\n"
            "    harden-referral-path: no\n" + self.extra + stubs
        )
        subprocess.run(["unbound-checkconf", str(conf)], check=True, capture_output=True, timeout=10)
        self.proc = subprocess.Popen(
            ["unbound", "-d", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        wait_for_dns(self.port)

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc)
            self.proc = None


@pytest.fixture(scope="session")
def unbound_resolver(knot_dns: KnotDns, tmp_path_factory: pytest.TempPathFactory) -> Iterator[UnboundResolver]:
    server = UnboundResolver(tmp_path_factory.mktemp("unbound"), free_port(), knot_dns.port)
    server.start()
    try:
        yield server
    finally:
        server.stop()


# --- DNSSEC: Knot signs a zone, unbound validates it ------------------------------------------

SIGNED_ZONE = "example.org"


@pytest.fixture(scope="module")
def signed_knot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KnotDns]:
    """Knot serving ``SIGNED_ZONE`` signed by itself (the DNSSEC and doctor tests share it)."""
    knot = KnotDns(tmp_path_factory.mktemp("knot-signed"), free_port(), zones=(SIGNED_ZONE,), signed=(SIGNED_ZONE,))
    knot.start()
    yield knot
    knot.stop()


def signed_zone_ksk(knot: KnotDns) -> str:
    """The key-signing DNSKEY of ``SIGNED_ZONE`` as Knot serves it (the trust anchor's text)."""
    query = dns.message.make_query(SIGNED_ZONE + ".", "DNSKEY")
    reply = dns.query.udp(query, "127.0.0.1", port=knot.port, timeout=2)
    keys = [rd for rrset in reply.answer for rd in rrset if rd.flags == 257]
    assert keys, "Knot did not sign the zone"
    return str(keys[0].to_text())


def validating_resolver(knot: KnotDns, workdir: Path, anchor: str) -> UnboundResolver:
    """unbound validating ``SIGNED_ZONE`` against the DNSKEY ``anchor``, started."""
    extra = f'    module-config: "validator iterator"\n    trust-anchor: "{SIGNED_ZONE}. DNSKEY {anchor}"\n'
    resolver = UnboundResolver(workdir, free_port(), knot.port, zones=(SIGNED_ZONE,), extra=extra)
    resolver.start()
    return resolver


@pytest.fixture(scope="module")
def good_resolver(signed_knot: KnotDns, tmp_path_factory: pytest.TempPathFactory) -> Iterator[UnboundResolver]:
    """A validating resolver whose trust anchor is the zone's real key: answers carry AD."""
    resolver = validating_resolver(signed_knot, tmp_path_factory.mktemp("unbound-good"), signed_zone_ksk(signed_knot))
    yield resolver
    resolver.stop()


@pytest.fixture(scope="module")
def bogus_resolver(signed_knot: KnotDns, tmp_path_factory: pytest.TempPathFactory) -> Iterator[UnboundResolver]:
    """A validating resolver with a tampered trust anchor: every answer in the zone is bogus (SERVFAIL)."""
    flags, proto, alg, key = signed_zone_ksk(signed_knot).split(" ", 3)
    raw = bytearray(base64.b64decode(key.replace(" ", "")))
    raw[-1] ^= 0xFF  # a different key: every signature in the zone now fails to validate
    anchor = f"{flags} {proto} {alg} {base64.b64encode(bytes(raw)).decode()}"
    resolver = validating_resolver(signed_knot, tmp_path_factory.mktemp("unbound-bogus"), anchor)
    yield resolver
    resolver.stop()


# --- scripted HTTP(S) server ------------------------------------------------------------------

Behaviour = Callable[[http.server.BaseHTTPRequestHandler], None]


def _self_signed(workdir: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dcv-test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = workdir / "cert.pem", workdir / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


@dataclass
class HttpFileServer:
    """An HTTP and an HTTPS server on loopback whose answers are scripted per (Host, scheme).

    ``serve_file(host, body)``, ``status(host, code)``, ``redirect(host, code, location)``,
    ``slow(host, seconds)``, ``huge(host, nbytes)``; ``requests`` logs (scheme, host, path).
    """

    workdir: Path
    http_port: int = 0
    https_port: int = 0
    behaviours: dict[tuple[str, str], Behaviour] = field(default_factory=dict)
    requests: list[tuple[str, str, str]] = field(default_factory=list)
    _servers: list[http.server.ThreadingHTTPServer] = field(default_factory=list)

    def start(self) -> None:
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def do_GET(self) -> None:  # noqa: N802
                scheme = "https" if isinstance(self.connection, ssl.SSLSocket) else "http"
                host = (self.headers.get("Host") or "").split(":")[0].lower()
                owner.requests.append((scheme, host, self.path))
                behaviour = owner.behaviours.get((host, scheme)) or owner.behaviours.get((host, "*"))
                if behaviour is None:
                    _send(self, 404, b"not found")
                else:
                    behaviour(self)

        class Server(http.server.ThreadingHTTPServer):
            request_queue_size = 128  # the default 5 drops SYNs under 16 concurrent fetches (1 s retries)

        plain = Server(("127.0.0.1", 0), Handler)
        secure = Server(("127.0.0.1", 0), Handler)
        cert, key = _self_signed(self.workdir)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        secure.socket = ctx.wrap_socket(secure.socket, server_side=True)
        for srv in (plain, secure):
            srv.daemon_threads = True
            threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
        self._servers = [plain, secure]
        self.http_port = plain.server_address[1]
        self.https_port = secure.server_address[1]

    def stop(self) -> None:
        for srv in self._servers:
            srv.shutdown()
            srv.server_close()

    def reset(self) -> None:
        self.behaviours.clear()
        self.requests.clear()

    def on(self, host: str, behaviour: Behaviour, scheme: str = "*") -> None:
        self.behaviours[(host.lower(), scheme)] = behaviour

    def serve_file(self, host: str, body: str | bytes, scheme: str = "*") -> None:
        data = body.encode() if isinstance(body, str) else body
        self.on(host, lambda h: _send(h, 200, data), scheme)

    def status(self, host: str, code: int, scheme: str = "*") -> None:
        self.on(host, lambda h: _send(h, code, b"nope"), scheme)

    def redirect(self, host: str, code: int, location: str, scheme: str = "*") -> None:
        self.on(host, lambda h: _send(h, code, b"", {"Location": location}), scheme)

    def slow(self, host: str, seconds: float, body: str = "", scheme: str = "*") -> None:
        def behaviour(h: http.server.BaseHTTPRequestHandler) -> None:
            time.sleep(seconds)
            _send(h, 200, body.encode())

        self.on(host, behaviour, scheme)

    def huge(self, host: str, nbytes: int, prefix: str = "", scheme: str = "*") -> None:
        def behaviour(h: http.server.BaseHTTPRequestHandler) -> None:
            h.send_response(200)
            h.send_header("Content-Length", str(nbytes))
            h.end_headers()
            chunk = (prefix.encode() + b"x" * 65536)[:65536]
            sent = 0
            try:
                while sent < nbytes:
                    piece = chunk[: nbytes - sent]
                    h.wfile.write(piece)
                    sent += len(piece)
            except OSError:
                pass  # the client stopped reading at its cap

        self.on(host, behaviour, scheme)


def _send(h: http.server.BaseHTTPRequestHandler, code: int, body: bytes, headers: dict[str, str] | None = None) -> None:
    h.send_response(code)
    for k, v in (headers or {}).items():
        h.send_header(k, v)
    h.send_header("Content-Length", str(len(body)))
    h.send_header("Content-Type", "text/plain")
    h.end_headers()
    try:
        h.wfile.write(body)
    except OSError:
        pass


@pytest.fixture(scope="session")
def _http_file_server_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpFileServer]:
    server = HttpFileServer(tmp_path_factory.mktemp("http"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture()
def http_file_server(_http_file_server_session: HttpFileServer) -> Iterator[HttpFileServer]:
    """The session's HTTP(S) server with a clean script for this test."""
    _http_file_server_session.reset()
    yield _http_file_server_session
    _http_file_server_session.reset()


# --- SMTP sink --------------------------------------------------------------------------------

ACCEPTED_LOCAL_PARTS = ("admin", "administrator", "webmaster", "hostmaster", "postmaster")


@dataclass
class SmtpSink:
    """aiosmtpd on loopback: accepts mail only for the five constructed local parts (else 550)."""

    port: int
    messages: list[dict[str, Any]] = field(default_factory=list)
    controller: Any = None

    def start(self) -> None:
        from aiosmtpd.controller import Controller

        sink = self

        class Handler:
            async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:  # noqa: N802
                if address.split("@")[0].lower() not in ACCEPTED_LOCAL_PARTS:
                    return "550 not a constructed address"
                envelope.rcpt_tos.append(address)
                return "250 OK"

            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
                sink.messages.append(
                    {
                        "from": envelope.mail_from,
                        "to": list(envelope.rcpt_tos),
                        "content": envelope.content.decode("utf-8", "replace"),
                    }
                )
                return "250 Message accepted"

        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port, ready_timeout=5)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()


@pytest.fixture()
def smtp_sink() -> Iterator[SmtpSink]:
    sink = SmtpSink(free_port())
    sink.start()
    try:
        yield sink
    finally:
        sink.stop()


# --- ASGI apps on loopback (remote perspectives) ----------------------------------------------


@dataclass
class RunningApp:
    url: str
    server: Any
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=5)


def start_asgi(app: Any, port: int | None = None) -> RunningApp:
    """Run an ASGI app under uvicorn in a thread on 127.0.0.1; wait until it listens."""
    import uvicorn

    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError(f"ASGI app did not start on port {port}")
        time.sleep(0.02)
    return RunningApp(f"http://127.0.0.1:{port}", server, thread)


def dcv_settings(
    resolver_addr: str, http: HttpFileServer | None = None, smtp: SmtpSink | None = None, **overrides: Any
) -> Any:
    """Settings pointing DCV at the loopback fixtures (loopback allowed explicitly, as only tests may)."""
    from ecert.settings import Settings

    values: dict[str, Any] = {
        "dns_resolvers": (resolver_addr,),
        "allow_private_addresses": True,
        "caa_identities": ("ecert.example.hk",),
    }
    if http is not None:
        values.update(http_port=http.http_port, https_port=http.https_port)
    if smtp is not None:
        values.update(smtp_host="127.0.0.1", smtp_port_for_dcv=smtp.port)
    values.update(overrides)
    return Settings(**values)
