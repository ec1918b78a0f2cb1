"""The ACME front door's resources so far: directory, newNonce, newAccount and the account URL (RFC 8555 7).

Each handler parses (web/acme/verify.py), calls one service and renders; :class:`AcmeRoute` turns every
refusal into an RFC 8555 6.7 problem and puts a fresh Replay-Nonce and the directory link on every answer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Coroutine
from functools import partial
from typing import Any

import anyio
from acme import messages
from fastapi import Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.routing import compile_path

from ...core.acme_contacts import check_contacts
from ...core.acme_rules import PROFILE_DESCRIPTIONS, AcmeRefusal, ProblemType
from ...services import acme_accounts, acme_limits, acme_nonces
from ...services.acme_accounts import AccountView, NewAccountRequest
from ...services.context import Context
from ...services.refusals import record_refusal
from ..routing import PrefixRouter
from .problems import ACME_ERROR_URN, problem_for_exception
from .verify import AcmeId, Verified, account_url, parse_eab, thumbprint, verify_post

__all__ = ["AcmeRoute", "router"]


def _ctx(request: Request) -> Context:
    ctx = request.app.state.ctx
    assert isinstance(ctx, Context)
    return ctx


def _directory_url(request: Request) -> str:
    return f"{request.base_url}acme/directory"


ACME_PREFIX = "/acme"
# Every ACME resource's path (below ACME_PREFIX) and methods, as its route is made: web/acme/fallback.py tells a
# method a resource does not take (405) from a path that is no resource (404) with it.
_RESOURCES: list[tuple[re.Pattern[str], frozenset[str]]] = []


def methods_at(path: str) -> frozenset[str]:
    """The methods the ACME resources at ``path`` (below ACME_PREFIX) take; empty when none is there."""
    found: frozenset[str] = frozenset()
    for pattern, methods in _RESOURCES:
        if pattern.match(path):
            found |= methods
    return found


class AcmeRoute(APIRoute):
    """A route whose refusals become ACME problems and whose every answer carries a fresh Replay-Nonce."""

    is_resource = True  # the fallback's own catch-all route says False

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        if self.is_resource:
            _RESOURCES.append((compile_path(path.removeprefix(ACME_PREFIX))[0], frozenset(self.methods or ())))

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        inner = super().get_route_handler()

        async def handler(request: Request) -> Response:
            try:
                response = await inner(request)
            except Exception as exc:  # noqa: BLE001 - unknown errors are re-raised below
                problem = problem_for_exception(exc)
                if problem is None:
                    raise
                await _audit_refusal(request, exc, problem)
                response = problem
            # RFC 8555 6.5: a nonce on every response, errors included, so a client can retry at once.
            # Sealing a nonce is an HMAC, no I/O: done here, not in a thread (a hop cost more than the HMAC).
            response.headers["Replay-Nonce"] = acme_nonces.new_nonce(_ctx(request))
            response.headers.append("Link", f'<{_directory_url(request)}>;rel="index"')  # RFC 8555 7.1
            response.headers.setdefault("Cache-Control", "no-store")
            return response

        return handler


async def _audit_refusal(request: Request, exc: Exception, problem: JSONResponse) -> None:
    """BR 5.4.1: a refused ACME request is an audit event (what was refused, why, from where; never what was
    sent), unless the service that refused it logged it already. services/refusals thins a flood per source.

    POSTs only: every ACME request that acts is a signed POST, and a GET (the directory, a nonce, renewalInfo,
    or a GET where POST-as-GET is needed, 405) changes nothing, not even the log (issue 10 point 4).
    """
    if request.method != "POST" or problem.status_code >= 500 or getattr(exc, "audited", False):
        return
    body = json.loads(bytes(problem.body))
    source = request.client.host if request.client else "unknown"
    details = {
        "problem": str(body.get("type", "")).removeprefix(ACME_ERROR_URN),
        "status": problem.status_code,
        "method": request.method,
        "why": str(body.get("detail", ""))[:300],
    }
    await anyio.to_thread.run_sync(
        partial(
            record_refusal,
            _ctx(request),
            event="acme.request.refused",
            actor=f"acme:client:{source}",
            subject=request.url.path[:200],
            details=details,
        )
    )


router = PrefixRouter(prefix=ACME_PREFIX, route_class=AcmeRoute, include_in_schema=False)


@router.get("/directory")
async def directory(request: Request) -> JSONResponse:
    """RFC 8555 7.1.1, with meta.profiles (draft-aaron-acme-profiles) and required EAB (7.3.4)."""
    base = f"{request.base_url}acme/"
    meta = messages.Directory.Meta(
        external_account_required=True,
        profiles=dict(PROFILE_DESCRIPTIONS),
        caa_identities=tuple(_ctx(request).settings.caa_identities),
    )
    body = {"newNonce": base + "new-nonce", "newAccount": base + "new-account", "meta": meta.to_partial_json()}
    body["newOrder"] = base + "new-order"  # web/acme/orders.py
    body |= {"revokeCert": base + "revoke-cert", "keyChange": base + "key-change", "renewalInfo": base + "renewal-info"}
    return JSONResponse(body, headers={"Cache-Control": "public, max-age=0, no-cache"})


@router.api_route("/new-nonce", methods=["GET", "HEAD"])
async def new_nonce(request: Request) -> Response:
    """RFC 8555 7.2: HEAD answers 200, GET 204; the nonce itself is added by AcmeRoute, never cached."""
    return Response(status_code=200 if request.method == "HEAD" else 204, headers={"Cache-Control": "no-store"})


def _account_body(account: AccountView, request: Request) -> dict[str, Any]:
    orders = f"{request.base_url}acme/orders/{account.id}"  # RFC 8555 7.1.2, served by web/acme/orders.py
    return {"status": account.status, "contact": list(account.contact), "orders": orders}


def _new_account_request(request: Request, verified: Verified) -> NewAccountRequest:
    """RFC 8555 7.3: the newAccount body, read with acme.messages; the binding checked by verify.parse_eab."""
    try:
        body = messages.Registration.from_json(verified.payload or {})
    except Exception as exc:  # noqa: BLE001 - josepy raises several kinds for a bad body
        raise AcmeRefusal(
            ProblemType.MALFORMED, f"the newAccount body is not valid: {str(exc)[:200]}", rule="RFC 8555 7.3"
        ) from None
    eab_raw = (verified.payload or {}).get("externalAccountBinding")
    eab = None if eab_raw is None else parse_eab(eab_raw, new_account_url=verified.url, outer=verified.jwk)
    return NewAccountRequest(
        jwk=verified.jwk.to_partial_json(),
        thumbprint=thumbprint(verified.jwk),
        contact=check_contacts((verified.payload or {}).get("contact")),
        only_return_existing=bool(body.only_return_existing),
        eab=eab,
        client=request.client.host if request.client else "unknown",
    )


@router.post("/new-account")
async def new_account(request: Request) -> JSONResponse:
    ctx = _ctx(request)
    verified = await verify_post(request, ctx, jwk_allowed=True, post_as_get=False)
    wanted = _new_account_request(request, verified)
    if wanted.eab is not None and not wanted.only_return_existing:  # an attempt to create: issue 13 point 8
        await anyio.to_thread.run_sync(acme_limits.spend_new_account, ctx, wanted.client)
    wrap_secret = request.app.state.env.get(ctx.settings.acme_eab_secret_env)
    account, created = await anyio.to_thread.run_sync(
        lambda: acme_accounts.new_account(ctx, wanted, wrap_secret=wrap_secret)
    )
    return JSONResponse(
        _account_body(account, request),
        status_code=201 if created else 200,
        headers={"Location": account_url(request, account.id)},
    )


@router.post("/acct/{account_id}")
async def account(request: Request, account_id: AcmeId) -> JSONResponse:
    """RFC 8555 7.3.2 and 7.3.6: read the account (POST-as-GET or {}), update its contacts, or deactivate it."""
    ctx = _ctx(request)
    verified = await verify_post(request, ctx, jwk_allowed=False, post_as_get=None)
    assert verified.account is not None
    if verified.account.id != account_id:
        raise AcmeRefusal(
            ProblemType.UNAUTHORIZED,
            "the request is signed by another account's key",
            status=403,
            rule="RFC 8555 7.3.2",
            value=account_id,
        )
    payload = verified.payload or {}
    status = payload.get("status")
    if status not in (None, "deactivated"):
        raise AcmeRefusal(
            ProblemType.MALFORMED,
            'a client may only deactivate its account ({"status": "deactivated"})',
            rule="RFC 8555 7.3.6",
            value=str(status)[:40],
        )
    client = request.client.host if request.client else "unknown"
    found = verified.account
    if status == "deactivated":
        found = await anyio.to_thread.run_sync(lambda: acme_accounts.deactivate_account(ctx, account_id, client=client))
    elif "contact" in payload:  # RFC 8555 7.3.2; any other field (orders, termsOfServiceAgreed...) is ignored
        contact = check_contacts(payload["contact"])
        found = await anyio.to_thread.run_sync(
            lambda: acme_accounts.update_contact(ctx, account_id, contact, client=client)
        )
    return JSONResponse(_account_body(found, request), headers={"Location": account_url(request, account_id)})
