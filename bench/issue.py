"""Certificates per second through the issuance pipeline (CSR checks excluded: plan, lint, sign, store).

Beside it, measured in the same run on the same CA key: raw signatures/second and one pkilint pass,
the two parts no pipeline can avoid. Goal (issue 2): time per certificate on PostgreSQL at most twice
(one lint pass + one signature).

    .venv/bin/python bench/issue.py [--count 200] [--pg postgresql+psycopg://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import text
from sqlalchemy.pool import NullPool

from ecert.core.profiles import CertType, SubjectData
from ecert.services import issuance
from ecert.services.ca_config import load_hierarchy_config
from ecert.services.ceremony import init_hierarchy
from ecert.services.context import build_context
from ecert.settings import load_settings
from ecert.signer.lint import lint_certificate
from ecert.store import db


def _ctx(tmp: Path, url: str | None):  # type: ignore[no-untyped-def]
    settings = load_settings(data_dir=tmp, database_url=url, base_url="http://pki.ecert-demo.hk")
    ctx = build_context(settings, {"ECERT_KEY_PASSPHRASE": "bench-passphrase"})
    init_hierarchy(ctx, load_hierarchy_config(None), demo=True)
    return ctx


def _pipeline(ctx, count: int) -> float:  # type: ignore[no-untyped-def]
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    req = issuance.IssueRequest(cert_type=CertType.SERVER, names=("www.example.com",),
                                subject=SubjectData("Example Limited"), public_key=key)
    issuance.issue(ctx, req)  # warm: loads the key, builds the lint container
    t0 = time.perf_counter()
    for _ in range(count):
        issuance.issue(ctx, req)
    return (time.perf_counter() - t0) / count


def _parts(ctx, count: int) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    with ctx.transaction() as s:
        row = issuance.active_issuing_ca(s, CertType.SERVER, ctx.clock())
        issuer = issuance.issuer_for(ctx, row)
        der = s.execute(text("SELECT der FROM certificates WHERE der IS NOT NULL LIMIT 1")).scalar_one()
    tbs = x509.load_der_x509_certificate(der).tbs_certificate_bytes
    key = issuer._key  # noqa: SLF001 - the benchmark measures the very key the pipeline uses
    t0 = time.perf_counter()
    for _ in range(count * 5):
        key.sign(tbs, ec.ECDSA(issuer._hash))  # noqa: SLF001
    sign = (time.perf_counter() - t0) / (count * 5)
    lints = []
    for _ in range(count):
        t1 = time.perf_counter()
        lint_certificate(der, "OV-FINAL-CERTIFICATE")
        lints.append(time.perf_counter() - t1)
    return sign, statistics.mean(lints)


def _commit_ms(ctx, count: int) -> float:  # type: ignore[no-untyped-def]
    """One durable one-row commit on the same database: what each of the pipeline's two commits costs."""
    with ctx.engine.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS bench_commit (x INTEGER)"))
    t0 = time.perf_counter()
    for i in range(count):
        with ctx.engine.begin() as conn:
            conn.execute(text("INSERT INTO bench_commit (x) VALUES (:x)"), {"x": i})
    per = (time.perf_counter() - t0) / count
    with ctx.engine.begin() as conn:
        conn.execute(text("DROP TABLE bench_commit"))
    return per


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    engines: list[tuple[str, str | None]] = [("sqlite", None)]
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    admin = None
    if args.pg:
        admin = db.make_engine(args.pg, poolclass=NullPool)
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = db.normalize_url(args.pg).update_query_dict({"options": f"-csearch_path={schema}"})
        engines.append(("postgresql", url.render_as_string(hide_password=False)))
    print(f"{'engine':<11} {'cert/s':>8} {'ms/cert':>8} {'sign ms':>8} {'lint ms':>8} {'commit ms':>9} "
          f"{'sign/s':>9} {'ratio':>6} {'ratio2':>6}")
    print("  ratio = ms/cert / (sign + lint), goal <= 2;  ratio2 = ms/cert / (sign + lint + 2 durable commits)")
    try:
        for name, url in engines:
            with tempfile.TemporaryDirectory() as tmp:
                ctx = _ctx(Path(tmp), url)
                per_cert = _pipeline(ctx, args.count)
                sign, lint = _parts(ctx, args.count)
                commit = _commit_ms(ctx, args.count)
                ctx.close()
            print(f"{name:<11} {1 / per_cert:8.1f} {per_cert * 1e3:8.2f} {sign * 1e3:8.3f} {lint * 1e3:8.2f} "
                  f"{commit * 1e3:9.2f} {1 / sign:9.0f} {per_cert / (sign + lint):6.2f} "
                  f"{per_cert / (sign + lint + 2 * commit):6.2f}")
    finally:
        if admin is not None:
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            admin.dispose()


if __name__ == "__main__":
    main()
