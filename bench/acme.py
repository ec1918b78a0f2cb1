"""ACME: certbot's time per issuance against ecert and against Pebble in the same run, and orders completed per
second by N concurrent ``acme.ClientV2`` accounts (dns-01 against a loopback Knot) on SQLite and PostgreSQL.

    .venv/bin/python bench/acme.py [--certbot-runs 3] [--clients 64] [--orders 2] [--workers 2]
        [--pg postgresql+psycopg://postgres@127.0.0.1:5432/test] [--skip-certbot] [--skip-orders]

Everything runs on 127.0.0.1: Knot DNS behind unbound (the names, their A records and the dns-01 TXT
records), four remote perspectives (``ecert-ca perspective serve``, as the tests configure them: BR 3.2.2.9),
ecert and Pebble (Debian) side by side.

Part 1, certbot (PyPI) ``certonly --standalone`` with http-01, a fresh account and a fresh name each run,
alternating ecert and Pebble: both over HTTPS with one throwaway TLS root, Pebble with PEBBLE_VA_NOSLEEP=1 and
PEBBLE_WFE_NONCEREJECT=0 (no artificial waits or bad nonces). ecert checks the name from the four perspectives,
checks CAA, lints and stores; Pebble does none of that. Also timed: certbot doing nothing (``--version``),
the floor under both.

Part 2, N threads, each with its own acme.ClientV2 account, each placing its orders one after the other:
newOrder, the TXT record by RFC 2136 update, the challenge, polling, finalize, the certificate. First against
Pebble (no EAB there): the baseline of what this machine does with the same clients, DNS and knsupdate when
the server costs little. Then against ``ecert-ca serve --workers W`` (a real subprocess), each account bound
through EAB to its own application. Accounts are made and every server process warmed up (a few untimed
orders) before the clock starts; every order needs a fresh validation (one name per application, never
reused; Pebble with PEBBLE_AUTHZREUSE=0).

Why 64 clients by default: ``acme.ClientV2`` sleeps a fixed second before its first look at a finalized order
and a second after each look at a pending authorization, so one client completes at most one order every ~2 s
however fast the server is. 32 clients could never show more than ~16 orders/s; 64 leave the server (and the
machine's two cores) as the limit, which is what the bench is for. The median order time is printed beside it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import json
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# This file is named acme.py: drop its own folder from the path, or it would shadow certbot's ``acme`` package.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import httpx  # noqa: E402
from acme import challenges as acme_challenges  # noqa: E402
from acme import client as acme_client  # noqa: E402
from acme import messages  # noqa: E402
from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID  # noqa: E402
from josepy.jwa import ES256  # noqa: E402
from josepy.jwk import JWKEC  # noqa: E402
from sqlalchemy import text  # noqa: E402
from sqlalchemy.pool import NullPool  # noqa: E402
from tests.integration.acme_order_helpers import add_named_application, publish_dns01  # noqa: E402
from tests.integration.dcv_fixtures import KnotDns, UnboundResolver, free_port  # noqa: E402

from ecert.services.acme_accounts import make_eab  # noqa: E402
from ecert.services.ca_config import load_hierarchy_config  # noqa: E402
from ecert.services.ceremony import init_hierarchy  # noqa: E402
from ecert.services.context import Context, build_context  # noqa: E402
from ecert.settings import load_settings  # noqa: E402
from ecert.store import db  # noqa: E402
from ecert.web.app import create_app  # noqa: E402

BIN = Path(sys.executable).parent
ECERT_CA, CERTBOT = str(BIN / "ecert-ca"), str(BIN / "certbot")
EAB_SECRET = "bench-acme-eab-secret"
PERSPECTIVE_SECRET = "bench-acme-perspective-secret"
PASSPHRASE = "bench-acme-passphrase"
CLIENT_TIMEOUT = 180
# What `ecert-ca perspective serve` runs, called directly so the bench does not depend on the CLI's shape.
_PERSPECTIVE = (
    "import os; from ecert.cli.perspective import serve; from ecert.settings import load_settings; "
    "serve('127.0.0.1', {port}, os.environ['ECERT_PERSPECTIVE_SECRET'], load_settings())"
)


# --- the loopback world: DNS, perspectives, TLS material ----------------------------------------------------


@dataclass
class World:
    work: Path
    knot: KnotDns
    resolver: str  # unbound in front of Knot: what ecert, the perspectives and Pebble resolve with
    http01_port: int  # where certbot's standalone listener answers http-01 (ecert and Pebble fetch there)
    perspectives: tuple[str, ...]
    tls_root: Path
    tls_cert: Path
    tls_key: Path
    perspective_pids: tuple[int, ...] = ()

    def fresh_name(self, prefix: str) -> str:
        name = f"{prefix}-{secrets.token_hex(5)}.example.com"
        self.knot.set_records(name, "A", ["127.0.0.1"])
        return name


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECERT_")}
    env.update(extra)
    return env


def _wait_http(
    url: str, proc: subprocess.Popen[bytes] | None = None, log: Path | None = None, timeout: float = 60.0, **kw: Any
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            said = log.read_text(errors="replace")[-2000:] if log is not None and log.exists() else ""
            raise RuntimeError(f"{proc.args!r} exited: {said}")
        try:
            httpx.get(url, timeout=2, trust_env=False, **kw)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing answered at {url}")


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """A subprocess in a process group of its own (stopping it stops the workers it forked), its output in
    ``log``: a pipe nobody reads fills up and then blocks the server's logging, and with it the server."""
    with log.open("ab") as out:
        return subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)  # the group this bench made for it (start_new_session): its id is the pid
    except ProcessLookupError:
        pass


@contextmanager
def _processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Every subprocess started inside is stopped, with its workers (its process group), on the way out."""
    started: list[subprocess.Popen[bytes]] = []
    try:
        yield started
    finally:
        for proc in reversed(started):
            _signal_group(proc, signal.SIGTERM)
        for proc in started:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
            _signal_group(proc, signal.SIGKILL)  # a worker still shutting down after its parent went


def _tls_material(work: Path) -> tuple[Path, Path, Path]:
    """A throwaway root and a 127.0.0.1/localhost certificate under it, for ecert's and Pebble's HTTPS."""
    now = dt.datetime.now(dt.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    root_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    root = (
        x509.CertificateBuilder()
        .subject_name(name("bench TLS root"))
        .issuer_name(name("bench TLS root"))
        .public_key(root_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(root_key, hashes.SHA256())
    )
    san = x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    leaf = (
        x509.CertificateBuilder()
        .subject_name(name("localhost"))
        .issuer_name(root.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(san, critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(root_key, hashes.SHA256())
    )
    paths = work / "tls-root.pem", work / "tls-cert.pem", work / "tls-key.pem"
    paths[0].write_bytes(root.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return paths


@contextmanager
def world(work: Path) -> Iterator[World]:
    knot = KnotDns(work / "knot", free_port())
    knot.start()
    front = UnboundResolver(work / "unbound", free_port(), knot.port)
    try:
        front.start()
        knot.front = front
        http01_port = free_port()
        with _processes() as started:
            urls = []
            for _ in range(4):
                port = free_port()
                env = _env(
                    ECERT_DNS_RESOLVERS=front.resolver_addr,
                    ECERT_ALLOW_PRIVATE_ADDRESSES="true",
                    ECERT_HTTP_PORT=str(http01_port),
                    ECERT_PERSPECTIVE_SECRET=PERSPECTIVE_SECRET,
                )
                log = work / f"perspective-{port}.log"
                started.append(_spawn([sys.executable, "-c", _PERSPECTIVE.format(port=port)], env, log))
                urls.append(f"http://127.0.0.1:{port}")
                _wait_http(urls[-1], started[-1], log)
            pids = tuple(p.pid for p in started)
            yield World(work, knot, front.resolver_addr, http01_port, tuple(urls), *_tls_material(work), pids)
    finally:
        front.stop()
        knot.stop()


def _ecert_settings(w: World, data_dir: Path, database_url: str | None) -> dict[str, str]:
    """ecert's configuration as environment variables: the same for the in-process and the served CA."""
    env = {
        "ECERT_DATA_DIR": str(data_dir),
        "ECERT_DNS_RESOLVERS": w.resolver,
        "ECERT_ALLOW_PRIVATE_ADDRESSES": "true",
        "ECERT_HTTP_PORT": str(w.http01_port),
        "ECERT_PERSPECTIVE_URLS": ",".join(w.perspectives),
        "ECERT_PERSPECTIVE_SECRET": PERSPECTIVE_SECRET,
        "ECERT_ACME_EAB_SECRET": EAB_SECRET,
        "ECERT_KEY_PASSPHRASE": PASSPHRASE,
        "ECERT_SESSION_SECRET": "bench-acme-session",
        "ECERT_JOBS": "off",
        "ECERT_SMTP_PORT": "9",
        # the bench measures throughput, not the limits
        "ECERT_ACME_NEW_ACCOUNTS_PER_IP": "0",
        "ECERT_ACME_NEW_ORDERS_PER_ACCOUNT": "0",
        "ECERT_ACME_CERTIFICATES_PER_APPLICATION_WEEK": "0",
    }
    if database_url:
        env["ECERT_DATABASE_URL"] = database_url
    return env


def _context(env: dict[str, str]) -> Context:
    """A context on the same database as the served CA, for the operator's side (applications, EAB)."""
    settings = load_settings(
        data_dir=Path(env["ECERT_DATA_DIR"]),
        database_url=env.get("ECERT_DATABASE_URL"),
        dns_resolvers=(env["ECERT_DNS_RESOLVERS"],),
        allow_private_addresses=True,
        http_port=int(env["ECERT_HTTP_PORT"]),
        perspective_urls=tuple(env["ECERT_PERSPECTIVE_URLS"].split(",")),
        acme_new_accounts_per_ip=0,
        acme_new_orders_per_account=0,
        acme_certificates_per_application_week=0,
    )
    return build_context(settings, env)


# --- part 1: certbot against ecert and Pebble -----------------------------------------------------------------


@contextmanager
def ecert_tls(w: World, env: dict[str, str]) -> Iterator[tuple[str, Context]]:
    """ecert (SQLite) serving ACME over HTTPS from this process: certbot runs in its own, this one only serves."""
    import uvicorn

    ctx = _context(env)
    init_hierarchy(ctx, load_hierarchy_config(None), demo=True)
    port = free_port()
    config = uvicorn.Config(
        create_app(ctx.settings, env, context=ctx),
        host="127.0.0.1",
        port=port,
        log_level="error",
        ssl_certfile=str(w.tls_cert),
        ssl_keyfile=str(w.tls_key),
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    try:
        yield f"https://127.0.0.1:{port}/acme/directory", ctx
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        ctx.close()


@contextmanager
def pebble(w: World) -> Iterator[tuple[str, int]]:
    port, management = free_port(), free_port()
    config = w.work / "pebble.json"
    config.write_text(
        json.dumps(
            {
                "pebble": {
                    "listenAddress": f"127.0.0.1:{port}",
                    "managementListenAddress": f"127.0.0.1:{management}",
                    "certificate": str(w.tls_cert),
                    "privateKey": str(w.tls_key),
                    "httpPort": w.http01_port,
                    "tlsPort": free_port(),
                    "ocspResponderURL": "",
                    "externalAccountBindingRequired": False,
                }
            }
        )
    )
    env = {**os.environ, "PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0", "PEBBLE_AUTHZREUSE": "0"}
    with _processes() as started:
        log = w.work / "pebble.log"
        started.append(_spawn(["pebble", "-config", str(config), "-dnsserver", w.resolver], env, log))
        url = f"https://127.0.0.1:{port}/dir"
        _wait_http(url, started[0], log, verify=str(w.tls_root))
        yield url, started[0].pid


def certbot(w: World, directory: str, name: str, run_dir: Path, *extra: str) -> float:
    args = [CERTBOT, "certonly", "--non-interactive", "--agree-tos", "-m", "admin@example.com"]
    args += ["--server", directory, "--standalone", "--preferred-challenges", "http"]
    args += ["--http-01-address", "127.0.0.1", "--http-01-port", str(w.http01_port), "--key-type", "ecdsa"]
    args += ["--config-dir", str(run_dir / "conf"), "--work-dir", str(run_dir / "work")]
    args += ["--logs-dir", str(run_dir / "logs"), "--cert-name", "b", "-d", name, *extra]
    started = time.perf_counter()
    done = subprocess.run(
        args,
        env={**os.environ, "REQUESTS_CA_BUNDLE": str(w.tls_root)},
        capture_output=True,
        text=True,
        timeout=CLIENT_TIMEOUT,
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0 or not (run_dir / "conf" / "live" / "b" / "fullchain.pem").exists():
        raise RuntimeError(f"certbot failed against {directory}:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    return elapsed


def certbot_floor() -> float:
    started = time.perf_counter()
    subprocess.run([CERTBOT, "--version"], capture_output=True, timeout=60, check=True)
    return time.perf_counter() - started


def part_certbot(w: World, runs: int) -> None:
    print(f"\n1. certbot certonly --standalone (http-01), fresh account and name each run, {runs} runs each")
    env = _ecert_settings(w, w.work / "ecert-certbot", None)
    ecert_times: list[float] = []
    pebble_times: list[float] = []
    with ecert_tls(w, env) as (ecert_dir, ctx), pebble(w) as (pebble_dir, _):
        for i in range(runs):
            name = w.fresh_name("certbot")
            made = make_eab(ctx, add_named_application(ctx, name), wrap_secret=EAB_SECRET, actor="operator:bench")
            run_dir = w.work / f"certbot-ecert-{i}"
            ecert_times.append(
                certbot(w, ecert_dir, name, run_dir, f"--eab-kid={made.kid}", f"--eab-hmac-key={made.hmac_key}")
            )
            pebble_times.append(certbot(w, pebble_dir, w.fresh_name("certbot"), w.work / f"certbot-pebble-{i}"))
    floor = statistics.median(certbot_floor() for _ in range(3))
    ecert_med, pebble_med = statistics.median(ecert_times), statistics.median(pebble_times)
    print(f"   ecert  {ecert_med:6.2f} s median  (runs: {', '.join(f'{t:.2f}' for t in ecert_times)})")
    print(f"   Pebble {pebble_med:6.2f} s median  (runs: {', '.join(f'{t:.2f}' for t in pebble_times)})")
    print(f"   certbot --version alone {floor:.2f} s (Python start-up, under both)")
    print(f"   ecert / Pebble = {ecert_med / pebble_med:.2f}  (goal: at most 2)")
    print(
        f"   without certbot's start-up: ecert {ecert_med - floor:.2f} s, Pebble {pebble_med - floor:.2f} s, "
        f"ratio {(ecert_med - floor) / max(pebble_med - floor, 1e-3):.2f}"
    )


# --- where the CPU goes ---------------------------------------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK")


def _stat_fields(stat: Path) -> list[str]:
    """/proc/PID/stat after the command name (which may hold spaces): state, ppid, ... (proc(5))."""
    return stat.read_text().rsplit(")", 1)[1].split()


def _cpu_ticks(fields: list[str]) -> int:
    """utime + stime, in clock ticks."""
    return int(fields[11]) + int(fields[12])


def _cpu_of_tree(root: int) -> float:
    """CPU seconds (user + system) of ``root`` and every live descendant, from /proc."""
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = _stat_fields(stat)
        except OSError:
            continue
        pid = int(stat.parent.name)
        parents[pid] = int(fields[1])
        ticks[pid] = _cpu_ticks(fields)
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += ticks.get(pid, 0)
        todo += [child for child, parent in parents.items() if parent == pid]
    return total / _TICK


def _postgres_cpu() -> float:
    """CPU seconds of every PostgreSQL server process on the machine (its backends serve ecert during the run;
    zero when ecert is on SQLite, give or take the idle server)."""
    total = 0
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            if comm.read_text().strip() != "postgres":
                continue
            fields = _stat_fields(comm.parent / "stat")
        except OSError:
            continue
        total += _cpu_ticks(fields)
    return total / _TICK


def _cpu_snapshot(w: World, serve_pid: int) -> dict[str, float]:
    own = os.times()
    return {
        "PostgreSQL": _postgres_cpu(),
        "server": _cpu_of_tree(serve_pid),
        "perspectives (4)": sum(_cpu_of_tree(pid) for pid in w.perspective_pids),
        "clients (this process)": own.user + own.system,
        "knsupdate (TXT records)": own.children_user + own.children_system,
        "Knot + unbound": _cpu_of_tree(w.knot.proc.pid if w.knot.proc else 0)
        + _cpu_of_tree(w.knot.front.proc.pid if w.knot.front and w.knot.front.proc else 0),
    }


def _print_cpu(before: dict[str, float], after: dict[str, float], orders: int) -> None:
    spent = {k: after[k] - before[k] for k in before}
    total = sum(spent.values()) or 1.0
    print(
        "      CPU per order: "
        + ", ".join(f"{k} {v / orders * 1000:.0f} ms ({v / total:.0%})" for k, v in spent.items())
    )


# --- part 2: orders per second -----------------------------------------------------------------------------------


@dataclass
class Account:
    client: acme_client.ClientV2
    key: JWKEC
    names: list[str]


def _register(ctx: Context, directory_url: str, names: list[str]) -> Account:
    """One account per application; the application covers ``names`` (one per order, so none is reused)."""
    reference = add_named_application(ctx, names[0], tuple(names[1:]), cert_type="multi")
    made = make_eab(ctx, reference, wrap_secret=EAB_SECRET, actor="operator:bench")
    key = JWKEC(key=ec.generate_private_key(ec.SECP256R1()))
    net = acme_client.ClientNetwork(key, alg=ES256, user_agent="ecert-bench")
    directory = acme_client.ClientV2.get_directory(directory_url, net)
    client = acme_client.ClientV2(directory, net)
    eab = messages.ExternalAccountBinding.from_data(key.public_key(), made.kid, made.hmac_key, directory)
    client.new_account(messages.NewRegistration.from_data(terms_of_service_agreed=True, external_account_binding=eab))
    return Account(client, key, names)


def _csr(name: str) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), False)
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM)


def _one_order(w: World, account: Account, name: str) -> float:
    started = time.perf_counter()
    order = account.client.new_order(_csr(name))
    for authz in order.authorizations:
        challenge = next(c for c in authz.body.challenges if isinstance(c.chall, acme_challenges.DNS01))
        publish_dns01(w.knot, authz.body.identifier.value, challenge.chall.encode("token"), account.key)
        account.client.answer_challenge(challenge, challenge.response(account.key))
    done = account.client.poll_and_finalize(order, dt.datetime.now() + dt.timedelta(seconds=CLIENT_TIMEOUT))
    assert "BEGIN CERTIFICATE" in done.fullchain_pem
    return time.perf_counter() - started


def _fresh_pg_schema(pg: str) -> tuple[str, str]:
    schema = f"bench_acme_{uuid.uuid4().hex[:8]}"
    admin = db.make_engine(pg, poolclass=NullPool)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    admin.dispose()
    url = db.normalize_url(pg).update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False), schema


def _drop_pg_schema(pg: str, schema: str) -> None:
    admin = db.make_engine(pg, poolclass=NullPool)
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    admin.dispose()


def _acme_requests(log: Path) -> int:
    """How many ACME requests the server has logged so far (uvicorn's access log): polling grows with latency,
    so requests per order tell a slow server's extra load from its work per order."""
    return sum(
        1
        for line in log.read_text(errors="replace").splitlines()
        if '"POST /acme/' in line or '"GET /acme/' in line or '"HEAD /acme/' in line
    )


def orders_per_second(w: World, label: str, database_url: str | None, clients: int, orders: int, workers: int) -> float:
    env = _ecert_settings(w, w.work / f"ecert-{label}", database_url)
    port = free_port()
    log = w.work / f"ecert-{label}.log"
    with _processes() as started:
        started.append(
            _spawn([ECERT_CA, "serve", "--demo", "--port", str(port), "--workers", str(workers)], _env(**env), log)
        )
        directory_url = f"http://127.0.0.1:{port}/acme/directory"
        _wait_http(directory_url, started[0], log)
        ctx = _context(env)
        try:
            accounts = [
                _register(ctx, directory_url, [w.fresh_name("o") for _ in range(orders)]) for _ in range(clients)
            ]
            warm = [_register(ctx, directory_url, [w.fresh_name("warm")]) for _ in range(4 * workers)]
        finally:
            ctx.close()
        return _timed_orders(w, label, accounts, warm, started[0].pid, log)


def pebble_orders_per_second(w: World, clients: int, orders: int) -> float:
    """The same clients, orders and dns-01 records against Pebble: what a server that stores, lints and
    corroborates nothing, written in Go, completes on this machine beside the same clients, DNS and knsupdate."""
    with pebble(w) as (directory_url, pid):
        accounts = [
            _pebble_account(w, directory_url, [w.fresh_name("p") for _ in range(orders)]) for _ in range(clients)
        ]
        warm = [_pebble_account(w, directory_url, [w.fresh_name("pwarm")]) for _ in range(8)]
        return _timed_orders(w, "Pebble", accounts, warm, pid, None)


def _pebble_account(w: World, directory_url: str, names: list[str]) -> Account:
    """An account at Pebble (no EAB there: it has no applications to bind to), over HTTPS verified against the
    bench's throwaway root (requests takes a CA bundle's path where ``verify_ssl`` is typed as a bool)."""
    key = JWKEC(key=ec.generate_private_key(ec.SECP256R1()))
    net = acme_client.ClientNetwork(key, alg=ES256, user_agent="ecert-bench", verify_ssl=str(w.tls_root))  # type: ignore[arg-type]
    client = acme_client.ClientV2(acme_client.ClientV2.get_directory(directory_url, net), net)
    client.new_account(messages.NewRegistration.from_data(terms_of_service_agreed=True))
    return Account(client, key, names)


def _timed_orders(
    w: World, label: str, accounts: list[Account], warm: list[Account], server_pid: int, log: Path | None
) -> float:
    """Warm the server up (untimed), then every account places its orders one after the other, all at once."""
    latencies: list[float] = []

    def run(account: Account) -> None:
        for name in account.names:
            latencies.append(_one_order(w, account, name))

    # Warm-up, not timed: each worker process loads the public suffix list, the lint container, the
    # validator and its perspective client on its first order; a few orders at once reach every worker.
    with ThreadPoolExecutor(max_workers=len(warm)) as pool:
        list(pool.map(lambda a: _one_order(w, a, a.names[0]), warm))
    cpu_before = _cpu_snapshot(w, server_pid)
    requests_before = _acme_requests(log) if log else 0
    profiler = _start_profiler(server_pid, label)
    started_at = time.perf_counter()
    with ThreadPoolExecutor(max_workers=len(accounts)) as pool:
        list(pool.map(run, accounts))
    elapsed = time.perf_counter() - started_at
    _stop_profiler(profiler)
    cpu_after = _cpu_snapshot(w, server_pid)
    rate = len(latencies) / elapsed
    per_order = (
        f"; {(_acme_requests(log) - requests_before) / len(latencies):.1f} ACME requests per order" if log else ""
    )
    print(
        f"   {label:<11} {rate:6.2f} orders/s  ({len(latencies)} orders in {elapsed:.1f} s; one order "
        f"{statistics.median(latencies):.2f} s median, {max(latencies):.2f} s max{per_order})"
    )
    _print_cpu(cpu_before, cpu_after, len(latencies))
    return rate


def _start_profiler(serve_pid: int, label: str) -> subprocess.Popen[bytes] | None:
    """With ECERT_BENCH_PROFILE=DIR, py-spy samples the serve workers while the clock runs: the thread holding
    the GIL, which is where the CPU goes (waits on the database or a lock would otherwise fill the profile)."""
    out_dir = os.environ.get("ECERT_BENCH_PROFILE")
    if not out_dir:
        return None
    out = Path(out_dir) / f"acme-{label}.txt"
    args = [str(BIN / "py-spy"), "record", "--subprocesses", "--gil", "-r", "100", "-f", "raw", "-o", str(out)]
    return subprocess.Popen([*args, "-p", str(serve_pid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _stop_profiler(profiler: subprocess.Popen[bytes] | None) -> None:
    if profiler is not None:
        profiler.send_signal(signal.SIGINT)
        profiler.wait(timeout=60)


def part_orders(w: World, pg: str | None, clients: int, orders: int, workers: int) -> None:
    print(
        f"\n2. {clients} concurrent acme.ClientV2 accounts x {orders} orders each, dns-01, "
        f"ecert-ca serve --workers {workers}"
    )
    baseline = pebble_orders_per_second(w, clients, orders)
    rates = {"SQLite": orders_per_second(w, "SQLite", None, clients, orders, workers)}
    if pg:
        url, schema = _fresh_pg_schema(pg)
        try:
            rates["PostgreSQL"] = orders_per_second(w, "PostgreSQL", url, clients, orders, workers)
        finally:
            _drop_pg_schema(pg, schema)
    print("   " + ", ".join(f"ecert on {label} / Pebble = {rate / baseline:.2f}" for label, rate in rates.items()))
    if pg:
        met = rates["PostgreSQL"] >= 20
        print(f"   goal: at least 20 orders/s on PostgreSQL -> {'met' if met else 'not met'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--certbot-runs", type=int, default=3)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--orders", type=int, default=2, help="orders per client")
    parser.add_argument("--workers", type=int, default=2, help="ecert-ca serve worker processes")
    parser.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--skip-certbot", action="store_true")
    parser.add_argument("--skip-orders", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ecert-bench-acme-") as tmp, world(Path(tmp)) as w:
        print(f"loopback: Knot {w.knot.authoritative_addr}, unbound {w.resolver}, perspectives {len(w.perspectives)}")
        if not args.skip_certbot:
            part_certbot(w, args.certbot_runs)
        if not args.skip_orders:
            part_orders(w, args.pg or None, args.clients, args.orders, args.workers)


if __name__ == "__main__":
    main()
