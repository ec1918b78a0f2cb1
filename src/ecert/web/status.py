"""Certificate status over HTTP: CRLs and the ARL, the OCSP responder, and the revocation API.

OCSP (RFC 6960, RFC 5019 profile) is answered by a small ASGI fast path in front of the framework:
pre-signed responses come from memory or storage, so answering costs no signature and no routing.
The FastAPI routes for the same paths exist for the OpenAPI document and as the fallback.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from datetime import datetime
from email.utils import format_datetime
from typing import Any

import anyio
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from ..core.errors import NotFound, RateLimited
from ..core.urls import OCSP_PATH
from ..services import jobs, ocsp_feed, publication, revocation
from ..services.context import Context
from .api.deps import Operator, SessionApp
from .ocsp_rules import ERROR_DER, MAX_REQUEST_BYTES, CertKey, OcspRefused, TokenBucket, parse_request, sign_on_demand
from .ocsp_rules import decode_get as _decode_get
from .problems import DB_ERRORS

__all__ = ["router", "install", "OcspResponder", "OCSP_MEDIA_TYPE", "CRL_MEDIA_TYPE"]

_log = logging.getLogger("ecert.web.status")

OCSP_MEDIA_TYPE = "application/ocsp-response"
OCSP_REQUEST_MEDIA_TYPE = "application/ocsp-request"
CRL_MEDIA_TYPE = "application/pkix-crl"  # RFC 2585 3
CRL_MAX_AGE = 600  # caches may keep a CRL ten minutes: a revocation republishes it at once
ANSWER_TTL = 30.0  # seconds a worker trusts its in-memory answer (other workers' revocations show within it)
ISSUER_TTL = 60.0
CACHE_SIZE = 50_000


class _Answer:
    """One answer ready to send: the DER, its fixed headers, and when it stops being fresh.

    Times are also kept on the monotonic clock so that a cache hit costs no datetime arithmetic.
    """

    __slots__ = ("der", "this_update", "next_update", "etag", "cached_at", "expires_mono", "fixed")

    def __init__(
        self,
        der: bytes,
        this_update: datetime | None = None,
        next_update: datetime | None = None,
        etag: str | None = None,
        *,
        now: datetime | None = None,
    ) -> None:
        self.der = der
        self.this_update, self.next_update, self.etag = this_update, next_update, etag
        self.cached_at = time.monotonic()
        self.expires_mono = self.cached_at + (
            (next_update - now).total_seconds() if next_update is not None and now is not None else 0.0
        )
        length = (b"content-length", str(len(der)).encode())
        if this_update is None or next_update is None:
            self.fixed: tuple[list[tuple[bytes, bytes]], list[tuple[bytes, bytes]]] = (
                [_CT, (b"cache-control", b"no-store"), length],
                [_CT, (b"cache-control", b"no-store"), length],
            )
            return
        get = [
            _CT,
            (b"last-modified", _http_date(this_update).encode()),
            (b"expires", _http_date(next_update).encode()),
            (b"etag", f'"{etag}"'.encode()),
            length,
        ]
        self.fixed = (get, [_CT, (b"cache-control", b"no-store"), length])

    def fresh(self, mono: float) -> bool:
        return mono - self.cached_at <= ANSWER_TTL and mono < self.expires_mono

    def valid(self, mono: float) -> bool:
        """Still before its nextUpdate: servable while storage cannot be asked (RFC 5019 allows any valid copy)."""
        return mono < self.expires_mono

    def headers(self, *, cacheable: bool, mono: float) -> list[tuple[bytes, bytes]]:
        """RFC 5019 6.2: GET answers are cacheable until nextUpdate; POST answers and errors are not."""
        if not cacheable or self.next_update is None:
            return self.fixed[1]
        max_age = max(0, int(self.expires_mono - mono))
        return [*self.fixed[0], (b"cache-control", b"max-age=%d, public, no-transform, must-revalidate" % max_age)]


_CT = (b"content-type", b"application/ocsp-response")


def _http_date(value: datetime) -> str:
    return format_datetime(value, usegmt=True)


class OcspResponder:
    """Answers OCSP requests for one :class:`Context`: memory first, then storage, then (limited) signing."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._answers: OrderedDict[CertKey | str, _Answer] = ctx.memo.ocsp_answers
        self._issuers: dict[tuple[str, bytes, bytes], str] = {}
        self._issuers_at = 0.0
        self._bucket = TokenBucket()

    def _issuer(self, key: tuple[str, bytes, bytes]) -> str | None:
        label = self._issuers.get(key)
        age = time.monotonic() - self._issuers_at
        if (label is None and age > 5.0) or age > ISSUER_TTL:  # a new CA shows within seconds
            self._issuers = publication.issuer_index(self.ctx)
            self._issuers_at = time.monotonic()
            label = self._issuers.get(key)
        return label

    def _cached(self, key: Any) -> _Answer | None:
        found = self._answers.get(key)
        if found is None:
            return None
        mono = time.monotonic()
        if not found.valid(mono):
            self._answers.pop(key, None)
            return None
        return found if found.fresh(mono) else None  # past its TTL: kept as the fallback of an outage

    def fallback(self, key: Any) -> _Answer:
        """What to answer when storage fails: the last answer still inside its validity, else tryLater."""
        found = self._answers.get(key)
        if found is not None and found.valid(time.monotonic()):
            return found
        return _error("tryLater")  # RFC 6960 2.3: the responder cannot answer now

    def cached_get(self, path: str) -> _Answer | None:
        """The fast path: an answer already made for exactly this GET path (no decoding, no parsing)."""
        return self._cached(path)

    def stale_get(self, path: str) -> _Answer | None:
        """The answer last made for this GET path if still valid (used only when a fresh one failed)."""
        found = self._answers.get(path)
        return found if found is not None and found.valid(time.monotonic()) else None

    def remember_get(self, path: str, answer: _Answer) -> None:
        if answer.next_update is not None:
            self._answers[path] = answer

    async def answer(self, request_der: bytes | None) -> _Answer:
        """The response for one DER request; errors become unsigned OCSP errors (RFC 6960 2.3)."""
        try:
            key = parse_request(request_der)  # the shared rules (web/ocsp_rules.py)
            found = self._cached(key)
            if found is not None:
                return found
            label = await anyio.to_thread.run_sync(self._issuer, key.issuer)
            if label is None:
                raise OcspRefused("unauthorized")  # RFC 6960 2.3: not an issuer we answer for
            # sign_ocsp_now reads storage first; only a miss signs, and misses are rate-limited.
            signed = await anyio.to_thread.run_sync(sign_on_demand, self.ctx, label, key, self._bucket.take)
        except OcspRefused as refused:
            # tryLater (storage away, signing rate-limited): a copy still inside its validity is the better answer
            return self.fallback(key) if refused.status == "tryLater" else _error(refused.status)
        except DB_ERRORS:
            _log.error("OCSP: storage unavailable; answering from memory")
            return self.fallback(key)
        found = _Answer(signed.der, signed.this_update, signed.next_update, signed.etag, now=self.ctx.clock())
        self._answers[key] = found
        while len(self._answers) > CACHE_SIZE:
            self._answers.popitem(last=False)
        return found


def _error(name: str) -> _Answer:
    return _Answer(ERROR_DER[name])


ASGIApp = Callable[
    [MutableMapping[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]
]


class OcspFastPath:
    """ASGI middleware answering ``/ocsp`` before routing; everything else passes through."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._responder: OcspResponder | None = None

    def responder(self, scope: MutableMapping[str, Any]) -> OcspResponder:
        if self._responder is None:
            self._responder = responder_for(scope["app"].state.ctx)
        return self._responder

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if path != OCSP_PATH and not path.startswith(OCSP_PATH + "/"):
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        responder = self.responder(scope)
        get = method in ("GET", "HEAD")  # HEAD: the GET's answer, whose body the server leaves out (RFC 9110 9.3.2)
        if get:
            answer = responder.cached_get(path)
            if answer is None:
                answer = await responder.answer(_decode_get(path[len(OCSP_PATH) :]))
                if answer.next_update is None:  # an error (tryLater in an outage): fall back to the URL's last
                    answer = responder.stale_get(path) or answer
                responder.remember_get(path, answer)
        elif method == "POST":
            answer = await responder.answer(await _read_body(receive))
        else:
            await _send(send, 405, [(b"allow", b"GET, HEAD, POST"), (b"content-length", b"0")], b"")
            return
        headers = answer.headers(cacheable=get, mono=time.monotonic())
        if get and answer.etag is not None:
            for name, value in scope["headers"]:
                if name == b"if-none-match" and f'"{answer.etag}"'.encode() in value:
                    await _send(send, 304, [h for h in headers if h[0] != b"content-length"], b"")
                    return
        await _send(send, 200, headers, answer.der)


async def _read_body(receive: Callable[[], Awaitable[Any]]) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        body = message.get("body", b"")
        size += len(body)
        if size > MAX_REQUEST_BYTES:
            return None
        chunks.append(body)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _send(
    send: Callable[[Any], Awaitable[None]], status: int, headers: list[tuple[bytes, bytes]], body: bytes
) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def responder_for(ctx: Context) -> OcspResponder:
    """One responder per context, shared by the fast path and the routes."""
    found = ctx.memo.ocsp_responder
    if not isinstance(found, OcspResponder):
        found = ctx.memo.ocsp_responder = OcspResponder(ctx)
    return found


# --- routes --------------------------------------------------------------------------------------

router = APIRouter(tags=["status"])


def _ctx(request: Request) -> Context:
    return request.app.state.ctx  # type: ignore[no-any-return]


def _crl_etag(ctx: Context, crl_id: int, der: bytes) -> str:
    found = ctx.memo.crl_etags.get(crl_id)
    if found is None:
        found = ctx.memo.crl_etags[crl_id] = hashlib.sha256(der).hexdigest()[:32]
    return found


@router.get(
    "/crl/{filename}",
    response_class=Response,
    summary="A CRL (DER) or the root's ARL (<root>-arl.crl)",
    responses={200: {"content": {CRL_MEDIA_TYPE: {}}}},
)
def get_crl(filename: str, request: Request) -> Response:
    if not filename.endswith(".crl"):
        raise NotFound("CRLs are named <label>.crl and <root>-arl.crl", value=filename)
    stem = filename[:-4]
    ctx = _ctx(request)
    row = None
    if stem.endswith("-arl"):
        try:
            row = publication.current_crl(ctx, stem[:-4], arl=True)
        except NotFound:
            row = None
    if row is None:
        row = publication.current_crl(ctx, stem)
    etag = f'"{_crl_etag(ctx, row.id, row.der)}"'
    now = ctx.clock()
    max_age = max(0, min(CRL_MAX_AGE, int((row.next_update - now).total_seconds())))
    headers = {
        "Cache-Control": f"public, max-age={max_age}, no-transform",
        "ETag": etag,
        "Last-Modified": _http_date(row.this_update),
        "Expires": _http_date(row.next_update),
    }
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    return Response(row.der, media_type=CRL_MEDIA_TYPE, headers=headers)


async def _route_answer(request: Request, der: bytes | None, *, cacheable: bool) -> Response:
    responder = responder_for(_ctx(request))
    answer = await responder.answer(der)
    headers = {
        k.decode(): v.decode()
        for k, v in answer.headers(cacheable=cacheable, mono=time.monotonic())
        if k not in (b"content-type", b"content-length")
    }
    return Response(answer.der, media_type=OCSP_MEDIA_TYPE, headers=headers)


@router.get(
    OCSP_PATH + "/{encoded:path}",
    response_class=Response,
    summary="OCSP over GET (RFC 6960 A.1)",
    responses={200: {"content": {OCSP_MEDIA_TYPE: {}}}},
)
async def ocsp_get(encoded: str, request: Request) -> Response:
    return await _route_answer(request, _decode_get(encoded), cacheable=True)


@router.post(
    OCSP_PATH,
    response_class=Response,
    summary="OCSP over POST (RFC 6960 A.1)",
    responses={200: {"content": {OCSP_MEDIA_TYPE: {}}}},
)
async def ocsp_post(request: Request) -> Response:
    body = await request.body()
    return await _route_answer(request, body if len(body) <= MAX_REQUEST_BYTES else None, cacheable=False)


# --- the revocation API --------------------------------------------------------------------------


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class RevokeIn(_In):
    reason: str | None = Field(
        default=None,
        max_length=40,
        description=(
            "keyCompromise, superseded, cessationOfOperation, affiliationChanged or privilegeWithdrawn; "
            "omit for no stated reason (BR 7.2.2)"
        ),
    )


class OperatorRevokeIn(RevokeIn):
    ca: str | None = Field(default=None, max_length=64, description="The issuing CA's label if the serial is ambiguous")


class ChallengeIn(_In):
    serial: str = Field(max_length=64)


class ChallengeOut(BaseModel):
    serial: str
    nonce: str
    expires_in: int
    how: str


class ByKeyIn(_In):
    serial: str = Field(max_length=64)
    csr: str = Field(max_length=20_000, description="PEM CSR signed by the certificate's key, CN = the nonce")


class RevokedCert(BaseModel):
    ca: str
    serial: str


class RevocationOut(BaseModel):
    revoked: list[RevokedCert]
    revoked_at: datetime
    reason: str | None
    key_blocked: bool

    @classmethod
    def of(cls, result: revocation.Revocation) -> RevocationOut:
        return cls(
            revoked=[RevokedCert(ca=c, serial=s) for c, s in result.revoked],
            revoked_at=result.revoked_at,
            reason=result.reason,
            key_blocked=result.blocked_spki is not None,
        )


@router.post(
    "/api/v1/certificate/revoke",
    response_model=RevocationOut,
    tags=["certificate"],
    summary="Revoke the certificate of the logged-in application (BR 4.9.2)",
)
def subscriber_revoke(body: RevokeIn, app_id: SessionApp, request: Request) -> RevocationOut:
    return RevocationOut.of(
        revocation.revoke_for_application(_ctx(request), app_id, body.reason, actor=f"subscriber:app-{app_id}")
    )


_challenge_limits: dict[str, list[float]] = {}
_CHALLENGES_PER_ADDR = 30  # per hour per client address


def _limit_addr(request: Request) -> None:
    addr = request.client.host if request.client else "unknown"
    now = time.monotonic()
    recent = [t for t in _challenge_limits.get(addr, []) if now - t < 3600]
    if len(recent) >= _CHALLENGES_PER_ADDR:
        raise RateLimited("too many revocation challenges from this address")
    recent.append(now)
    _challenge_limits[addr] = recent


@router.post(
    "/api/v1/revocation/challenge",
    response_model=ChallengeOut,
    tags=["revocation"],
    summary="A nonce to sign with the certificate's key to prove possession",
)
def challenge(body: ChallengeIn, request: Request) -> ChallengeOut:
    _limit_addr(request)
    nonce = revocation.revocation_challenge(_ctx(request), body.serial)
    return ChallengeOut(
        serial=body.serial,
        nonce=nonce,
        expires_in=int(revocation.CHALLENGE_LIFETIME.total_seconds()),
        how=f'openssl req -new -key <private key> -subj "/CN={nonce}" -out proof.csr; then POST '
        "/api/v1/revocation/by-key with the serial and the CSR",
    )


@router.post(
    "/api/v1/revocation/by-key",
    response_model=RevocationOut,
    tags=["revocation"],
    summary="Revoke (keyCompromise) with a CSR signed by the certificate's key carrying the nonce",
)
def by_key(body: ByKeyIn, request: Request) -> RevocationOut:
    return RevocationOut.of(revocation.revoke_by_key_proof(_ctx(request), body.serial, body.csr))


@router.post(
    "/api/v1/operator/certificates/{serial}/revoke",
    response_model=RevocationOut,
    tags=["operator"],
    summary="The operator revokes a certificate",
)
def operator_revoke(serial: str, body: OperatorRevokeIn, operator: Operator, request: Request) -> RevocationOut:
    return RevocationOut.of(
        revocation.revoke_certificate(
            _ctx(request), ca_label=body.ca, serial_hex=serial, reason=body.reason, actor=operator
        )
    )


# --- wiring --------------------------------------------------------------------------------------


def _jobs_enabled(env: dict[str, str]) -> bool:
    return env.get("ECERT_JOBS", "on").strip().lower() not in ("off", "0", "false", "no")


def _forget_on_change(app: FastAPI) -> None:
    """Drop this worker's OCSP answers as soon as any process stores a new response (a revocation in another
    worker included): NOTIFY on PostgreSQL, the 1 s change marker on SQLite, so "revoked at once" holds."""
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(asgi_app: Any) -> AsyncIterator[Any]:
        ctx: Context = app.state.ctx
        if ctx.engine.url.database in (None, "", ":memory:"):  # one process, one shared connection: nothing to hear
            async with inner(asgi_app) as state:
                yield state
            return
        stop = threading.Event()
        watcher = threading.Thread(
            target=ocsp_feed.watch_changes,
            args=(ctx, stop, lambda: publication.invalidate_ocsp_cache(ctx)),
            name="ocsp-cache-watch",
            daemon=True,
        )
        watcher.start()
        try:
            async with inner(asgi_app) as state:
                yield state
        finally:
            stop.set()

    app.router.lifespan_context = lifespan


def install(app: FastAPI) -> None:
    """Put the OCSP fast path in front of the app and run the status jobs for the app's lifetime."""
    app.add_middleware(OcspFastPath)
    _forget_on_change(app)
    env = dict(getattr(app.state, "env", {}) or {})
    if not _jobs_enabled(env):
        return
    interval = float(env.get("ECERT_JOBS_INTERVAL", jobs.DEFAULT_INTERVAL_SECONDS))
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(asgi_app: Any) -> AsyncIterator[Any]:
        scheduler = jobs.Scheduler(app.state.ctx, interval)
        scheduler.start()
        app.state.status_jobs = scheduler
        try:
            async with inner(asgi_app) as state:
                yield state
        finally:
            await anyio.to_thread.run_sync(scheduler.stop)

    app.router.lifespan_context = lifespan
