"""Certificates per second through the issuance pipeline (CSR checks excluded: plan, lint, sign, store).

Beside it, measured in the same run on the same CA key: raw signatures/second and one pkilint pass,
the two parts no pipeline can avoid. Goal (issue 2): time per certificate on PostgreSQL at most twice
(one lint pass + one signature).

    .venv/bin/python bench/issue.py [--count 200] [--pg postgresql+psycopg://postgres@127.0.0.1:5432/test]
        [--no-peers]

The CT columns (issue 12) run the same pipeline with Certificate Transparency on, against three test
RFC 6962 logs on loopback (tests/ct_log, in a process of their own) answering 100, 150 and 200 ms after each
request arrives, two operators; the CT run issues count/5 certificates (at least 20). The default
lifetime needs 3 SCTs, so every log must answer: fetched in parallel, CT should cost at most the slowest
log's latency plus 20 % (goal: ratio <= 1.2), not the sum of the three (450 ms).

Then the peers on the same CSRs (bench/issue_peers.py): ``openssl ca -batch`` per call and batched
(``-infiles``), django-ca's Python API without lint (in a bench-only venv under /tmp, made on first use),
and ecert itself on those CSRs' keys, each in one and two processes, with ecert's ratio to each.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import tempfile
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, cast

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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the test CT log lives in tests/ct_log

from tests.ct_log.server import Faults, TestLog, log_list_json  # noqa: E402

LOG_DELAYS = (("Argon", "Google", 0.100), ("Nimbus", "Cloudflare", 0.150), ("Xenon", "Google", 0.200))


def _ctx(tmp: Path, url: str | None, **extra: object):  # type: ignore[no-untyped-def]
    settings = load_settings(data_dir=tmp, database_url=url, base_url="http://pki.ecert-demo.hk", **extra)
    ctx = build_context(settings, {"ECERT_KEY_PASSPHRASE": "bench-passphrase"})
    init_hierarchy(ctx, load_hierarchy_config(None), demo=True)
    return ctx


def _pipeline(ctx, count: int) -> float:  # type: ignore[no-untyped-def]
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    req = issuance.IssueRequest(
        cert_type=CertType.SERVER, names=("www.example.com",), subject=SubjectData("Example Limited"), public_key=key
    )
    issuance.issue(ctx, req)  # warm: loads the key, builds the lint container
    t0 = time.perf_counter()
    for _ in range(count):
        issuance.issue(ctx, req)
    return (time.perf_counter() - t0) / count


def _serve_logs(conn: Connection, tmp: str) -> None:
    """In a process of its own: the three test logs, until the bench says stop. Their HTTP handling, chain
    checks and signatures then take no turn of the bench's GIL, as a remote log's would not."""
    logs = [TestLog(name=n, operator=o, faults=Faults(delay=d)).start() for n, o, d in LOG_DELAYS]
    path = Path(tmp) / "log_list.json"
    path.write_text(log_list_json([(log.operator, log.log_list_entry()) for log in logs]))
    conn.send(str(path))
    conn.recv()
    for log in logs:
        log.stop()


def _with_ct(tmp: Path, url: str | None, count: int) -> tuple[float, float]:
    """(s/cert, s spent fetching SCTs per cert) with CT on, on the same CA and database as the run without."""
    spawn = multiprocessing.get_context("spawn")
    ours, theirs = spawn.Pipe()
    server = spawn.Process(target=_serve_logs, args=(theirs, str(tmp)), daemon=True)
    server.start()
    spent: list[float] = []
    try:
        extra = {"ct_enabled": True, "ct_log_list": Path(ours.recv()), "ct_timeout_seconds": 5.0}
        ctx = _ctx(tmp, url, **extra)
        submit = ctx.ct.submit_precertificate

        def timed(*args, **kwargs):  # type: ignore[no-untyped-def]
            t0 = time.perf_counter()
            try:
                return submit(*args, **kwargs)
            finally:
                spent.append(time.perf_counter() - t0)

        ctx.ct.submit_precertificate = timed
        per_cert = _pipeline(ctx, count)
        ctx.close()
    finally:
        ours.send("stop")
        server.join(10)
    return per_cert, statistics.mean(spent[-count:])


def _ct_report(rows: list[tuple[str, float, float, float]]) -> None:
    slowest = max(d for _n, _o, d in LOG_DELAYS)
    print(
        f"\nCertificate Transparency, 3 loopback test logs ({', '.join(f'{d * 1e3:.0f}' for *_x, d in LOG_DELAYS)} "
        f"ms; the sum would be {sum(d for *_x, d in LOG_DELAYS) * 1e3:.0f} ms), same run:"
    )
    print(f"{'engine':<11} {'cert/s':>8} {'CT cert/s':>9} {'CT cost ms':>10} {'ratio':>6} {'SCT ms':>7} {'ratio':>6}")
    print(
        f"  CT cost = ms/cert with CT - without; ratio = / slowest log ({slowest * 1e3:.0f} ms), goal <= 1.2."
        "  SCT ms = the parallel submission alone"
    )
    for name, plain, with_ct, sct in rows:
        cost = with_ct - plain
        print(
            f"{name:<11} {1 / plain:8.1f} {1 / with_ct:9.2f} {cost * 1e3:10.1f} {cost / slowest:6.2f} "
            f"{sct * 1e3:7.1f} {sct / slowest:6.2f}"
        )


def _parts(ctx, count: int) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    with ctx.transaction() as s:
        row = issuance.active_issuing_ca(s, CertType.SERVER, ctx.clock())
        issuer = issuance.issuer_for(ctx, row)
        der = s.execute(text("SELECT der FROM certificates WHERE der IS NOT NULL LIMIT 1")).scalar_one()
    tbs = x509.load_der_x509_certificate(der).tbs_certificate_bytes
    key = cast(ec.EllipticCurvePrivateKey, issuer._key)  # noqa: SLF001 - the very key the pipeline uses (P-256)
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
    parser.add_argument("--no-peers", action="store_true", help="skip openssl ca, django-ca and the 2-process runs")
    args = parser.parse_args()
    engines: list[tuple[str, str | None]] = [("sqlite", None)]
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    admin = None
    if args.pg:
        admin = db.make_engine(args.pg, poolclass=NullPool)
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        pg_url = db.normalize_url(args.pg).update_query_dict({"options": f"-csearch_path={schema}"})
        engines.append(("postgresql", pg_url.render_as_string(hide_password=False)))
    print(
        f"{'engine':<11} {'cert/s':>8} {'ms/cert':>8} {'sign ms':>8} {'lint ms':>8} {'commit ms':>9} "
        f"{'sign/s':>9} {'ratio':>6} {'ratio2':>6}"
    )
    print("  ratio = ms/cert / (sign + lint), goal <= 2;  ratio2 = ms/cert / (sign + lint + 2 durable commits)")
    ct_rows: list[tuple[str, float, float, float]] = []
    try:
        for name, url in engines:
            with tempfile.TemporaryDirectory() as tmp:
                ctx = _ctx(Path(tmp), url)
                per_cert = _pipeline(ctx, args.count)
                sign, lint = _parts(ctx, args.count)
                commit = _commit_ms(ctx, args.count)
                ctx.close()
                ct_rows.append((name, per_cert, *_with_ct(Path(tmp), url, max(20, args.count // 5))))
            print(
                f"{name:<11} {1 / per_cert:8.1f} {per_cert * 1e3:8.2f} {sign * 1e3:8.3f} {lint * 1e3:8.2f} "
                f"{commit * 1e3:9.2f} {1 / sign:9.0f} {per_cert / (sign + lint):6.2f} "
                f"{per_cert / (sign + lint + 2 * commit):6.2f}"
            )
        _ct_report(ct_rows)
        if not args.no_peers:
            _peers_report(engines, args.count)
    finally:
        if admin is not None:
            with admin.begin() as conn:
                for name in (schema, *_SCHEMAS):
                    conn.execute(text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
            admin.dispose()


def _csr_pipeline(job: tuple[str, str | None, list[str]]) -> tuple[int, float, float]:
    """One process of ecert's pipeline over its share of the CSRs (their keys and names); (count, seconds, CPU
    seconds of this process over the same loop)."""
    tmp, url, paths = job
    settings = load_settings(data_dir=Path(tmp), database_url=url, base_url="http://pki.ecert-demo.hk")
    ctx = build_context(settings, {"ECERT_KEY_PASSPHRASE": "bench-passphrase"}, migrate=False)
    reqs = []
    for path in paths:
        csr = x509.load_pem_x509_csr(Path(path).read_bytes())
        names = tuple(
            csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
        )
        reqs.append(
            issuance.IssueRequest(
                cert_type=CertType.SERVER,
                names=names,
                subject=SubjectData("Example Limited"),
                public_key=cast(ec.EllipticCurvePublicKey, csr.public_key()),
            )
        )
    issuance.issue(ctx, reqs[0])  # warm: loads the key, builds the lint container
    c0, t0 = time.process_time(), time.perf_counter()
    for req in reqs:
        issuance.issue(ctx, req)
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    ctx.close()
    return len(reqs), elapsed, cpu


def _ecert_on_csrs(tmp: Path, url: str | None, csrs: list[Path], processes: int) -> Any:
    """ecert's certificates/second and CPU ms per certificate (its own processes; the database server's CPU
    is not counted) on ``csrs`` split over ``processes`` processes sharing one database."""
    import issue_peers as peers

    _ctx(tmp, url).close()  # the hierarchy, made once
    parts = [[str(p) for p in csrs[i::processes]] for i in range(processes)]
    with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn")) as pool:
        results = list(pool.map(_csr_pipeline, [(str(tmp), url, part) for part in parts]))
    count = sum(r[0] for r in results)
    return peers.Rate(count / max(r[1] for r in results), 1000.0 * sum(r[2] for r in results) / count)


def _peers_report(engines: list[tuple[str, str | None]], count: int) -> None:
    """ecert beside openssl ca and django-ca on the same CSRs, one and two processes; prints cert/s and ratios."""
    import issue_peers as peers

    with tempfile.TemporaryDirectory(prefix="ecert-peers-") as tmp:
        work = Path(tmp)
        csrs = peers.make_csrs(work / "csr", count)
        rows: list[tuple[str, list[Any]]] = []
        for name, url in engines:
            rows.append(
                (
                    f"ecert pipeline, lint on, {name}",
                    [_ecert_on_csrs(work / f"ecert-{name}-{n}", _fresh_schema(url, n), csrs, n) for n in (1, 2)],
                )
            )
        rows.append(
            ("django-ca create_cert, no lint, SQLite", [peers.django_ca(work / f"dj{n}", csrs, n) for n in (1, 2)])
        )
        pg_url = engines[-1][1]
        if pg_url is not None:  # the same database as ecert's PostgreSQL row: the issue 11 goal compares these
            rows.append(
                (
                    "django-ca create_cert, no lint, PostgreSQL",
                    [peers.django_ca(work / f"djpg{n}", csrs, n, pg_url) for n in (1, 2)],
                )
            )
        rows.append(("openssl ca -batch, per call", [peers.openssl_per_call(work / f"op{n}", csrs, n) for n in (1, 2)]))
        rows.append(("openssl ca -batch -infiles", [peers.openssl_batched(work / f"ob{n}", csrs, n) for n in (1, 2)]))
    print(f"\nSame {count} P-256 CSRs: cert/s and CPU ms per certificate (all its processes), 1 process / 2 processes:")
    for label, (one, two) in rows:
        print(f"  {label:<42} {_fmt(one):>16} {_fmt(two):>16}")
    ecert_pg = rows[len(engines) - 1][1]
    print(f"  ratios, ecert ({engines[-1][0]}) / peer: cert/s (higher is better), CPU per cert (lower is better)")
    for label, (one, two) in rows[len(engines) :]:
        print(f"    / {label:<40} {_ratio(ecert_pg[0], one):>16} {_ratio(ecert_pg[1], two):>16}")


def _fmt(value: Any) -> str:
    return "n/a" if value is None else f"{value.per_second:6.1f}/s {value.cpu_ms:5.2f}ms"


def _ratio(ours: Any, theirs: Any) -> str:
    if not ours or not theirs:
        return "n/a"
    return f"{ours.per_second / theirs.per_second:5.2f} {ours.cpu_ms / theirs.cpu_ms:5.2f}x"


_SCHEMAS: list[str] = []


def _fresh_schema(url: str | None, tag: int) -> str | None:
    """A new PostgreSQL schema per run (dropped at the end), so each run starts from an empty database."""
    if url is None:
        return None
    schema = f"bench_peers_{uuid.uuid4().hex[:8]}_{tag}"
    base = db.normalize_url(url)
    admin = db.make_engine(base.difference_update_query(["options"]), poolclass=NullPool)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    admin.dispose()
    _SCHEMAS.append(schema)
    return base.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)


if __name__ == "__main__":
    main()
