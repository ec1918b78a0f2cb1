"""ACME orders over HTTP (RFC 8555 7.1.3-7.1.5, 7.4, 7.5): newOrder, order, authz, challenge, finalize, cert.

Each handler verifies the JWS (verify.py), calls one service (services/acme_orders.py) and renders the
resource; :class:`~.routes.AcmeRoute` adds the nonce and turns refusals into problems.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import anyio
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from josepy.b64 import b64decode

from ...core.acme_rules import AcmeRefusal, ProblemType
from ...core.keys import spki_sha256
from ...services import acme_orders
from ...services.acme_accounts import AccountView
from ...services.acme_orders import AuthzView, ChallengeView, OrderView
from ...services.context import Context
from .routes import AcmeRoute
from .verify import AcmeId, Verified, account_url, verify_post

__all__ = ["router"]

router = APIRouter(route_class=AcmeRoute, include_in_schema=False)

# RFC 8555 8.2: how soon a client should look again at something still being worked on.
RETRY_AFTER_SECONDS = "1"
_PEM_CHAIN = "application/pem-certificate-chain"


def _ctx(request: Request) -> Context:
    ctx = request.app.state.ctx
    assert isinstance(ctx, Context)
    return ctx


def _base(request: Request) -> str:
    return f"{request.base_url}acme/"


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _when(value: datetime | None) -> str | None:
    """RFC 3339 in UTC, as RFC 8555 7.1 wants for expires and validated."""
    return None if value is None else value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _account(verified: Verified) -> AccountView:
    assert verified.account is not None  # verify_post with jwk_allowed=False always names an account
    return verified.account


async def _verified(request: Request, *, post_as_get: bool | None) -> tuple[Context, Verified, AccountView]:
    ctx = _ctx(request)
    verified = await verify_post(request, ctx, jwk_allowed=False, post_as_get=post_as_get)
    return ctx, verified, _account(verified)


# --- rendering ----------------------------------------------------------------------------------------------


def _order_body(request: Request, order: OrderView) -> dict[str, Any]:
    base = _base(request)
    body: dict[str, Any] = {
        "status": order.status,
        "expires": _when(order.expires_at),
        "identifiers": [{"type": "dns", "value": n} for n in order.identifiers],
        "profile": order.profile,
        "authorizations": [f"{base}authz/{a}" for a in order.authz_ids],
        "finalize": f"{base}order/{order.id}/finalize",
    }
    if order.error:
        body["error"] = order.error
    if order.certificate_id is not None:
        body["certificate"] = f"{base}cert/{order.id}"
    return body


def _challenge_body(request: Request, challenge: ChallengeView) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": challenge.type,
        "url": f"{_base(request)}chall/{challenge.id}",
        "token": challenge.token,
        "status": challenge.status,
    }
    if challenge.validated_at is not None:
        body["validated"] = _when(challenge.validated_at)
    if challenge.error:
        body["error"] = challenge.error
    return body


def _authz_body(request: Request, authz: AuthzView) -> dict[str, Any]:
    body: dict[str, Any] = {
        "identifier": {"type": "dns", "value": authz.identifier.removeprefix("*.")},
        "status": authz.status,
        "expires": _when(authz.expires_at),
        "challenges": [_challenge_body(request, c) for c in authz.challenges],
    }
    if authz.wildcard:
        body["wildcard"] = True  # RFC 8555 7.1.4
    return body


def _order_response(request: Request, order: OrderView, status_code: int = 200) -> JSONResponse:
    headers = {"Location": f"{_base(request)}order/{order.id}"}
    if order.status in ("pending", "processing"):
        headers["Retry-After"] = RETRY_AFTER_SECONDS
    return JSONResponse(_order_body(request, order), status_code=status_code, headers=headers)


# --- resources ------------------------------------------------------------------------------------------------


@router.post("/new-order")
async def new_order(request: Request) -> JSONResponse:
    """RFC 8555 7.4: a new order; notBefore/notAfter are not offered (validity follows the application)."""
    ctx, verified, account = await _verified(request, post_as_get=False)
    payload = verified.payload or {}
    if "notBefore" in payload or "notAfter" in payload:
        raise AcmeRefusal(
            ProblemType.MALFORMED,
            "notBefore and notAfter are not supported; the validity follows the BR 6.3.2 cap and the subscription",
            rule="RFC 8555 7.4",
        )
    order = await anyio.to_thread.run_sync(
        lambda: acme_orders.new_order(
            ctx,
            account,
            payload.get("identifiers"),
            payload.get("profile"),
            client=_client(request),
            replaces=payload.get("replaces"),  # RFC 9773 5
        )
    )
    return _order_response(request, order, status_code=201)


@router.post("/order/{order_id}")
async def order(request: Request, order_id: AcmeId) -> JSONResponse:
    ctx, _, account = await _verified(request, post_as_get=True)
    found = await anyio.to_thread.run_sync(acme_orders.order_view, ctx, account, order_id)
    return _order_response(request, found)


@router.post("/orders/{account_id}")
async def orders(request: Request, account_id: AcmeId) -> JSONResponse:
    """RFC 8555 7.1.2.1: the account's orders (newest first, one page)."""
    ctx, _, account = await _verified(request, post_as_get=True)
    if account.id != account_id:
        raise AcmeRefusal(
            ProblemType.UNAUTHORIZED,
            "these are another account's orders",
            status=403,
            rule="RFC 8555 7.1.2.1",
            value=account_id,
        )
    ids = await anyio.to_thread.run_sync(acme_orders.order_ids, ctx, account)
    return JSONResponse({"orders": [f"{_base(request)}order/{i}" for i in ids]})


@router.post("/authz/{authz_id}")
async def authorization(request: Request, authz_id: AcmeId) -> JSONResponse:
    ctx, _, account = await _verified(request, post_as_get=True)
    found = await anyio.to_thread.run_sync(acme_orders.authz_view, ctx, account, authz_id)
    headers = {"Retry-After": RETRY_AFTER_SECONDS} if found.status == "pending" else {}
    return JSONResponse(_authz_body(request, found), headers=headers)


@router.post("/chall/{challenge_id}")
async def challenge(request: Request, challenge_id: AcmeId) -> JSONResponse:
    """RFC 8555 7.5.1: {} asks for validation (run by the job runner, not here); POST-as-GET reads."""
    ctx, verified, account = await _verified(request, post_as_get=None)
    if verified.payload:
        raise AcmeRefusal(ProblemType.MALFORMED, "a challenge takes {} or an empty payload", rule="RFC 8555 7.5.1")
    if verified.payload is None:
        found = await anyio.to_thread.run_sync(acme_orders.challenge_view, ctx, account, challenge_id)
    else:
        found = await anyio.to_thread.run_sync(
            lambda: acme_orders.start_challenge(
                ctx, account, challenge_id, authz_base_url=f"{_base(request)}authz/", client=_client(request)
            )
        )
    authz_url = f"{_base(request)}authz/{found.authz_id}"
    headers = {"Link": f'<{authz_url}>;rel="up"'}
    if found.status == "processing":
        headers["Retry-After"] = RETRY_AFTER_SECONDS
    return JSONResponse(_challenge_body(request, found), headers=headers)


def _csr_der(payload: dict[str, Any]) -> bytes:
    csr = payload.get("csr")
    try:
        if not isinstance(csr, str):
            raise ValueError("no csr")
        return bytes(b64decode(csr))
    except (ValueError, TypeError):
        raise AcmeRefusal(ProblemType.BAD_CSR, "csr must be the base64url DER of a CSR", rule="RFC 8555 7.4") from None


@router.post("/order/{order_id}/finalize")
async def finalize(request: Request, order_id: AcmeId) -> JSONResponse:
    ctx, verified, account = await _verified(request, post_as_get=False)
    csr = _csr_der(verified.payload or {})
    account_spki = spki_sha256(verified.jwk.key)  # the account key may never be certified
    found = await anyio.to_thread.run_sync(
        lambda: acme_orders.finalize(
            ctx,
            account,
            order_id,
            csr,
            account_key_spki=account_spki,
            client=_client(request),
            account_uri=account_url(request, account.id),  # RFC 8657 accounturi
        )
    )
    return _order_response(request, found)


@router.post("/cert/{order_id}")
@router.post("/cert/{order_id}/{alternate}")
async def certificate(request: Request, order_id: AcmeId, alternate: int = 0) -> Response:
    """RFC 8555 7.4.2: the chain through our root; rel="alternate" links to the chains through the cross."""
    ctx, _, account = await _verified(request, post_as_get=True)
    chains = await anyio.to_thread.run_sync(acme_orders.certificate_chains, ctx, account, order_id)
    options = (chains.default, *chains.alternates)
    if not 0 <= alternate < len(options):
        raise AcmeRefusal(
            ProblemType.MALFORMED, "no such alternate chain", status=404, rule="RFC 8555 7.4.2", value=alternate
        )
    response = Response(options[alternate], media_type=_PEM_CHAIN)
    base = f"{_base(request)}cert/{order_id}"
    for index in range(len(options)):
        if index != alternate:
            response.headers.append("Link", f'<{base if index == 0 else f"{base}/{index}"}>;rel="alternate"')
    return response
