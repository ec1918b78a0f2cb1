"""Benchmark: the API's session-read-download path under a bounded load, against a static file server.

Starts ecert's web service with uvicorn on 127.0.0.1 (SQLite in a temp dir, or PostgreSQL when
ECERT_DATABASE_URL is set), prepares N sessions with an accepted certificate each, then drives
``GET /api/v1/application`` and ``GET /api/v1/certificate/download?format=pem`` with
``wrk`` connections (bounded: 1 thread, N connections, S seconds); in the same run ``wrk`` drives Debian's
nginx (one worker) serving a file of the same size as the PEM. Prints p50/p99 latency and requests per
second of each, and the ratio to the static baseline.

    .venv/bin/python bench/portal.py [--seconds 5] [--connections 16] [--sessions 4]
    ECERT_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test .venv/bin/python bench/portal.py

The CAA lookup at issuance is stubbed (the bench measures reads, not DNS). The applications skip the
subscriber's DCV step because their names fall under an operator-held validation of example.com (made
with the stubbed validator before the sessions); being government applications does not exempt them
(BR 3.2.2.4 has no such exemption).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

ENV = {"ECERT_KEY_PASSPHRASE": "bench-passphrase", "ECERT_SESSION_SECRET": "b" * 48}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _BenchValidator:
    """Stands in for the network so preparation needs no DNS: the bench measures reads, not validation.

    It answers the operator's DNS validation of example.com (so the bench's applications skip the
    subscriber DCV step, as operator-held validations allow) and the CAA check at issuance.
    """

    def check(self, method: Any, domain: str, code: str, **_: Any) -> Any:
        from ecert.core.dcv_rules import DomainResult

        return DomainResult(domain, str(method), True, "bench: DNS not consulted", {"bench": True}, "bench")

    def check_caa(self, names: list[str], **_: Any) -> list[Any]:
        from ecert.core.dcv_rules import CaaDecision

        return [CaaDecision(n, True, "bench: CAA not consulted") for n in names]


def _drop_schema(url: str, schema: str) -> None:
    from sqlalchemy import text

    from ecert.store import db

    engine = db.make_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()


def _pg_schema_url(url: str) -> str:
    """A fresh schema on the given PostgreSQL server, so the bench never touches existing data."""
    from sqlalchemy import text

    from ecert.store import db

    schema = f"ecert_bench_{uuid.uuid4().hex[:8]}"
    engine = db.make_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()
    parsed = db.normalize_url(url).update_query_dict({"options": f"-csearch_path={schema}"})
    return parsed.render_as_string(hide_password=False)


def prepare(data_dir: Path, database_url: str | None, sessions: int) -> tuple[dict[str, Any], list[str], int]:
    """Demo CA, ``sessions`` accepted certificates, one bearer token each; returns settings, tokens, PEM size."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import Encoding

    from ecert.services import applications as apps
    from ecert.services import certificates as enrolment
    from ecert.services import downloads
    from ecert.services.ca_config import load_hierarchy_config
    from ecert.services.ceremony import init_hierarchy
    from ecert.services.context import build_context
    from ecert.settings import Settings

    overrides: dict[str, Any] = {"data_dir": str(data_dir), "base_url": "http://pki.ecert-demo.hk", "smtp_port": 9}
    if database_url:
        overrides["database_url"] = database_url
    ctx = build_context(Settings(**overrides), ENV)
    init_hierarchy(ctx, load_hierarchy_config(None), demo=True)
    ctx.validator = _BenchValidator()  # type: ignore[assignment]
    from ecert.services.operator_dcv import check_operator_validation, start_operator_validation

    start_operator_validation(ctx, "example.com", actor="bench")
    check_operator_validation(ctx, "example.com", actor="bench")
    tokens, size = [], 0
    for i in range(sessions):
        host = f"bench{i}.example.com"
        reg = apps.register_application(
            ctx,
            apps.ApplicationInput(
                server_name=host,
                cert_type="server",  # type: ignore[arg-type]
                org_name_en="Bench Limited",
                reg_doc_type="br",
                reg_doc_number="1",
                subscription_years=1,
                rep_email="a@example.com",
                is_government=True,
            ),
            actor="bench",
        )
        apps.confirm_application(ctx, reg.application_id, use_chinese=False, actor="bench")
        key = ec.generate_private_key(ec.SECP256R1())
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([]))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
            .sign(key, hashes.SHA256())
        )
        enrolment.submit_csr(ctx, reg.application_id, csr.public_bytes(Encoding.PEM).decode(), actor="bench")
        enrolment.accept_certificate(ctx, reg.application_id, actor="bench")
        size = len(downloads.download(ctx, reg.application_id, "pem").data)
        tokens.append(apps.open_session(ctx, reg.application_id).token)
    ctx.close()
    return overrides, tokens, size


SERVER = """
import sys, uvicorn
sys.path.insert(0, {src!r})
uvicorn.run("ecert.web.worker:create_app_from_env", factory=True, host="127.0.0.1", port={port},
            log_level="warning", access_log=False, workers={workers})
"""


def server_env(overrides: dict[str, Any]) -> dict[str, str]:
    """What the workers read: the same settings ``prepare`` used, as ECERT_ variables."""
    env = dict(os.environ, **ENV)
    env.update({f"ECERT_{k.upper()}": str(v) for k, v in overrides.items()})
    return env


def cpu_seconds(root_pid: int) -> float:
    """User+system CPU of ``root_pid`` and its children (uvicorn's workers), from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid, ppid = int(stat.parent.name), int(fields[1])
        if root_pid in (pid, ppid):
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server on port {port} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


NGINX_CONF = """
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {dir}/tmp; proxy_temp_path {dir}/tmp; fastcgi_temp_path {dir}/tmp;
    uwsgi_temp_path {dir}/tmp; scgi_temp_path {dir}/tmp;
    server {{ listen 127.0.0.1:{port}; root {dir}/www; location / {{ default_type application/x-pem-file; }} }}
}}
"""


def connections_per_worker(port: int) -> list[int]:
    """How many established client connections each server process holds (``ss``), largest first.

    With ``--workers 2`` the workers share one listening socket and whichever accepts first keeps the
    connection: a 12/4 split leaves one worker with three times the queue, which shows in p99.
    """
    out = subprocess.run(
        ["ss", "-tnpH", "state", "established", f"( sport = :{port} )"], capture_output=True, text=True, check=False
    ).stdout
    counts: dict[str, int] = {}
    for pid in re.findall(r"pid=(\d+)", out):
        counts[pid] = counts.get(pid, 0) + 1
    return sorted(counts.values(), reverse=True)


def wrk(
    url: str,
    seconds: int,
    connections: int,
    header: str | None = None,
    cpu_of: int | None = None,
    split: tuple[int, list[int]] | None = None,
) -> dict[str, float]:
    """One bounded wrk run: requests/second, the p50/p99 latency it reports (--latency), and the server's CPU
    per request when ``cpu_of`` names its process; ``split`` = (port, list) receives the connections each
    worker held half-way through."""
    cpu_before = cpu_seconds(cpu_of) if cpu_of else 0.0
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "10s"]
    if header:
        cmd += ["-H", header]
    run = subprocess.Popen(cmd + [url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if split is not None:
        time.sleep(seconds / 2)
        split[1].extend(connections_per_worker(split[0]))
    out, err = run.communicate(timeout=seconds + 30)
    if run.returncode != 0:
        raise RuntimeError(f"wrk failed: {err}")

    def latency(pct: str) -> float:
        m = re.search(rf"^\s*{pct}%\s+([\d.]+)(us|ms|s)", out, re.M)
        assert m, out
        return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]

    cpu = (cpu_seconds(cpu_of) - cpu_before) if cpu_of else 0.0
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    requests = float(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    return {
        "p50_ms": latency("50"),
        "p99_ms": latency("99"),
        "rps": rps,
        "errors": float(non2xx.group(1)) if non2xx else 0.0,
        "cpu_ms": 1000.0 * cpu / requests if cpu_of and requests else 0.0,
    }


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop a server and, for the API server (a session leader), every worker it started."""
    group = os.getpgid(proc.pid) if proc.poll() is None else None
    signal_to = (lambda sig: os.killpg(group, sig)) if group == proc.pid else proc.send_signal
    with contextlib.suppress(ProcessLookupError):
        signal_to(signal.SIGTERM)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            signal_to(signal.SIGKILL)
        proc.wait(timeout=5)
    if group == proc.pid:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)  # a worker that outlived its parent


@contextlib.contextmanager
def profiled(prefix: str | None, name: str, pid: int, seconds: int) -> Iterator[None]:
    """py-spy (sampling, in its own process) on the server and its workers for the duration of one run."""
    if not prefix:
        yield
        return
    spy = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("py-spy")),
            "record",
            "--pid",
            str(pid),
            "--subprocesses",
            "--gil",  # the thread holding the GIL: where the CPU goes, not the waits
            "--rate",
            "400",
            "--format",
            "raw",
            "--duration",
            str(seconds + 1),
            "--nonblocking",
            "--output",
            f"{prefix}-{name}.txt",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(0.5)
    try:
        yield
    finally:
        spy.wait(timeout=seconds + 30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--sessions", type=int, default=4)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument(
        "--profile",
        metavar="PREFIX",
        help="record each ecert run with py-spy into PREFIX-<n>.txt "
        "(collapsed stacks; py-spy must be installed in the venv)",
    )
    args = parser.parse_args()
    database_url = os.environ.get("ECERT_DATABASE_URL")
    server_url = database_url
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="ecert-bench-") as tmp:
        try:
            if database_url:
                database_url = _pg_schema_url(database_url)
            overrides, tokens, size = prepare(Path(tmp) / "ca", database_url, args.sessions)
            api_port, static_port = free_port(), free_port()
            code = SERVER.format(src=str(ROOT / "src"), port=api_port, workers=args.workers)
            # A session of its own, so the cleanup below stops uvicorn's workers too (never orphans holding
            # database connections).
            procs.append(
                subprocess.Popen([sys.executable, "-c", code], env=server_env(overrides), start_new_session=True)
            )
            www = Path(tmp) / "nginx"
            (www / "www").mkdir(parents=True)
            (www / "tmp").mkdir()
            Path(tmp).chmod(0o755)
            (www / "www" / "cert.pem").write_bytes(b"x" * size)
            (www / "nginx.conf").write_text(NGINX_CONF.format(dir=www, port=static_port))
            procs.append(
                subprocess.Popen(
                    [shutil.which("nginx") or "/usr/sbin/nginx", "-c", str(www / "nginx.conf"), "-p", str(www)],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
            wait_listening(api_port, procs[0])
            wait_listening(static_port, procs[1])
            base = f"http://127.0.0.1:{api_port}/api/v1"
            header = f"Authorization: Bearer {tokens[0]}"
            # Warm-up of both paths (every worker's pool, caches and lazy imports), then the measured runs.
            wrk(f"{base}/application", 2, args.connections, header)
            wrk(f"{base}/certificate/download?format=pem", 2, args.connections, header)
            pid = procs[0].pid
            split: list[int] = []
            with profiled(args.profile, "application", pid, args.seconds):
                application = wrk(
                    f"{base}/application", args.seconds, args.connections, header, pid, split=(api_port, split)
                )
            with profiled(args.profile, "download", pid, args.seconds):
                download = wrk(f"{base}/certificate/download?format=pem", args.seconds, args.connections, header, pid)
            results = {
                "api GET /application": application,
                "api GET /certificate/download?format=pem": download,
                f"nginx static file ({size} B)": wrk(
                    f"http://127.0.0.1:{static_port}/cert.pem", args.seconds, args.connections
                ),
            }
        finally:
            for proc in procs:
                _stop(proc)
            if server_url and database_url and "ecert_bench_" in database_url:
                _drop_schema(server_url, database_url.split("search_path%3D")[-1].split("search_path=")[-1])
    engine = "PostgreSQL" if database_url else "SQLite"
    print(
        f"ecert portal API bench: {engine}, wrk 1 thread, {args.connections} connections, {args.seconds} s per "
        f"target, loopback, {args.workers} uvicorn worker(s) vs one nginx worker"
    )
    if args.workers > 1:
        print(f"  connections held per worker during GET /application: {split}")
    static = list(results.values())[-1]
    for name, r in results.items():
        print(
            f"  {name:<44} p50 {r['p50_ms']:7.2f} ms  p99 {r['p99_ms']:7.2f} ms  {r['rps']:8.1f} req/s  "
            f"CPU {r['cpu_ms']:5.2f} ms/req  non-2xx {int(r['errors'])}  ({r['rps'] / static['rps']:.3f}x nginx)"
        )


if __name__ == "__main__":
    main()
