"""Full-service CRL figure: ``publish_crl`` time and peak memory with N revoked rows in PostgreSQL.

Rows are inserted in bulk (INSERT ... SELECT generate_series) into a throwaway schema, then one
``publish_crl`` streams them (yield_per), signs and stores the CRL. bench/crl.py measures the signer alone.

    .venv/bin/python bench/crl_service.py [--rows 100000] [--pg postgresql+psycopg://postgres@127.0.0.1/test]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import tracemalloc
import uuid
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.pool import NullPool

PASSPHRASE = {"ECERT_KEY_PASSPHRASE": "bench-passphrase"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()

    from ecert.services import publication
    from ecert.services.ca_config import load_hierarchy_config
    from ecert.services.ceremony import init_hierarchy
    from ecert.services.context import build_context
    from ecert.settings import load_settings
    from ecert.store import db

    schema = f"ecert_bench_{uuid.uuid4().hex[:8]}"
    admin = db.make_engine(args.pg, poolclass=NullPool)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = db.normalize_url(args.pg).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        with tempfile.TemporaryDirectory(prefix="ecert-bench-crl-") as tmp:
            settings = load_settings(
                data_dir=Path(tmp),
                database_url=url.render_as_string(hide_password=False),
                base_url="http://pki.ecert-demo.hk",
            )
            ctx = build_context(settings, PASSPHRASE)
            try:
                init_hierarchy(ctx, load_hierarchy_config(None), demo=True)
                label = publication.issuing_cas(ctx)[0]
                start = time.perf_counter()
                with ctx.transaction() as s:
                    ca_id = s.execute(text("SELECT id FROM cas WHERE label = :l"), {"l": label}).scalar_one()
                    s.execute(
                        text("""
                        INSERT INTO certificates (ca_id, serial_hex, der, not_before, not_after, names, spki_sha256,
                            profile, status, revoked_at, revocation_reason, created_at, updated_at)
                        SELECT :ca, to_hex(1000000000000 + g), '\\x00'::bytea, now() - interval '30 days',
                            now() + interval '300 days', '[]'::jsonb, md5(g::text), 'server', 'revoked',
                            now() - interval '1 day' + (g % 3600) * interval '1 second',
                            (ARRAY['keyCompromise', 'superseded', 'cessationOfOperation', NULL])[1 + g % 4],
                            now() - interval '30 days', now() - interval '1 day'
                        FROM generate_series(1, :n) AS g"""),
                        {"ca": ca_id, "n": args.rows},
                    )
                    s.execute(text("ANALYZE certificates"))
                insert_s = time.perf_counter() - start
                publication.publish_crl(ctx, label)  # warm: key loading, imports, plans
                start = time.perf_counter()
                row = publication.publish_crl(ctx, label)
                elapsed = time.perf_counter() - start
                tracemalloc.start()  # a second run for memory: tracing slows the first one's clock
                traced_start = time.perf_counter()
                publication.publish_crl(ctx, label)
                traced = time.perf_counter() - traced_start
                _current, peak = tracemalloc.get_traced_memory()
                tracemalloc.stop()
                assert row is not None
            finally:
                ctx.close()
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()
    print(f"publish_crl on PostgreSQL with {args.rows} revoked rows (bulk insert took {insert_s:.1f} s)")
    print(f"  time        : {elapsed:8.2f} s ({traced:.2f} s under tracemalloc)")
    print(f"  peak Python : {peak / 2**20:8.1f} MiB (tracemalloc)")
    print(f"  CRL size    : {len(row.der) / 2**20:8.1f} MiB, number {row.number}")


if __name__ == "__main__":
    main()
