"""Each log's last answer and running counts (`ecert-ca ct logs`), kept by one upsert per issuance on both engines.

The store writes them without reading first (issue 12's bench: reading each log's row in the transaction that
stores the certificate cost round trips on PostgreSQL), so the counts must still add up across issuances.
"""

from __future__ import annotations

from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric import ec

from ecert.core.profiles import CertType, SubjectData
from ecert.services import issuance
from ecert.services import transparency as ct_service
from ecert.services.context import Context
from tests.ct_log.server import Faults, TestLog

StartLog = Callable[..., TestLog]


def _issue(ctx: Context) -> None:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    issuance.issue(
        ctx,
        issuance.IssueRequest(
            cert_type=CertType.SERVER,
            names=("www.example.com",),
            subject=SubjectData("Example Limited"),
            public_key=key,
            requested_days=90,
        ),
    )


def test_each_logs_counts_add_up_over_issuances(ct_ctx: Callable[..., Context], ct_logs: StartLog, db_url: str) -> None:
    logs = [ct_logs("a1", "A"), ct_logs("b1", "B", Faults(status=500)), ct_logs("b2", "B")]
    ctx = ct_ctx(logs, database_url=db_url, ct_attempts=1)
    for _ in range(3):
        _issue(ctx)
    shown = {log.name: log for log in ct_service.log_overview(ctx).logs}
    assert (shown["a1"].submissions, shown["a1"].failures, shown["a1"].last_ok) == (3, 0, True)
    assert (shown["b1"].submissions, shown["b1"].failures, shown["b1"].last_ok) == (3, 3, False)
    assert "HTTP 500" in (shown["b1"].last_error or "")
    assert (shown["b2"].submissions, shown["b2"].failures, shown["b2"].last_error) == (3, 0, None)
    assert shown["b2"].last_at is not None and shown["b2"].last_ms is not None
