"""ACME rate limits (issue 13 point 8): new accounts per address, new orders per account, failed validations
per name per account, certificates per application per week.

Counters are kept where every ``ecert-ca serve`` process sees them, as nonces are: the database by default,
Redis when ``ECERT_REDIS_URL`` is set. A spent unit is never given back: a refused or failed request still
counted, which is what a limit against floods wants.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from ..core.acme_limits import Limit, LimitName, RateLimitRefusal, refuse, window_start
from ..settings import Settings
from ..store import acme_limits as store
from .context import Context
from .refusals import record_refusal

__all__ = [
    "configured",
    "check_failed_validations",
    "record_failed_validation",
    "spend",
    "spend_certificate",
    "spend_new_account",
    "spend_new_order",
]


def configured(settings: Settings, name: LimitName) -> Limit:
    """The limit as the operator configured it (settings.acme_*)."""
    table = {
        LimitName.NEW_ACCOUNTS_PER_IP: (settings.acme_new_accounts_per_ip, settings.acme_new_accounts_window_seconds),
        LimitName.NEW_ORDERS_PER_ACCOUNT: (
            settings.acme_new_orders_per_account,
            settings.acme_new_orders_window_seconds,
        ),
        LimitName.FAILED_VALIDATIONS_PER_NAME: (
            settings.acme_failed_validations_per_name,
            settings.acme_failed_validations_window_seconds,
        ),
        LimitName.CERTIFICATES_PER_APPLICATION: (settings.acme_certificates_per_application_week, 7 * 24 * 3600),
    }
    count, seconds = table[name]
    return Limit(name, count, timedelta(seconds=seconds))


def _redis(ctx: Context) -> store.RedisCounters | None:
    """The Redis counters, on the process's one Redis connection (the nonces use it too); None: the database."""
    url = ctx.settings.redis_url
    if not url:
        return None
    if ctx.memo.redis is None:
        import redis  # only processes configured for Redis load the client

        ctx.memo.redis = redis.Redis.from_url(url, socket_timeout=5)
    return store.RedisCounters(ctx.memo.redis, ctx.settings.redis_namespace)


def _spent(ctx: Context, limit: Limit, key: str, now: datetime) -> bool:
    start = window_start(limit, now)
    counters = _redis(ctx)
    if counters is not None:
        ttl = int((start + limit.window - now).total_seconds()) + 1
        return counters.spend(limit.name.value, key, window_start=start, ttl=ttl, limit=limit.count)
    with ctx.transaction() as session:
        if secrets.randbelow(64) == 0:  # about one call in 64 sweeps counters of windows that ended
            store.purge_expired_counts(session, now=now)
        return store.spend_count(
            session, limit.name.value, key, window_start=start, expires_at=start + limit.window, limit=limit.count
        )


def _refused(ctx: Context, limit: Limit, key: str, now: datetime, actor: str) -> RateLimitRefusal:
    refusal = refuse(limit, key, now)
    record_refusal(
        ctx,
        event="acme.rate_limited",
        actor=actor,
        subject=key,
        details={"limit": limit.name.value, "count": limit.count, "retry_after": refusal.retry_after},
    )
    refusal.audited = True  # the edge does not log it again
    return refusal


def spend(ctx: Context, name: LimitName, key: str, *, actor: str) -> None:
    """Spend one unit of ``name`` for ``key``, or raise ``rateLimited`` with Retry-After (and audit it)."""
    limit = configured(ctx.settings, name)
    if limit.count == 0:
        return
    now = ctx.clock()
    if not _spent(ctx, limit, key, now):
        raise _refused(ctx, limit, key, now, actor)


def spend_new_account(ctx: Context, client: str) -> None:
    """newAccount (RFC 8555 7.3): one per call from ``client``'s address, counted before anything is made."""
    spend(ctx, LimitName.NEW_ACCOUNTS_PER_IP, client, actor=f"acme:{client}")


def spend_new_order(ctx: Context, account_id: int) -> None:
    """newOrder (RFC 8555 7.4): one per order the account asks for."""
    spend(ctx, LimitName.NEW_ORDERS_PER_ACCOUNT, str(account_id), actor=f"acme:account:{account_id}")


def spend_certificate(ctx: Context, application_id: int) -> None:
    """finalize (RFC 8555 7.4): one per certificate issued for the application in a week."""
    spend(ctx, LimitName.CERTIFICATES_PER_APPLICATION, str(application_id), actor=f"application:{application_id}")


def _name_key(account_id: int, name: str) -> str:
    return f"{account_id}:{name.lower().removeprefix('*.')}"


def record_failed_validation(ctx: Context, account_id: int, name: str) -> None:
    """Count a challenge that failed for ``name`` (call it when an authorization turns invalid)."""
    limit = configured(ctx.settings, LimitName.FAILED_VALIDATIONS_PER_NAME)
    now = ctx.clock()
    start = window_start(limit, now)
    key = _name_key(account_id, name)
    counters = _redis(ctx)
    if counters is not None:
        ttl = int((start + limit.window - now).total_seconds()) + 1
        counters.add(limit.name.value, key, window_start=start, ttl=ttl)
        return
    with ctx.transaction() as session:
        store.add_to_count(session, limit.name.value, key, window_start=start, expires_at=start + limit.window)


def check_failed_validations(ctx: Context, account_id: int, names: tuple[str, ...] | list[str]) -> None:
    """Refuse a new order or challenge for a name that failed validation too often lately (rateLimited)."""
    limit = configured(ctx.settings, LimitName.FAILED_VALIDATIONS_PER_NAME)
    if limit.count == 0:
        return
    now = ctx.clock()
    start = window_start(limit, now)
    counters = _redis(ctx)
    for name in names:
        key = _name_key(account_id, name)
        if counters is not None:
            found = counters.count(limit.name.value, key, window_start=start)
        else:
            with ctx.read() as session:
                found = store.count_in_window(session, limit.name.value, key, window_start=start)
        if found >= limit.count:
            raise _refused(ctx, limit, key, now, f"acme:account:{account_id}")
