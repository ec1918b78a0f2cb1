"""The REST API (``/api/v1``): the subscriber's flow end to end, the public search, the operator's applications.

Bearer tokens, not cookies, so CSRF does not apply; every error is an RFC 9457 problem (web/problems.py).
"""

from __future__ import annotations

from ..routing import PrefixRouter
from . import (
    application,
    certificate,
    csr,
    dcv,
    operator,
    operator_acme,
    operator_audit,
    operator_issue,
    public,
    sessions,
)

__all__ = ["router"]

router = PrefixRouter(prefix="/api/v1")
for _part in (
    sessions,
    application,
    dcv,
    csr,
    certificate,
    public,
    operator,
    operator_issue,
    operator_acme,
    operator_audit,
):
    router.include_router(_part.router)
