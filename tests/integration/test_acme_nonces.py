"""Replay-Nonces across processes: in the database (SQLite, PostgreSQL) by default, in Redis when configured.

A nonce handed out by one ``ecert-ca serve`` instance is good on another sharing the store, once, and not
after it expired; sixteen threads racing for one nonce see exactly one success.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from ecert.services import acme_nonces
from ecert.services.context import Context
from ecert.store.models_acme import AcmeNonce
from tests.integration.acme_fixtures import Client, Clock, new_eab, serve
from tests.integration.foundation_fixtures import make_ctx

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture(params=["database", "redis"])
def two_instances(
    request: pytest.FixtureRequest, tmp_path: Path, db_url: str, clock: Clock
) -> Iterator[tuple[Context, Context]]:
    """Two app instances (own contexts, own engines) sharing one database, and Redis when the param says so."""
    # A namespace of its own: counts and used nonces of earlier runs on this Redis must not leak in.
    overrides: dict[str, object] = {}
    if request.param == "redis":
        overrides = {"redis_url": REDIS_URL, "redis_namespace": f"ecert-test:{uuid.uuid4().hex}:"}
    first = make_ctx(tmp_path / "one", db_url, **overrides)
    second = make_ctx(tmp_path / "two", db_url, **overrides)  # the same SQLite file or PostgreSQL schema
    first.clock = second.clock = clock
    first.acme_secret = second.acme_secret = "acme-test-wrapping-secret"  # every process of one CA shares it
    try:
        yield first, second
    finally:
        first.close()
        second.close()


def _stored(ctx: Context) -> int:
    with ctx.read() as session:
        return int(session.scalar(select(func.count()).select_from(AcmeNonce)) or 0)


def test_a_nonce_from_one_instance_is_good_once_on_another(two_instances: tuple[Context, Context]) -> None:
    one, two = two_instances
    nonce = acme_nonces.new_nonce(one)
    assert acme_nonces.use_nonce(two, nonce) is True
    assert acme_nonces.use_nonce(one, nonce) is False
    assert acme_nonces.use_nonce(two, nonce) is False
    acme_nonces.new_nonce(two)
    # Handing a nonce out writes nothing; the one used is recorded (in Redis, or as a database row).
    assert _stored(one) == (0 if one.settings.redis_url else 1)


def test_a_nonce_this_ca_did_not_seal_is_refused(two_instances: tuple[Context, Context]) -> None:
    one, two = two_instances
    nonce = acme_nonces.new_nonce(one)
    forged = nonce[:-2] + ("AA" if not nonce.endswith("AA") else "BB")
    assert acme_nonces.use_nonce(two, forged) is False
    assert acme_nonces.use_nonce(two, "not-a-nonce") is False
    other = acme_nonces.new_nonce(one)
    two.acme_secret, two.memo.acme_nonce_key = "another CA's secret", None
    assert acme_nonces.use_nonce(two, other) is False
    assert _stored(one) == 0


def test_a_nonce_expires(two_instances: tuple[Context, Context], clock: Clock) -> None:
    one, two = two_instances
    nonce = acme_nonces.new_nonce(one)
    clock.advance(timedelta(hours=1))  # core.acme_rules.NONCE_LIFETIME
    assert acme_nonces.use_nonce(two, nonce) is False


def test_racing_uses_of_one_nonce_succeed_once(two_instances: tuple[Context, Context]) -> None:
    one, two = two_instances
    nonce = acme_nonces.new_nonce(one)
    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(lambda i: acme_nonces.use_nonce(one if i % 2 else two, nonce), range(16)))
    assert results.count(True) == 1


def test_http_nonce_from_one_server_used_on_another(two_instances: tuple[Context, Context]) -> None:
    """Over HTTP: a client takes its nonce from server A and registers on server B (shared store)."""
    one, two = two_instances
    server_a, server_b = serve(one), serve(two)
    try:
        client_b = Client(server_b.url)
        nonce_from_a = Client(server_a.url).nonce()
        url = client_b.url("new-account")
        response = client_b.post(url, client_b.jws(url, client_b.new_account_body(new_eab(two)), nonce=nonce_from_a))
        assert response.status_code == 201, response.text
        replay = client_b.post(url, client_b.jws(url, {"onlyReturnExisting": True}, nonce=nonce_from_a))
        assert replay.json()["type"] == "urn:ietf:params:acme:error:badNonce"
    finally:
        server_a.stop()
        server_b.stop()


def test_an_audit_event_in_a_lone_write_is_refused_not_dropped(tmp_path: Path, db_url: str) -> None:
    """lone_write skips the transaction on PostgreSQL, and audit rows are written at COMMIT: an event appended
    there would vanish, so it fails loudly instead (and on SQLite, where it is a transaction, it is kept)."""
    from ecert.services import process_cache
    from ecert.store import audit
    from ecert.store.models import AuditEvent

    ctx = make_ctx(tmp_path, db_url)
    try:

        def append_in_lone_write() -> None:
            with process_cache.lone_write(ctx) as session:
                audit.append(session, actor="test", event="test.event", subject=None, details={}, now=ctx.clock())

        if ctx.engine.dialect.name == "postgresql":
            with pytest.raises(RuntimeError, match="needs a transaction"):
                append_in_lone_write()
        else:
            append_in_lone_write()
        with ctx.read() as session:
            kept = session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.event == "test.event"))
        assert kept == (0 if ctx.engine.dialect.name == "postgresql" else 1)
    finally:
        ctx.close()
