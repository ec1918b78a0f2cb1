"""Benchmark: the API's session-read-download path under a bounded load, against a static file server.

Starts ecert's web service with uvicorn on 127.0.0.1 (SQLite in a temp dir, or PostgreSQL when
ECERT_DATABASE_URL is set), prepares N sessions with an accepted certificate each, then drives
``GET /api/v1/application`` and ``GET /api/v1/certificate/download?format=pem`` with C concurrent
httpx clients; in the same run it drives Python's http.server serving a file of the same size as the
PEM. Prints p50/p99 latency and requests per second of each, and the ratio to the static baseline.

    .venv/bin/python bench/portal.py [--requests 2000] [--concurrency 16] [--sessions 16]
    ECERT_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test .venv/bin/python bench/portal.py

The CAA lookup at issuance is stubbed (the bench measures reads, not DNS); applications are government
ones, which skip DCV by the seed's rule.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

ENV = {"ECERT_KEY_PASSPHRASE": "bench-passphrase", "ECERT_SESSION_SECRET": "b" * 48}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _CaaAllows:
    """Stands in for the Validator's CAA check so preparation needs no DNS."""

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
    from ecert.services import downloads, enrolment
    from ecert.services.ca_config import load_hierarchy_config
    from ecert.services.ceremony import init_hierarchy
    from ecert.services.context import build_context
    from ecert.settings import Settings

    overrides: dict[str, Any] = {"data_dir": str(data_dir), "base_url": "http://pki.ecert-demo.hk", "smtp_port": 9}
    if database_url:
        overrides["database_url"] = database_url
    ctx = build_context(Settings(**overrides), ENV)
    init_hierarchy(ctx, load_hierarchy_config(None), demo=True)
    ctx.cache["validator"] = _CaaAllows()
    tokens, size = [], 0
    for i in range(sessions):
        host = f"bench{i}.example.com"
        reg = apps.register_application(ctx, apps.ApplicationInput(
            server_name=host, cert_type="server", org_name_en="Bench Limited", reg_doc_type="br",  # type: ignore[arg-type]
            reg_doc_number="1", subscription_years=1, rep_email="a@example.com", is_government=True), actor="bench")
        apps.confirm_application(ctx, reg.application_id, use_chinese=False, actor="bench")
        key = ec.generate_private_key(ec.SECP256R1())
        csr = (x509.CertificateSigningRequestBuilder().subject_name(x509.Name([]))
               .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
               .sign(key, hashes.SHA256()))
        enrolment.submit_csr(ctx, reg.application_id, csr.public_bytes(Encoding.PEM).decode(), actor="bench")
        enrolment.accept_certificate(ctx, reg.application_id, actor="bench")
        size = len(downloads.download(ctx, reg.application_id, "pem").data)
        tokens.append(apps.open_session(ctx, reg.application_id).token)
    ctx.close()
    return overrides, tokens, size


SERVER = """
import sys, uvicorn
sys.path.insert(0, {src!r})
from ecert.settings import Settings
from ecert.web.app import create_app
settings = Settings(**{overrides!r})
uvicorn.run(create_app(settings, {env!r}), host="127.0.0.1", port={port}, log_level="warning", access_log=False)
"""


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


async def drive(urls_and_headers: list[tuple[str, dict[str, str]]], total: int, concurrency: int) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    counter = iter(range(total))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30.0, trust_env=False) as client:
        async def worker() -> None:
            nonlocal errors
            for i in counter:
                url, headers = urls_and_headers[i % len(urls_and_headers)]
                t0 = time.perf_counter()
                r = await client.get(url, headers=headers)
                latencies.append(time.perf_counter() - t0)
                if r.status_code != 200:
                    errors += 1
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {"p50_ms": 1000 * statistics.median(latencies),
            "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
            "rps": len(latencies) / elapsed, "errors": errors}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--sessions", type=int, default=16)
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
            code = SERVER.format(src=str(ROOT / "src"), overrides=overrides, env=ENV, port=api_port)
            procs.append(subprocess.Popen([sys.executable, "-c", code]))
            webroot = Path(tmp) / "static"
            webroot.mkdir()
            (webroot / "cert.pem").write_bytes(b"x" * size)
            procs.append(subprocess.Popen([sys.executable, "-m", "http.server", "--bind", "127.0.0.1",
                                           "--directory", str(webroot), str(static_port)],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            wait_listening(api_port, procs[0])
            wait_listening(static_port, procs[1])
            base = f"http://127.0.0.1:{api_port}/api/v1"
            auth = [{"Authorization": f"Bearer {t}"} for t in tokens]
            runs = {
                "api GET /application": [(f"{base}/application", h) for h in auth],
                "api GET /certificate/download?format=pem": [(f"{base}/certificate/download?format=pem", h)
                                                              for h in auth],
                f"static http.server ({size} B file)": [(f"http://127.0.0.1:{static_port}/cert.pem", {})],
            }
            asyncio.run(drive(runs["api GET /application"], 200, args.concurrency))  # warm-up
            results = {name: asyncio.run(drive(targets, args.requests, args.concurrency))
                       for name, targets in runs.items()}
        finally:
            for proc in procs:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
            if server_url and database_url and "ecert_bench_" in database_url:
                _drop_schema(server_url, database_url.split("search_path%3D")[-1].split("search_path=")[-1])
    engine = "PostgreSQL" if database_url else "SQLite"
    print(f"ecert portal API bench: {engine}, {args.requests} requests per target, concurrency {args.concurrency}, "
          f"{args.sessions} sessions, loopback")
    static = list(results.values())[-1]
    for name, r in results.items():
        print(f"  {name:<48} p50 {r['p50_ms']:7.2f} ms  p99 {r['p99_ms']:7.2f} ms  {r['rps']:8.1f} req/s  "
              f"errors {int(r['errors'])}  ({r['rps'] / static['rps']:.2f}x static)")


if __name__ == "__main__":
    main()
