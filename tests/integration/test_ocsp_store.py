"""The dedicated responder's in-memory store: what one poll of ``ocsp_responses`` picks up, and what it leaves.

A poll reads rows signed after (the previous poll's start - SLACK), so a response signed before that
poll began but committed after it is still read; older rows wait for the full reload.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509 import ocsp
from sqlalchemy import select, update

from ecert.services import publication, revocation
from ecert.services.ca_config import load_hierarchy_config
from ecert.services.ceremony import init_hierarchy
from ecert.services.context import Context
from ecert.signer.status import issuer_hashes
from ecert.store.models import CA, OcspResponse
from ecert.web.ocsp_rules import CertKey
from ecert.web.ocsp_server import SLACK, Answer, ResponseStore

from .foundation_fixtures import make_ctx
from .test_revocation import ca_label, issue_leaf


@pytest.fixture
def ctx(tmp_path: Path) -> Iterator[Context]:
    """A demo hierarchy on SQLite."""
    made = make_ctx(tmp_path)
    init_hierarchy(made, load_hierarchy_config(None), demo=True)
    try:
        yield made
    finally:
        made.close()


def _key(ctx: Context, serial_hex: str) -> CertKey:
    with ctx.transaction() as s:
        issuer = x509.load_der_x509_certificate(s.scalar(select(CA.cert_der).where(CA.role == "ov")))
    name_hash, key_hash = issuer_hashes(issuer, hashes.SHA1())
    return CertKey("sha1", name_hash, key_hash, int(serial_hex, 16))


def _loaded(store: ResponseStore, key: CertKey) -> Answer:
    answer = store.stored(key)
    assert answer is not None, "response not in memory"
    return answer


def test_a_revocation_replaces_the_answer_at_the_next_poll(ctx: Context) -> None:
    row, _ = issue_leaf(ctx)
    publication.refresh_ocsp(ctx, ca_label(ctx, row))
    store = ResponseStore(ctx)
    store.refresh(full=True)
    key = _key(ctx, row.serial_hex)
    before = _loaded(store, key)
    assert ocsp.load_der_ocsp_response(before.der).certificate_status is ocsp.OCSPCertStatus.GOOD

    revocation.revoke_certificate(ctx, ca_label=None, serial_hex=row.serial_hex, reason="superseded", actor="t")
    assert store.refresh() == 1  # incremental: only the changed row is read
    after = _loaded(store, key)
    assert ocsp.load_der_ocsp_response(after.der).certificate_status is ocsp.OCSPCertStatus.REVOKED
    assert before.stale, "the GET cache could still serve the old answer"


@pytest.mark.parametrize(
    ("signed_before_poll", "seen_by_next_poll"),
    [
        (SLACK / 2, True),  # committed late, within SLACK: the next poll reads it
        (SLACK * 2, False),  # beyond SLACK: only the full reload reads it
    ],
)
def test_a_row_committed_after_a_poll_began(
    ctx: Context, signed_before_poll: timedelta, seen_by_next_poll: bool
) -> None:
    row, _ = issue_leaf(ctx)
    label = ca_label(ctx, row)
    publication.refresh_ocsp(ctx, label)
    store = ResponseStore(ctx)
    poll_start = ctx.clock()
    store.refresh(full=True)
    key = _key(ctx, row.serial_hex)
    # A re-signed response whose thisUpdate predates the poll that missed it (a long transaction).
    publication.refresh_ocsp(ctx, label, force=True)
    with ctx.transaction() as s:
        s.execute(
            update(OcspResponse)
            .where(OcspResponse.serial_hex == row.serial_hex)
            .values(this_update=poll_start - signed_before_poll)
        )
        etag = s.scalar(select(OcspResponse.etag).where(OcspResponse.serial_hex == row.serial_hex))

    store.refresh()
    assert (_loaded(store, key).etag_q == f'"{etag}"'.encode()) is seen_by_next_poll
    store.refresh(full=True)
    assert _loaded(store, key).etag_q == f'"{etag}"'.encode()
