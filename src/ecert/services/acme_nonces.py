"""ACME Replay-Nonces (RFC 8555 6.5): handed out on every response, each good for one request until it expires.

A nonce is sealed, not stored: 8 bytes of issue time, 16 random bytes and a 16-byte HMAC under a key derived
from the operator's ACME secret (the one that wraps EAB keys, named by ECERT_ACME_EAB_SECRET_ENV), so handing
one out writes nothing (no GET changes state, issue 10 point 4) and every ``ecert-ca serve`` process or host
holding the same secret accepts it. Using a nonce records it as used, where every process sees it: the
database by default, Redis when ``ECERT_REDIS_URL`` is set; the first use wins, a replay finds the record.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy.exc import IntegrityError

from ..core.acme_rules import NONCE_LIFETIME
from ..core.errors import ConfigError
from ..store import acme as store
from . import process_cache
from .context import Context

__all__ = ["new_nonce", "use_nonce"]

_TIME, _RANDOM, _MAC = 8, 16, 16
# One use in 64 sweeps expired records (a bounded batch), so the table stays small without a job. (It used
# to test the nonce's first character, which is the issue time's high byte: always "A", a sweep every use.)
_PURGE_ONE_IN = 64
_SKEW = timedelta(minutes=5)  # processes' clocks may differ a little: a nonce "from the future" by more is forged


def _key(ctx: Context) -> bytes:
    """The sealing key, derived once per process from the operator's ACME secret."""
    if ctx.memo.acme_nonce_key is None:
        secret = ctx.acme_secret
        if not secret:
            raise ConfigError(
                "no ACME secret: set ECERT_ACME_EAB_SECRET (or the variable ECERT_ACME_EAB_SECRET_ENV names)",
                rule="RFC 8555 6.5",
            )
        ctx.memo.acme_nonce_key = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"ecert acme nonce v1"
        ).derive(secret.encode())
    return ctx.memo.acme_nonce_key


def _redis(ctx: Context) -> store.RedisNonces | None:
    """The Redis record of used nonces, connected on first use (None: they are recorded in the database)."""
    url = ctx.settings.redis_url
    if not url:
        return None
    if ctx.memo.redis is None:
        import redis  # only processes configured for Redis load the client

        ctx.memo.redis = redis.Redis.from_url(url, socket_timeout=5)
    return store.RedisNonces(ctx.memo.redis, ctx.settings.redis_namespace)


def _mac(key: bytes, body: bytes) -> bytes:
    return hmac.new(key, body, hashlib.sha256).digest()[:_MAC]


def new_nonce(ctx: Context) -> str:
    """A fresh nonce (128 random bits, base64url as RFC 8555 6.5.1 asks), sealed with its issue time."""
    body = int(ctx.clock().timestamp()).to_bytes(_TIME, "big") + secrets.token_bytes(_RANDOM)
    return base64.urlsafe_b64encode(body + _mac(_key(ctx), body)).rstrip(b"=").decode()


def _expiry(ctx: Context, value: str) -> datetime | None:
    """When ``value`` stops being good, if this CA sealed it and it is still live; else None."""
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        return None
    if len(raw) != _TIME + _RANDOM + _MAC or not hmac.compare_digest(raw[-_MAC:], _mac(_key(ctx), raw[:-_MAC])):
        return None
    issued = datetime.fromtimestamp(int.from_bytes(raw[:_TIME], "big"), UTC)
    now = ctx.clock()
    expires = issued + NONCE_LIFETIME
    return expires if issued <= now + _SKEW and now < expires else None


def use_nonce(ctx: Context, value: str) -> bool:
    """Consume ``value``: True exactly once per nonce this CA sealed, and only while it is live."""
    expires = _expiry(ctx, value)
    if expires is None:
        return False
    now = ctx.clock()
    redis_nonces = _redis(ctx)
    if redis_nonces is not None:
        return redis_nonces.mark_used(value, expires_at=expires, now=now)
    try:
        with process_cache.lone_write(ctx) as session:  # one INSERT, atomic alone: no BEGIN/COMMIT around it
            store.record_used_nonce(session, value, expires_at=expires)
            if secrets.randbelow(_PURGE_ONE_IN) == 0:  # now and then, a sweep of records past their nonce's life
                store.purge_expired_nonces(session, now=now)
    except IntegrityError:
        return False  # used before: a replay
    return True
