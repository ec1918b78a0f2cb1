"""The ACME server (RFC 8555) under /acme/: JWS checks in verify.py, problems in problems.py, resources in routes.py."""

from __future__ import annotations

from . import fallback, keychange, renewal_info, revocation
from .orders import router as _orders
from .routes import router

router.include_router(_orders)  # newOrder, order, authz, challenge, finalize, cert

router.include_router(revocation.router)  # revokeCert, RFC 8555 7.6
router.include_router(keychange.router)  # keyChange, RFC 8555 7.3.5
router.include_router(renewal_info.router)  # renewalInfo, RFC 9773
router.include_router(fallback.router)  # last: a wrong method (405) or no such resource (404), with a nonce

__all__ = ["router"]
