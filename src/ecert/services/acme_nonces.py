"""ACME Replay-Nonces (RFC 8555 6.5): handed out on every response, each good for one request until it expires.

They are kept where every ``ecert-ca serve`` process of the CA can see them: the database by default, Redis
when ``ECERT_REDIS_URL`` is set, so a client may take a nonce from one process and use it on another.
"""

from __future__ import annotations

import secrets

from ..core.acme_rules import NONCE_LIFETIME
from ..store import acme as store
from .context import Context

__all__ = ["new_nonce", "use_nonce"]


def _redis(ctx: Context) -> store.RedisNonces | None:
    """The Redis nonce store, connected on first use and kept in the process memo (None: nonces are in the database)."""
    url = ctx.settings.redis_url
    if not url:
        return None
    if ctx.memo.redis is None:
        import redis  # only processes configured for Redis load the client

        ctx.memo.redis = redis.Redis.from_url(url, socket_timeout=5)
    return store.RedisNonces(ctx.memo.redis)


def new_nonce(ctx: Context) -> str:
    """A fresh nonce (128 random bits, base64url as RFC 8555 6.5.1 asks), stored before it is handed out."""
    value = secrets.token_urlsafe(16)
    now = ctx.clock()
    redis_nonces = _redis(ctx)
    if redis_nonces is not None:
        redis_nonces.add(value, expires_at=now + NONCE_LIFETIME, now=now)
        return value
    with ctx.transaction() as session:
        store.add_nonce(session, value, expires_at=now + NONCE_LIFETIME)
        if value.startswith("A"):  # about one call in 64 sweeps expired nonces, a bounded batch at a time
            store.purge_expired_nonces(session, now=now)
    return value


def use_nonce(ctx: Context, value: str) -> bool:
    """Consume ``value``: True exactly once per nonce handed out, and only while it is live."""
    now = ctx.clock()
    redis_nonces = _redis(ctx)
    if redis_nonces is not None:
        return redis_nonces.take(value, now=now)
    with ctx.transaction() as session:
        return store.take_nonce(session, value, now=now)
