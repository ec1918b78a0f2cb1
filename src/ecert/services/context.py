"""The running CA's handles: settings, database, key backend and clock, built once and passed down."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from ..settings import Settings
from ..signer.keystore import KeyBackend, backend_from_settings
from ..store import db

if TYPE_CHECKING:
    from argon2 import PasswordHasher
    from cryptography import x509

    from ..signer.issuer import Issuer
    from ..transparency import CtSubmitter

if TYPE_CHECKING:
    from ..validation.protocol import DomainValidator

__all__ = ["Context", "ProcessMemo", "build_context", "utcnow"]


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class ProcessMemo:
    """Per-process memory that outlives a request: loaded keys and certificates, pre-hashed values, and
    the web layer's OCSP answers (cleared by ``publication.invalidate_ocsp_cache`` on a status change)."""

    password_hasher: PasswordHasher | None = None
    pin_dummy_hash: str | None = None
    ocsp_answers: OrderedDict[Any, Any] = field(default_factory=OrderedDict)
    ocsp_responders: dict[int, tuple[x509.Certificate, Any]] = field(default_factory=dict)
    crl_etags: dict[int, str] = field(default_factory=dict)
    ca_der: dict[str, bytes] = field(default_factory=dict)  # CA certificates by label, served when the DB is down
    ocsp_responder: Any = None  # the web layer's OcspResponder (services never look inside)
    redis: Any = None  # a redis.Redis client when ECERT_REDIS_URL is set
    acme_nonce_key: bytes | None = None  # derived from the ACME secret on first use
    refusal_counts: dict[tuple[str, str], tuple[datetime, int, int]] = field(default_factory=dict)  # refusals.py
    refusal_lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class Context:
    """What a command or a web request needs to act: nothing here is created at import time."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]  # writes: services/ opens transactions with these (BEGIN IMMEDIATE on SQLite)
    readers: sessionmaker[Session]  # reads: on SQLite they neither wait for nor block the writer
    keys_factory: Callable[[], KeyBackend]
    clock: Callable[[], datetime] = utcnow
    perspective_secret: str | None = field(default=None, repr=False)  # HMAC key for remote perspectives
    acme_secret: str | None = field(default=None, repr=False)  # wraps EAB keys and seals ACME nonces
    _keys: KeyBackend | None = field(default=None, repr=False)
    validator: DomainValidator | None = field(default=None, repr=False)  # built on first use: enrolment.validator_for
    # What a process keeps between requests, each slot typed (no string-keyed locator).
    memo: ProcessMemo = field(default_factory=lambda: ProcessMemo(), repr=False)
    # One signer per issuing CA, loaded once per process (the key is read from its backend once).
    issuers: dict[str, Issuer] = field(default_factory=dict, repr=False)
    # Certificate Transparency submission (RFC 6962); None when CT is off (the demo): issuance is then unchanged.
    ct: CtSubmitter | None = field(default=None, repr=False)

    @property
    def keys(self) -> KeyBackend:
        """The key backend, opened on first use: read-only commands never need the passphrase."""
        if self._keys is None:
            self._keys = self.keys_factory()
        return self._keys

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only unit of work: nothing is committed; SQLite readers run beside the writer (WAL)."""
        with self.readers() as session:
            yield session

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One unit of work: commits on success, rolls back on any error (services only)."""
        with self.sessions.begin() as session:
            yield session

    def close(self) -> None:
        if self._keys is not None:
            self._keys.close()
        if self.ct is not None:
            self.ct.close()
        self.engine.dispose()


def build_context(
    settings: Settings, env: Mapping[str, str], *, migrate: bool = True, clock: Callable[[], datetime] = utcnow
) -> Context:
    """Open the database (migrating it to head unless told not to) and prepare the key backend."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = db.make_engine(settings.effective_database_url)
    if migrate:
        db.upgrade(engine)
    env_copy = dict(env)
    return Context(
        settings=settings,
        engine=engine,
        sessions=db.session_factory(engine),
        readers=db.read_only_session_factory(engine),
        keys_factory=lambda: backend_from_settings(settings, env_copy),
        clock=clock,
        perspective_secret=env.get(settings.perspective_secret_env) or None,
        acme_secret=env.get(settings.acme_eab_secret_env) or None,
        ct=_ct_submitter(settings),
    )


def _ct_submitter(settings: Settings) -> CtSubmitter | None:
    """The CT submitter, its HTTP client imported only when CT is on: every CLI command builds a context, and
    the import alone was a tenth of ``ecert-ca ca list``'s start-up."""
    if not settings.ct_enabled:
        return None
    from ..transparency import submitter_from_settings

    return submitter_from_settings(settings)
