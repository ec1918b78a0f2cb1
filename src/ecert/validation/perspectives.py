"""Remote network perspectives (BR 3.2.2.9): the HMAC-authenticated service and the primary's client.

A perspective runs the same DNS/HTTP/CAA checks from its own network location and answers the
primary over HTTP. Requests and answers carry an HMAC-SHA256 over ``timestamp.body`` with a shared
secret; anything older than 60 s or with a bad MAC is refused, so a replayed or forged answer cannot
stand in for a perspective's real one.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ecert.core.errors import Unauthorized

__all__ = [
    "MAX_SKEW_SECONDS",
    "CHECK_PATH",
    "PerspectiveAnswer",
    "sign",
    "verify",
    "create_perspective_app",
    "ask_perspectives",
    "perspective_client",
]

MAX_SKEW_SECONDS = 60
CHECK_PATH = "/v1/check"
TS_HEADER = "X-Ecert-Timestamp"
SIG_HEADER = "X-Ecert-Signature"


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """HMAC-SHA256 over ``<timestamp>.<body>``, hex."""
    return hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


def verify(secret: bytes, timestamp: str | None, signature: str | None, body: bytes, now: float) -> None:
    """Raise Unauthorized unless the MAC is right and the timestamp within 60 s of ``now``."""
    if not timestamp or not signature:
        raise Unauthorized("missing perspective authentication headers", rule="BR 3.2.2.9")
    try:
        ts = int(timestamp)
    except ValueError:
        raise Unauthorized("bad perspective timestamp", rule="BR 3.2.2.9", value=timestamp) from None
    if abs(now - ts) > MAX_SKEW_SECONDS:
        raise Unauthorized("stale perspective message", rule="BR 3.2.2.9", value=ts)
    if not hmac.compare_digest(sign(secret, ts, body), signature):
        raise Unauthorized("bad perspective MAC", rule="BR 3.2.2.9")


def _signed_json(secret: bytes, payload: Mapping[str, Any], status: int = 200) -> Response:
    body = json.dumps(payload, sort_keys=True, default=str).encode()
    ts = int(time.time())
    return Response(
        body,
        status_code=status,
        media_type="application/json",
        headers={TS_HEADER: str(ts), SIG_HEADER: sign(secret, ts, body)},
    )


def create_perspective_app(
    handler: Callable[[dict[str, Any]], dict[str, Any]],
    secret: bytes,
    *,
    name: str = "perspective",
    clock: Callable[[], float] = time.time,
) -> Starlette:
    """The ASGI app of one remote perspective: POST /v1/check with a signed JSON request.

    ``handler`` runs the check locally (``Validator.local_check``); it is called in a worker thread
    because the checks block on the network.
    """

    async def check_endpoint(request: Request) -> Response:
        body = await request.body()
        try:
            verify(secret, request.headers.get(TS_HEADER), request.headers.get(SIG_HEADER), body, clock())
        except Unauthorized as exc:
            return JSONResponse({"error": exc.message}, status_code=401)
        try:
            payload = json.loads(body)
            if not isinstance(payload, dict):
                raise ValueError("not an object")
        except ValueError:
            return JSONResponse({"error": "malformed request"}, status_code=400)
        try:
            result = await run_in_threadpool(handler, payload)
        except Exception as exc:  # a perspective answers with its failure; it never invents a pass
            result = {"error": f"{type(exc).__name__}: {exc}"[:300]}
        result["perspective"] = name
        return _signed_json(secret, result)

    async def health(request: Request) -> Response:
        return JSONResponse({"perspective": name, "ok": True})

    return Starlette(routes=[Route(CHECK_PATH, check_endpoint, methods=["POST"]), Route("/health", health)])


@dataclass(frozen=True)
class PerspectiveAnswer:
    """One remote perspective's answer, or why there was none."""

    url: str
    answer: Mapping[str, Any] | None
    error: str | None
    elapsed: float

    def to_evidence(self) -> dict[str, Any]:
        out: dict[str, Any] = {"url": self.url, "elapsed_ms": round(self.elapsed * 1000)}
        if self.answer is not None:
            out["answer"] = {k: v for k, v in self.answer.items() if k != "evidence"}
        if self.error:
            out["error"] = self.error
        return out


def perspective_client(timeout: float = 10.0, transport: httpx.BaseTransport | None = None) -> httpx.Client:
    """One pooled client for asking perspectives; thread-safe, so a Validator keeps one for its life."""
    return httpx.Client(
        timeout=timeout,
        trust_env=False,
        follow_redirects=False,
        transport=transport,
        limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
    )


def _ask_one(url: str, secret: bytes, body: bytes, client: httpx.Client) -> PerspectiveAnswer:
    started = time.monotonic()
    ts = int(time.time())
    headers = {TS_HEADER: str(ts), SIG_HEADER: sign(secret, ts, body), "Content-Type": "application/json"}
    try:
        response = client.post(url.rstrip("/") + CHECK_PATH, content=body, headers=headers)
        elapsed = time.monotonic() - started
        if response.status_code != 200:
            return PerspectiveAnswer(url, None, f"HTTP {response.status_code}", elapsed)
        verify(
            secret,
            response.headers.get(TS_HEADER),
            response.headers.get(SIG_HEADER),
            response.content,
            time.time(),
        )
        answer = response.json()
        if not isinstance(answer, dict) or "error" in answer:
            return PerspectiveAnswer(
                url, None, str(answer.get("error") if isinstance(answer, dict) else answer), elapsed
            )
        return PerspectiveAnswer(url, answer, None, elapsed)
    except Unauthorized as exc:
        return PerspectiveAnswer(url, None, f"answer not authenticated: {exc.message}", time.monotonic() - started)
    except (httpx.HTTPError, ValueError) as exc:
        return PerspectiveAnswer(url, None, f"{type(exc).__name__}: {exc}"[:300], time.monotonic() - started)


def ask_perspectives(
    urls: Sequence[str],
    secret: bytes,
    payload: Mapping[str, Any],
    *,
    client: httpx.Client | None = None,
    timeout: float = 10.0,
) -> list[PerspectiveAnswer]:
    """Ask every perspective at once; each answer or failure comes back in the order of ``urls``."""
    if not urls:
        return []
    body = json.dumps(payload, sort_keys=True).encode()
    own = client is None
    http = client or perspective_client(timeout)
    try:
        with ThreadPoolExecutor(max_workers=len(urls)) as pool:
            futures = [pool.submit(_ask_one, u, secret, body, http) for u in urls]
            return [f.result() for f in futures]
    finally:
        if own:
            http.close()
