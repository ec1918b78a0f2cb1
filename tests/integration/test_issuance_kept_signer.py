"""The pipeline keeps its issuing CA's signer per process; what changes in the database still wins at once.

A rollover made by another process, and a key blocked after the signer was kept, are seen by the very
next issuance (the reservation transaction checks both in one round trip), on SQLite and PostgreSQL.
"""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import func, select

from ecert.core.errors import PolicyViolation
from ecert.core.keys import spki_sha256
from ecert.core.profiles import CertType, SubjectData
from ecert.services import issuance
from ecert.services.ca_config import load_hierarchy_config
from ecert.services.ceremony import rollover
from ecert.services.context import Context
from ecert.store import db as store_db
from ecert.store.models import BlockedKey, Certificate, IssuanceRecord


def _issue(ctx: Context, key: ec.EllipticCurvePublicKey | None = None) -> Certificate:
    public_key = key or ec.generate_private_key(ec.SECP256R1()).public_key()
    request = issuance.IssueRequest(
        cert_type=CertType.SERVER,
        names=("www.example.com",),
        subject=SubjectData("Example Limited"),
        public_key=public_key,
    )
    return issuance.issue(ctx, request)


def _other_process(ctx: Context) -> Context:
    engine = store_db.make_engine(ctx.settings.effective_database_url)
    return Context(
        settings=ctx.settings,
        engine=engine,
        sessions=store_db.session_factory(engine),
        readers=store_db.read_only_session_factory(engine),
        keys_factory=ctx.keys_factory,
    )


def _issuer_cn(row: Certificate) -> str:
    assert row.der is not None
    return x509.load_der_x509_certificate(row.der).issuer.rfc4514_string()


def test_a_rollover_in_another_process_is_used_by_the_next_issuance(any_db_ctx: Context) -> None:
    first = _issue(any_db_ctx)  # the signer of the first OV CA is now kept by this process
    other = _other_process(any_db_ctx)
    try:
        new, old = rollover(other, load_hierarchy_config(None), "ov")
    finally:
        other.close()
    second = _issue(any_db_ctx)
    assert [o.id for o in old] == [first.ca_id]
    assert second.ca_id == new.id != first.ca_id
    assert "SSL CA 2" in _issuer_cn(second) and "SSL CA 2" not in _issuer_cn(first)


def test_a_key_blocked_after_the_signer_was_kept_gets_nothing_durable(any_db_ctx: Context) -> None:
    _issue(any_db_ctx)
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    with any_db_ctx.transaction() as s:
        s.add(
            BlockedKey(
                spki_sha256=spki_sha256(key), reason="keyCompromise", source="test", created_at=any_db_ctx.clock()
            )
        )
    with any_db_ctx.read() as s:
        before = (
            s.scalar(select(func.count()).select_from(Certificate)),
            s.scalar(select(func.count()).select_from(IssuanceRecord)),
        )
    with pytest.raises(PolicyViolation, match="blocked") as refused:
        _issue(any_db_ctx, key)
    assert refused.value.rule == "BR 6.1.1.3"
    with any_db_ctx.read() as s:
        after = (
            s.scalar(select(func.count()).select_from(Certificate)),
            s.scalar(select(func.count()).select_from(IssuanceRecord)),
        )
    assert after == before  # refused before the durable record: no row, no reservation, no signature
