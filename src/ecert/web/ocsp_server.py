"""A dedicated OCSP responder: one asyncio process (uvloop + httptools) answering from memory.

RFC 6960 Appendix A and the RFC 5019 profile only: ``GET /ocsp/{base64 request}`` (and HEAD, its headers) and
``POST /ocsp``.
Every pre-signed response of ``ocsp_responses`` is held in memory, keyed by the SHA-1 CertID, and a
background thread reads the rows signed since the last poll (plus a full reload as a backstop), so
answering costs a dictionary lookup and no framework. Repeated identical GETs skip even the DER parse.
What memory cannot answer (a serial never issued, a non-SHA-1 CertID, a certificate newer than the
last poll) goes through the same rules and rate-limited on-demand signing as the main app
(``web/ocsp_rules.py``), in a worker thread.
"""

from __future__ import annotations

import asyncio
import logging
import math
import signal
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from email.utils import formatdate
from urllib.parse import unquote_to_bytes

import httptools
import uvloop
from cryptography.hazmat.primitives import hashes

from ..core.urls import OCSP_PATH
from ..services import ocsp_feed
from ..services.context import Context
from ..signer.status import issuer_hashes
from .ocsp_rules import ERROR_DER, CertKey, OcspRefused, TokenBucket, decode_get, parse_request, sign_on_demand

__all__ = ["MAX_POST_BYTES", "Answer", "ResponseStore", "OcspServer", "serve"]

_log = logging.getLogger("ecert.web.ocsp_server")

MAX_POST_BYTES = 10 * 1024  # refused with 413 above this: a one-certificate request is about 100 bytes
MAX_URL_BYTES = 16 * 1024  # base64 of MAX_REQUEST_BYTES, percent-encoded, with room to spare
GET_CACHE_SIZE = 10_000  # raw GET URL -> answer
ON_DEMAND_TTL = 30.0  # seconds an answer signed on demand (unknown, non-SHA-1 CertID) is reused
FULL_RELOAD_SECONDS = 300.0  # the backstop: a full reload catches a row committed later than SLACK
# A poll reads rows signed after (start of the previous poll - SLACK): a transaction that signed a
# response before the previous poll began but committed after it is still read, provided it ran for
# less than SLACK (revocation refreshes are one short transaction) and the clocks agree within it.
SLACK = timedelta(seconds=60)
MAX_PIPELINED = 64  # requests queued behind a slow one before the connection stops reading
REFUSE_LINGER = 2.0  # seconds a refused connection is drained before it is closed
# How often SQLite's change marker is read: a revocation is served within about this (PostgreSQL: at commit).
CHANGE_POLL_SECONDS = 1.0
# Seconds a connection may sit with no request in progress before it is closed (uvicorn's keep-alive default).
IDLE_TIMEOUT = 5.0

_HASH_ALGORITHMS = (hashes.SHA1(), hashes.SHA256(), hashes.SHA384(), hashes.SHA512())
_OCSP = OCSP_PATH.encode()
_CT = b"Content-Type: application/ocsp-response\r\n"


def _http_date(epoch: float) -> bytes:
    return formatdate(epoch, usegmt=True).encode()


class Answer:
    """One response ready to send, with its header block pre-rendered.

    Times are epoch seconds. ``stale`` is set by the refresher when a newer row replaces this one,
    so a copy held by the GET cache is never served after a change.
    """

    __slots__ = (
        "der",
        "etag_q",
        "cacheable",
        "valid_from",
        "valid_until",
        "next_update",
        "stale",
        "_get_head",
        "_nostore",
        "_memo_at",
        "_memo",
    )

    def __init__(
        self,
        der: bytes,
        this_update: datetime | None = None,
        next_update: datetime | None = None,
        etag: str | None = None,
        *,
        ttl: float | None = None,
        now: float | None = None,
    ) -> None:
        self.der = der
        self.stale = False
        self.cacheable = this_update is not None and next_update is not None and etag is not None
        length = b"Content-Length: %d\r\n" % len(der)
        self._nostore = _CT + length + b"Cache-Control: no-store\r\n"
        self._memo_at, self._memo = -1, b""
        if not self.cacheable:
            self.etag_q, self.valid_from, self.valid_until, self.next_update = b"", -math.inf, math.inf, math.inf
            self._get_head = self._nostore
            return
        assert this_update is not None and next_update is not None
        self.etag_q = f'"{etag}"'.encode()
        self.valid_from, self.next_update = this_update.timestamp(), next_update.timestamp()
        self.valid_until = self.next_update if ttl is None else min(self.next_update, (now or time.time()) + ttl)
        # RFC 5019 6.2: Last-Modified = thisUpdate, Expires = nextUpdate, a strong ETag; max-age is added per second.
        self._get_head = (
            _CT
            + length
            + b"Last-Modified: "
            + _http_date(self.valid_from)
            + b"\r\nExpires: "
            + _http_date(self.next_update)
            + b"\r\nETag: "
            + self.etag_q
            + b"\r\n"
        )

    def live(self, now: float) -> bool:
        return not self.stale and self.valid_from <= now < self.valid_until

    def _cache_control(self, now: float) -> bytes:
        return b"Cache-Control: max-age=%d, public, no-transform, must-revalidate\r\n" % max(
            0, int(self.next_update - now)
        )

    def render(self, *, get: bool, now: float, date: bytes, if_none_match: bytes | None, extra: bytes) -> bytes:
        """The whole HTTP/1.1 response: GET answers cacheable until nextUpdate, POST and errors no-store."""
        if not (get and self.cacheable):
            return b"HTTP/1.1 200 OK\r\n" + date + self._nostore + extra + b"\r\n" + self.der
        if if_none_match is not None and (self.etag_q in if_none_match or if_none_match.strip() == b"*"):
            return (
                b"HTTP/1.1 304 Not Modified\r\n"
                + date
                + b"ETag: "
                + self.etag_q
                + b"\r\n"
                + self._cache_control(now)
                + extra
                + b"\r\n"
            )
        second = int(now)
        if not extra and second == self._memo_at:
            return self._memo
        out = b"HTTP/1.1 200 OK\r\n" + date + self._get_head + self._cache_control(now) + extra + b"\r\n" + self.der
        if not extra:
            self._memo_at, self._memo = second, out
        return out


_ERRORS = {name: Answer(der) for name, der in ERROR_DER.items()}


def _plain(status: bytes, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 " + status + b"\r\nContent-Length: 0\r\n" + extra


def _without_content(response: bytes) -> bytes:
    """The status line and header fields of a whole response, for a HEAD: Content-Length still says what a
    GET would carry (RFC 9110 8.6), and nothing follows the blank line."""
    return response[: response.index(b"\r\n\r\n") + 4]


_NOT_FOUND = _plain(b"404 Not Found")
_NOT_ALLOWED = _plain(b"405 Method Not Allowed", b"Allow: GET, HEAD, POST\r\n")
_TOO_LARGE = _plain(b"413 Content Too Large", b"Connection: close\r\n") + b"\r\n"
_URI_TOO_LONG = _plain(b"414 URI Too Long", b"Connection: close\r\n") + b"\r\n"
_BAD_REQUEST = _plain(b"400 Bad Request", b"Connection: close\r\n") + b"\r\n"


class ResponseStore:
    """The in-memory responses and issuers, filled from storage by one refresher thread.

    Only the refresher writes ``_answers`` and ``_issuers`` (it swaps or sets single keys, which is
    atomic for readers); the event loop only reads them. Changes are announced to the loop through
    ``on_change`` so it can drop answers it made on demand for the same certificate.
    """

    def __init__(self, ctx: Context, *, on_change: Callable[[set[tuple[int, int]]], None] | None = None) -> None:
        self.ctx = ctx
        self.on_change = on_change
        self._answers: dict[tuple[bytes, bytes, int], Answer] = {}
        self._issuers: dict[tuple[str, bytes, bytes], tuple[int, str]] = {}
        self._sha1: dict[int, tuple[bytes, bytes]] = {}
        self._last_start: datetime | None = None
        self._last_full = 0.0
        self.loads = 0  # completed polls, for tests and logs

    def __len__(self) -> int:
        return len(self._answers)

    def issuer(self, key: CertKey) -> tuple[int, str] | None:
        """(ca_id, label) of the CA the request's CertID names, if we answer for it."""
        return self._issuers.get(key.issuer)

    def stored(self, key: CertKey) -> Answer | None:
        if key.algorithm != "sha1":
            return None  # stored responses carry a SHA-1 CertID (RFC 5019 2.1.1); others are signed on demand
        return self._answers.get((key.issuer_name_hash, key.issuer_key_hash, key.serial))

    def _load_issuers(self) -> None:
        issuers: dict[tuple[str, bytes, bytes], tuple[int, str]] = {}
        sha1: dict[int, tuple[bytes, bytes]] = {}
        for row in ocsp_feed.issuers(self.ctx):
            for algorithm in _HASH_ALGORITHMS:
                name_hash, key_hash = issuer_hashes(row.cert, algorithm)
                issuers[(algorithm.name, name_hash, key_hash)] = (row.ca_id, row.label)
                if algorithm.name == "sha1":
                    sha1[row.ca_id] = (name_hash, key_hash)
        self._issuers, self._sha1 = issuers, sha1

    def refresh(self, *, full: bool = False) -> int:
        """One poll: rows signed since the previous poll began (less SLACK), or all of them; returns how many."""
        start = self.ctx.clock()
        full = full or self._last_start is None or time.monotonic() - self._last_full >= FULL_RELOAD_SECONDS
        self._load_issuers()
        changed: set[tuple[int, int]] = set()
        count = 0
        if full:
            old, new = self._answers, dict[tuple[bytes, bytes, int], Answer]()
            for row in ocsp_feed.stored_responses(self.ctx, valid_at=start):
                count += 1
                self._apply(new, old, row, changed)
            for key, answer in old.items():
                if key not in new:
                    answer.stale = True
            self._answers = new
            self._last_full = time.monotonic()
        else:
            assert self._last_start is not None
            for row in ocsp_feed.stored_responses(self.ctx, signed_after=self._last_start - SLACK):
                count += 1
                self._apply(self._answers, self._answers, row, changed)
        self._last_start = start
        self.loads += 1
        if changed and self.on_change is not None:
            self.on_change(changed)
        return count

    def _apply(
        self,
        target: dict[tuple[bytes, bytes, int], Answer],
        old: dict[tuple[bytes, bytes, int], Answer],
        row: ocsp_feed.StoredResponse,
        changed: set[tuple[int, int]],
    ) -> None:
        hashes_ = self._sha1.get(row.ca_id)
        if hashes_ is None:
            return  # not an issuer we answer for (revoked or expired CA)
        serial = int(row.serial_hex, 16)
        key = (hashes_[0], hashes_[1], serial)
        previous = old.get(key)
        if previous is not None and previous.etag_q == f'"{row.etag}"'.encode():
            target[key] = previous  # unchanged: keep the object, its rendered bytes and cache entries
            return
        target[key] = Answer(row.der, row.this_update, row.next_update, row.etag)
        if previous is not None:
            previous.stale = True
        changed.add((row.ca_id, serial))

    def run(
        self,
        stop: threading.Event,
        interval: float,
        wake: threading.Event | None = None,
        marker_seconds: float | None = None,
    ) -> None:
        """The refresher thread's loop until ``stop``: reload when ``wake`` is set (a NOTIFY), when the change
        marker moved (checked every ``marker_seconds``, the SQLite way), and every ``interval`` regardless."""
        wake = wake or threading.Event()
        tick = min(interval, marker_seconds) if marker_seconds else interval
        last_poll, marker = time.monotonic(), self._marker() if marker_seconds else None
        while not stop.is_set():
            woken = wake.wait(tick)
            wake.clear()
            if stop.is_set():
                return
            moved = False
            if marker_seconds:
                now_marker = self._marker()
                moved, marker = now_marker != marker, now_marker
            if woken or moved or time.monotonic() - last_poll >= interval:
                self._refresh_logged()
                last_poll = time.monotonic()

    def _marker(self) -> object:
        try:
            return ocsp_feed.change_marker(self.ctx)
        except Exception:  # noqa: BLE001 - an unreachable database: keep serving memory
            return None

    def _refresh_logged(self) -> None:
        try:
            self.refresh()
        except Exception:  # noqa: BLE001 - a failed poll keeps the old answers; the next one retries
            _log.exception("OCSP refresh failed; serving the responses already loaded")


def _is_ocsp_path(path: bytes, get: bool) -> bool:
    """GET carries the request in the path below the OCSP URL (RFC 6960 A.1); POST goes to the URL itself."""
    if get:
        return path == _OCSP or path.startswith(_OCSP + b"/")
    return path in (_OCSP, _OCSP + b"/")


class _Pending:
    """A request memory could not answer: it needs the database and maybe a signature."""

    __slots__ = ("key", "ca_id", "label")

    def __init__(self, key: CertKey, ca_id: int, label: str) -> None:
        self.key, self.ca_id, self.label = key, ca_id, label


class OcspServer:
    """The protocol logic shared by all connections: caches, lookup, on-demand signing."""

    def __init__(self, ctx: Context, store: ResponseStore, *, workers: int = 4) -> None:
        self.ctx = ctx
        self.store = store
        self._get_cache: OrderedDict[bytes, Answer] = OrderedDict()
        self._on_demand: dict[tuple[int, int], dict[CertKey, Answer]] = {}
        self._inflight: dict[CertKey, asyncio.Future[Answer]] = {}
        self._bucket = TokenBucket()
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ocsp-sign")
        self._date_at = -1
        self._date = b""

    def date(self, now: float) -> bytes:
        second = int(now)
        if second != self._date_at:
            self._date_at, self._date = second, b"Date: " + _http_date(second) + b"\r\n"
        return self._date

    def forget(self, changed: set[tuple[int, int]]) -> None:
        """Drop on-demand answers for certificates whose stored response changed (event-loop thread)."""
        for item in changed:
            for answer in self._on_demand.pop(item, {}).values():
                answer.stale = True

    def _remember_get(self, url: bytes, answer: Answer) -> None:
        cache = self._get_cache
        cache[url] = answer
        if len(cache) > GET_CACHE_SIZE:
            cache.popitem(last=False)

    def respond(
        self, method: bytes, url: bytes, body: bytes | None, if_none_match: bytes | None, extra: bytes
    ) -> bytes | tuple[_Pending, bool, bytes]:
        """The response bytes, or what to sign on demand (with whether it was a GET and its URL)."""
        now = time.time()
        get = method == b"GET"
        if not get and method != b"POST":
            return _NOT_ALLOWED + self.date(now) + extra + b"\r\n"
        if get:
            cached = self._cached_get(url, now, if_none_match, extra)
            if cached is not None:
                return cached
        path = url.split(b"?", 1)[0]
        if not _is_ocsp_path(path, get):
            return _NOT_FOUND + self.date(now) + extra + b"\r\n"
        der = decode_get(unquote_to_bytes(path[len(_OCSP) :]).decode("latin-1")) if get else body
        return self._answer(der, get, url, now, if_none_match, extra)

    def _cached_get(self, url: bytes, now: float, if_none_match: bytes | None, extra: bytes) -> bytes | None:
        """The remembered answer to this exact GET URL while it is live; a stale one is forgotten."""
        hit = self._get_cache.get(url)
        if hit is None:
            return None
        if hit.live(now):
            self._get_cache.move_to_end(url)
            return hit.render(get=True, now=now, date=self.date(now), if_none_match=if_none_match, extra=extra)
        del self._get_cache[url]
        return None

    def _answer(
        self, der: bytes | None, get: bool, url: bytes, now: float, if_none_match: bytes | None, extra: bytes
    ) -> bytes | tuple[_Pending, bool, bytes]:
        """A live stored or on-demand answer, an error response, or the request to sign on demand."""
        try:
            key = parse_request(der)
            issuer = self.store.issuer(key)
            if issuer is None:
                raise OcspRefused("unauthorized")  # RFC 6960 2.3: not an issuer we answer for
            answer = self._live_answer(key, issuer[0], now)
            if answer is None:
                return _Pending(key, issuer[0], issuer[1]), get, url
        except OcspRefused as refused:
            answer = _ERRORS[refused.status]
            if get and refused.status == "malformedRequest":
                self._remember_get(url, answer)  # the same bytes are always malformed
            return answer.render(get=get, now=now, date=self.date(now), if_none_match=None, extra=extra)
        if get:
            self._remember_get(url, answer)
        return answer.render(get=get, now=now, date=self.date(now), if_none_match=if_none_match, extra=extra)

    def _live_answer(self, key: CertKey, ca_id: int, now: float) -> Answer | None:
        """The stored response if still live, else one signed on demand earlier and still live."""
        answer = self.store.stored(key)
        if answer is not None and answer.live(now):
            return answer
        answer = self._on_demand.get((ca_id, key.serial), {}).get(key)
        if answer is not None and answer.live(now):
            return answer
        return None

    async def respond_slow(
        self, pending: _Pending, get: bool, url: bytes, if_none_match: bytes | None, extra: bytes
    ) -> bytes:
        """Storage, then a rate-limited signature, in a worker thread; identical requests share one."""
        future = self._inflight.get(pending.key)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            self._inflight[pending.key] = future
            try:
                future.set_result(await self._sign(pending))
            except OcspRefused as refused:
                future.set_exception(refused)
            except Exception:  # noqa: BLE001 - logged; the clients get internalError
                _log.exception("OCSP on-demand answer failed")
                future.set_exception(OcspRefused("internalError"))
            except BaseException:
                future.cancel()
                raise
            finally:
                self._inflight.pop(pending.key, None)
        now = time.time()
        try:
            answer = await asyncio.shield(future)
        except OcspRefused as refused:
            return _ERRORS[refused.status].render(
                get=get, now=now, date=self.date(now), if_none_match=None, extra=extra
            )
        if get:
            self._remember_get(url, answer)
        return answer.render(get=get, now=now, date=self.date(now), if_none_match=if_none_match, extra=extra)

    async def _sign(self, pending: _Pending) -> Answer:
        loop = asyncio.get_running_loop()
        signed = await loop.run_in_executor(
            self._executor, sign_on_demand, self.ctx, pending.label, pending.key, self._bucket.take
        )
        answer = Answer(signed.der, signed.this_update, signed.next_update, signed.etag, ttl=ON_DEMAND_TTL)
        self._on_demand.setdefault((pending.ca_id, pending.key.serial), {})[pending.key] = answer
        return answer

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection: httptools parses, answers go out in request order (keep-alive, pipelining)."""

    def __init__(self, server: OcspServer, idle_timeout: float = IDLE_TIMEOUT) -> None:
        self.server = server
        self.idle_timeout = idle_timeout
        self.idle_timer: asyncio.TimerHandle | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.if_none_match: bytes | None = None
        self.body: list[bytes] = []
        self.body_size = 0
        self.refused = False
        self.busy = False
        self.queue: deque[tuple[bytes, bytes, bytes | None, bytes | None, bool, bytes]] = deque()
        self.paused = False

    # -- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self._arm_idle()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._disarm_idle()

    # -- idle connections: closed after idle_timeout with no request in progress (also a first request never sent)
    def _arm_idle(self) -> None:
        self._disarm_idle()
        if self.transport is not None:
            self.idle_timer = asyncio.get_running_loop().call_later(self.idle_timeout, self._idle_expired)

    def _disarm_idle(self) -> None:
        if self.idle_timer is not None:
            self.idle_timer.cancel()
            self.idle_timer = None

    def _idle_expired(self) -> None:
        self.idle_timer = None
        if self.transport is not None and not self.busy and not self.queue:
            self.transport.close()
            self.transport = None

    def data_received(self, data: bytes) -> None:
        self._arm_idle()  # any bytes restart the clock; a request still being answered is never cut
        if self.refused:
            return  # draining a refused request until the linger timer closes the connection
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._finish(_BAD_REQUEST)
        except httptools.HttpParserError:
            if not self.refused:
                self._finish(_BAD_REQUEST)

    def pause_writing(self) -> None:
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None and not self.paused:
            self.transport.resume_reading()

    # -- httptools callbacks
    def on_message_begin(self) -> None:
        self.url, self.if_none_match, self.body, self.body_size = b"", None, [], 0

    def on_url(self, url: bytes) -> None:
        self.url += url
        if len(self.url) > MAX_URL_BYTES:
            self._refuse(_URI_TOO_LONG)

    def on_header(self, name: bytes, value: bytes) -> None:
        lower = name.lower()
        if lower == b"if-none-match":
            self.if_none_match = value
        elif lower == b"content-length" and value.strip().isdigit() and int(value) > MAX_POST_BYTES:
            self._refuse(_TOO_LARGE)  # refused before reading the body

    def on_body(self, body: bytes) -> None:
        self.body_size += len(body)
        if self.body_size > MAX_POST_BYTES:
            self._refuse(_TOO_LARGE)  # chunked bodies have no length up front
        else:
            self.body.append(body)

    def on_message_complete(self) -> None:
        if self.refused:
            return
        keep_alive = self.parser.should_keep_alive()
        if not keep_alive:
            extra = b"Connection: close\r\n"
        elif self.parser.get_http_version() == "1.0":
            extra = b"Connection: keep-alive\r\n"
        else:
            extra = b""
        request = (
            self.parser.get_method(),
            self.url,
            b"".join(self.body) if self.body else b"",
            self.if_none_match,
            keep_alive,
            extra,
        )
        if self.busy:
            self.queue.append(request)
            if len(self.queue) >= MAX_PIPELINED and self.transport is not None:
                self.paused = True
                self.transport.pause_reading()
            return
        self._serve(request)

    # -- answering
    def _serve(self, request: tuple[bytes, bytes, bytes | None, bytes | None, bool, bytes]) -> None:
        method, url, body, if_none_match, keep_alive, extra = request
        head = method == b"HEAD"  # RFC 9110 9.3.2: a GET's answer without its content
        result = self.server.respond(b"GET" if head else method, url, body, if_none_match, extra)
        if isinstance(result, bytes):
            self._write(_without_content(result) if head else result, keep_alive)
            return
        self.busy = True
        pending, get, url = result
        task = asyncio.get_running_loop().create_task(self.server.respond_slow(pending, get, url, if_none_match, extra))
        task.add_done_callback(lambda t: self._slow_done(t, keep_alive, head))

    def _slow_done(self, task: asyncio.Task[bytes], keep_alive: bool, head: bool) -> None:
        self.busy = False
        if task.cancelled():
            return
        if task.exception() is not None:
            _log.error("OCSP slow path failed", exc_info=task.exception())
            answer = _ERRORS["internalError"].render(
                get=False, now=time.time(), date=b"", if_none_match=None, extra=b""
            )
        else:
            answer = task.result()
        self._write(_without_content(answer) if head else answer, keep_alive)
        while self.queue and not self.busy and self.transport is not None:
            self._serve(self.queue.popleft())
        if self.paused and not self.queue and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()

    def _write(self, data: bytes, keep_alive: bool) -> None:
        if self.transport is None:
            return
        self.transport.write(data)
        if not keep_alive:
            self.transport.close()
            self.transport = None
            self._disarm_idle()
        else:
            self._arm_idle()

    def _refuse(self, response: bytes) -> None:
        """Answer a request we will not read (413/414) and close after a short drain, so the client sees it."""
        if self.refused or self.transport is None:
            return
        self.refused = True
        self.queue.clear()
        transport = self.transport
        transport.write(response)
        asyncio.get_running_loop().call_later(REFUSE_LINGER, transport.close)

    def _finish(self, response: bytes) -> None:
        self._write(response, keep_alive=False)


async def _main(
    ctx: Context,
    host: str,
    port: int,
    refresh_seconds: float,
    ready: Callable[[int], None] | None,
    idle_timeout: float = IDLE_TIMEOUT,
) -> None:
    loop = asyncio.get_running_loop()
    store = ResponseStore(ctx)
    await loop.run_in_executor(None, lambda: store.refresh(full=True))
    server = OcspServer(ctx, store)

    def on_change(changed: set[tuple[int, int]]) -> None:
        loop.call_soon_threadsafe(server.forget, changed)

    store.on_change = on_change
    stop, wake = threading.Event(), threading.Event()
    # PostgreSQL tells us of every new response at commit; SQLite is asked every CHANGE_POLL_SECONDS.
    listens = ocsp_feed.notifies(ctx)
    refresher = threading.Thread(
        target=store.run,
        args=(stop, refresh_seconds, wake, None if listens else CHANGE_POLL_SECONDS),
        name="ocsp-refresh",
        daemon=True,
    )
    refresher.start()
    if listens:
        threading.Thread(target=ocsp_feed.listen, args=(ctx, stop, wake.set), name="ocsp-listen", daemon=True).start()
    listener = await loop.create_server(lambda: _Connection(server, idle_timeout), host, port, backlog=1024)
    bound = listener.sockets[0].getsockname()[1]
    done = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, done.set)
    _log.info(
        "OCSP responder on http://%s:%d%s with %d responses, polling every %ss",
        host,
        bound,
        OCSP_PATH,
        len(store),
        refresh_seconds,
    )
    if ready is not None:
        ready(bound)
    try:
        await done.wait()
    finally:
        listener.close()
        stop.set()
        wake.set()
        server.close()
        refresher.join(timeout=5)


def serve(
    ctx: Context,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    refresh_seconds: float = 30.0,
    ready: Callable[[int], None] | None = None,
    idle_timeout: float = IDLE_TIMEOUT,
) -> None:
    """Run the responder until SIGTERM or SIGINT; ``ready`` is told the bound port once it listens.

    ``refresh_seconds`` is the backstop poll; changes arrive sooner (NOTIFY, or the 1 s change marker).
    """
    if refresh_seconds <= 0 or idle_timeout <= 0:
        raise ValueError("refresh_seconds and idle_timeout must be positive")
    uvloop.run(_main(ctx, host, port, refresh_seconds, ready, idle_timeout))
