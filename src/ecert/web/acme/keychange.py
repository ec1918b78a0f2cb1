"""keyChange (RFC 8555 7.3.5): an outer JWS by the account's key around an inner JWS by the new key.

The inner JWS is read with josepy and judged by the same rules as any request (flattened, one signature,
an allowed algorithm that fits its jwk), plus 7.3.5's own: no nonce, the same url, ``account`` = the kid,
``oldKey`` = the account's key.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
from acme import jws as acme_jws
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from josepy.errors import DeserializationError
from josepy.jwk import JWK

from ...core.acme_rules import AcmeRefusal, ProblemType, check_alg
from ...services import acme_keychange
from ...services.acme_keychange import KeyChange, KeyInUse
from .routes import AcmeRoute, _ctx
from .verify import (
    Verified,
    _flattened,
    _parse,
    _protected_header,
    account_url,
    json_or_malformed,
    thumbprint,
    verify_post,
)

__all__ = ["router"]

router = APIRouter(route_class=AcmeRoute, include_in_schema=False)  # mounted under /acme by __init__


def _malformed(message: str, value: object | None = None) -> AcmeRefusal:
    return AcmeRefusal(ProblemType.MALFORMED, message, rule="RFC 8555 7.3.5", value=value)


def _inner(payload: dict[str, Any], url: str) -> tuple[JWK, dict[str, Any]]:
    """The new key and the inner payload, once the inner JWS is well formed and verifies with its own jwk."""
    obj = _flattened(json.dumps(payload).encode())
    header = _protected_header(obj)
    if "jwk" not in header or "kid" in header or "nonce" in header:
        raise _malformed("the inner JWS carries a jwk, and no kid or nonce")
    if header.get("url") != url:
        raise _malformed("the inner JWS's url is not the keyChange URL", header.get("url"))
    parsed: acme_jws.JWS = _parse(obj)
    key = parsed.signature.combined.jwk
    if key is None:
        raise _malformed("the inner jwk cannot be read")
    key_json = key.to_partial_json()
    check_alg(str(header.get("alg")), str(key_json.get("kty")), key_json.get("crv"))
    try:
        good = parsed.verify(key)
    except Exception:  # noqa: BLE001 - a malformed signature value raises inside the crypto library
        good = False
    if not good:
        raise _malformed("the inner JWS does not verify with the new key")
    inner = json_or_malformed(parsed.payload, "the inner payload", rule="RFC 8555 7.3.5")
    if not isinstance(inner, dict):
        raise _malformed("the inner payload is not a JSON object")
    return key, inner


def _old_key_thumbprint(inner: dict[str, Any]) -> str:
    raw = inner.get("oldKey")
    try:
        if not isinstance(raw, dict):
            raise TypeError
        key = JWK.from_json(raw)
        if not isinstance(key, JWK):
            raise TypeError
        return thumbprint(key)
    except (DeserializationError, TypeError, ValueError, AttributeError):
        raise _malformed("oldKey is not a JWK") from None


def _key_change(request: Request, verified: Verified) -> KeyChange:
    assert verified.account is not None
    new_key, inner = _inner(verified.payload or {}, verified.url)
    if inner.get("account") != account_url(request, verified.account.id):
        raise _malformed("the inner payload's account is not the account that signs", inner.get("account"))
    return KeyChange(
        account_id=verified.account.id,
        old_thumbprint=thumbprint(verified.jwk),
        claimed_old_thumbprint=_old_key_thumbprint(inner),
        new_thumbprint=thumbprint(new_key),
        new_jwk=new_key.public_key().to_partial_json(),
        client=request.client.host if request.client else "unknown",
    )


@router.post("/key-change")
async def key_change(request: Request) -> Response:
    """RFC 8555 7.3.5: 200 with the account; 409 with the Location of the account that holds the new key."""
    ctx = _ctx(request)
    verified = await verify_post(request, ctx, jwk_allowed=False, post_as_get=False)
    change = _key_change(request, verified)
    try:
        await anyio.to_thread.run_sync(acme_keychange.change_key, ctx, change)
    except KeyInUse as conflict:
        conflict.headers["Location"] = account_url(request, conflict.account_id)
        raise
    assert verified.account is not None
    body = {"status": verified.account.status, "contact": list(verified.account.contact)}
    return JSONResponse(body, headers={"Location": account_url(request, verified.account.id)})
