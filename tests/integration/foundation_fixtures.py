"""A CA context on each database engine, with the demo hierarchy made, for foundation tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ecert.services.ca_config import load_hierarchy_config
from ecert.services.ceremony import init_hierarchy
from ecert.services.context import Context, build_context
from ecert.settings import load_settings

PASSPHRASE_ENV = {"ECERT_KEY_PASSPHRASE": "foundation-test-passphrase"}
BASE_URL = "http://pki.ecert-demo.hk"


def make_ctx(tmp_path: Path, db_url: str | None = None, **overrides: object) -> Context:
    settings = load_settings(
        **{"data_dir": tmp_path / "data", "database_url": db_url, "base_url": BASE_URL, **overrides}
    )
    return build_context(settings, PASSPHRASE_ENV)


@pytest.fixture
def any_db_ctx(tmp_path: Path, db_url: str) -> Iterator[Context]:
    """A demo hierarchy on SQLite and on PostgreSQL in turn."""
    ctx = make_ctx(tmp_path, db_url)
    init_hierarchy(ctx, load_hierarchy_config(None), demo=True)
    try:
        yield ctx
    finally:
        ctx.close()


@pytest.fixture
def sqlite_ctx(tmp_path: Path) -> Iterator[Context]:
    ctx = make_ctx(tmp_path)
    init_hierarchy(ctx, load_hierarchy_config(None), demo=True)
    try:
        yield ctx
    finally:
        ctx.close()


def application_in_state(ctx: Context, state: str, *, reference: str = "A00000001") -> int:
    """An OV application for www.example.com put straight into ``state`` (returns its id): for tests of what
    comes after (issuance, revocation, OCSP), not of how an application gets there."""
    from tests.rows import new_application

    with ctx.transaction() as session:
        row = new_application(
            session, now=ctx.clock(), reference_number=reference, state=state, server_name="www.example.com"
        )
        return row.id
