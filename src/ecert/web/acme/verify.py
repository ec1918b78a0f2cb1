"""The one module that checks every ACME POST (RFC 8555 6), in the order of Boulder's ``wfe2/verify.go``.

1. Content-Type application/jose+json (415); the body under the cap (413).
2. Flattened JSON serialization only: no unprotected ``header``, no ``signatures`` array, one signature.
3. ``alg`` in the allow-list (badSignatureAlgorithm).
4. ``jwk`` xor ``kid``; ``jwk`` only where the resource takes one (malformed).
5. ``kid`` names a known, valid account (accountDoesNotExist / unauthorized); ``alg`` fits the key.
6. The signature verifies (malformed).
7. The nonce is present, unused and unexpired (badNonce).
8. ``url`` is this request's URL (unauthorized).
9. The payload: empty for POST-as-GET, a JSON object otherwise (malformed).

All JOSE is josepy's (and certbot's ``acme.jws``); this module only decides what to accept.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Annotated, Any

import anyio
from acme import jws as acme_jws
from cryptography.hazmat.primitives import hashes
from fastapi import Path, Request
from josepy.b64 import b64decode, b64encode
from josepy.errors import DeserializationError
from josepy.jwk import JWK, JWKOct

from ...core.acme_rules import (
    AcmeRefusal,
    ProblemType,
    check_alg,
    check_alg_listed,
    check_eab_alg,
    check_key_locator,
    check_url,
)
from ...services import acme_accounts, acme_nonces
from ...services.acme_accounts import AccountView, EabBinding
from ...services.context import Context

__all__ = [
    "MAX_BODY",
    "AcmeId",
    "Verified",
    "json_or_malformed",
    "account_url",
    "parse_eab",
    "thumbprint",
    "verify_post",
]

# The largest ACME request: a finalize with a 64 KiB CSR, base64url twice over, fits with room to spare.
MAX_BODY = 256 * 1024
_JOSE_JSON = "application/jose+json"
_FLATTENED_FIELDS = frozenset({"protected", "payload", "signature"})


@dataclass(frozen=True)
class Verified:
    """A request that passed every check: the payload (None for POST-as-GET), the key, the account if any."""

    payload: dict[str, Any] | None
    jwk: JWK
    account: AccountView | None
    url: str


def _malformed(
    message: str, *, rule: str = "RFC 8555 6.2", value: object | None = None, status: int = 400
) -> AcmeRefusal:
    return AcmeRefusal(ProblemType.MALFORMED, message, rule=rule, value=value, status=status)


def account_url(request: Request, account_id: int) -> str:
    return f"{request.base_url}acme/acct/{account_id}"


def thumbprint(jwk: JWK) -> str:
    """RFC 7638 SHA-256 thumbprint, base64url: what identifies an account key."""
    return b64encode(jwk.thumbprint(hash_function=hashes.SHA256)).decode()


# --- 1. transport ---------------------------------------------------------------------------------


def _check_content_type(request: Request) -> None:
    """RFC 8555 6.2: requests are application/jose+json; anything else is 415."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != _JOSE_JSON:
        raise _malformed(f"Content-Type must be {_JOSE_JSON}", value=media_type or None, status=415)


async def _read_body(request: Request) -> bytes:
    """The body, refused with 413 once it passes MAX_BODY (declared or streamed), never held whole beyond it."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        raise _malformed(f"the request body is over {MAX_BODY} bytes", value=int(declared), status=413)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise _malformed(f"the request body is over {MAX_BODY} bytes", value=size, status=413)
        chunks.append(chunk)
    return b"".join(chunks)


# --- 2-3. serialization and algorithm --------------------------------------------------------------


def json_or_malformed(raw: bytes | str, what: str, *, rule: str = "RFC 8555 6.2") -> Any:
    """``raw`` as JSON, or a malformed problem saying ``what`` is not JSON. Nesting too deep for the parser is
    bad input too: RecursionError escaped as a 500 on a body of 20,000 opening brackets."""
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise _malformed(f"{what} is not JSON", rule=rule) from None


def _flattened(body: bytes) -> dict[str, Any]:
    """RFC 8555 6.2: the flattened JSON serialization, every header field protected, exactly one signature."""
    obj = json_or_malformed(body, "the body")
    if not isinstance(obj, dict):
        raise _malformed("the body is not a JWS object")
    if "signatures" in obj:
        raise _malformed("only the flattened JWS serialization is accepted, not a signatures array", value="signatures")
    if "header" in obj:  # josepy would merge it silently; RFC 8555 6.2 wants every field integrity-protected
        raise _malformed("the JWS has an unprotected header", value="header")
    if set(obj) != _FLATTENED_FIELDS:
        raise _malformed(
            "a flattened JWS has exactly protected, payload and signature", value=sorted(set(obj) ^ _FLATTENED_FIELDS)
        )
    return obj


def _protected_header(obj: dict[str, Any]) -> dict[str, Any]:
    try:
        encoded = b64decode(obj["protected"])
    except (ValueError, TypeError):
        raise _malformed("the protected header is not base64url JSON") from None
    header = json_or_malformed(encoded, "the protected header")
    if not isinstance(header, dict):
        raise _malformed("the protected header is not a JSON object")
    return header


def _parse(obj: dict[str, Any]) -> acme_jws.JWS:
    try:
        parsed: acme_jws.JWS = acme_jws.JWS.from_json(obj)
    except (DeserializationError, ValueError, TypeError) as exc:
        raise _malformed(f"the JWS cannot be parsed: {str(exc)[:200]}") from None
    if len(parsed.signatures) != 1:
        raise _malformed("a request carries exactly one signature", value=len(parsed.signatures))
    return parsed


def _jwk(value: Any) -> JWK:
    key = JWK.from_json(value)
    if not isinstance(key, JWK):
        raise _malformed("not a JWK")
    return key


def _kty_crv(jwk_json: dict[str, Any]) -> tuple[str, str | None]:
    return str(jwk_json.get("kty")), jwk_json.get("crv")


# --- 4-5. who signed --------------------------------------------------------------------------------

_ACCOUNT_PATH = re.compile(r"acme/acct/([1-9][0-9]{0,17})")
# An id in an ACME URL, bounded as the kid's pattern above is: a larger one never reaches a query (SQLite raised
# OverflowError on it, PostgreSQL a range error, and the client got a 500 instead of a problem).
AcmeId = Annotated[int, Path(ge=1, le=10**18 - 1)]


def _account_id_from_kid(request: Request, kid: str) -> int:
    prefix = str(request.base_url)
    match = _ACCOUNT_PATH.fullmatch(kid[len(prefix) :]) if kid.startswith(prefix) else None
    if match is None:
        raise _malformed("kid is not an account URL of this server", value=kid[:200])
    return int(match.group(1))


def _locator(request: Request, header: dict[str, Any], parsed: acme_jws.JWS, jwk_allowed: bool | None) -> JWK | int:
    """Step 4: the key the request carries (``jwk``) or the account id its ``kid`` names; no database yet."""
    # jwk_allowed None: either locator (RFC 8555 7.6 revokeCert, by an account or by the certificate's key)
    either = "jwk" in header if jwk_allowed is None else jwk_allowed
    check_key_locator(has_jwk="jwk" in header, has_kid="kid" in header, jwk_allowed=either)
    if "jwk" not in header:
        return _account_id_from_kid(request, str(header["kid"]))
    key = parsed.signature.combined.jwk
    if not isinstance(key, JWK):
        raise _malformed("the jwk cannot be read")
    check_alg(header["alg"], *_kty_crv(key.to_partial_json()))
    return key


def _signed_and_fresh(
    ctx: Context, header: dict[str, Any], parsed: acme_jws.JWS, locator: JWK | int
) -> tuple[JWK, AccountView | None]:
    """Steps 5-7 in one trip to a worker thread: the account, the signature, the nonce.

    Each step needs the one before it and two of them read or write the database; as separate hops from the
    event loop to a thread and back they cost more CPU than the checks themselves (bench/acme.py).
    """
    key, account = (locator, None) if isinstance(locator, JWK) else _account_key(ctx, header, locator)
    _check_signature(parsed, key)
    _check_nonce(ctx, header)
    return key, account


def _account_key(ctx: Context, header: dict[str, Any], account_id: int) -> tuple[JWK, AccountView]:
    """Step 5: ``kid`` names a known, valid account, and ``alg`` fits its key."""
    account = acme_accounts.account_view(ctx, account_id)
    if account is None:
        raise AcmeRefusal(
            ProblemType.ACCOUNT_DOES_NOT_EXIST, "no account at this kid", rule="RFC 8555 6.2", value=account_id
        )
    if account.status != "valid":
        raise AcmeRefusal(
            ProblemType.UNAUTHORIZED,
            f"the account is {account.status}",
            status=403,
            rule="RFC 8555 7.1.6",
            value=account.status,
        )
    check_alg(header["alg"], *_kty_crv(account.jwk))
    return _jwk(account.jwk), account


# --- 6-9. signature, nonce, url, payload -------------------------------------------------------------


def _check_signature(parsed: acme_jws.JWS, key: JWK) -> None:
    """RFC 8555 6.2: the JWS verifies with the key named by jwk or kid."""
    try:
        good = parsed.verify(key)
    except Exception:  # noqa: BLE001 - a malformed signature value raises inside the crypto library
        good = False
    if not good:
        raise _malformed("the JWS signature does not verify")


def _check_nonce(ctx: Context, header: dict[str, Any]) -> None:
    """RFC 8555 6.5: each nonce once, and only while it lives (badNonce)."""
    nonce = header.get("nonce")
    if not isinstance(nonce, str) or not nonce:
        raise AcmeRefusal(ProblemType.BAD_NONCE, "the protected header has no nonce", rule="RFC 8555 6.5")
    if not acme_nonces.use_nonce(ctx, nonce):
        raise AcmeRefusal(
            ProblemType.BAD_NONCE, "the nonce is unknown, used or expired", rule="RFC 8555 6.5", value=nonce[:64]
        )


def _payload(parsed: acme_jws.JWS, post_as_get: bool | None) -> dict[str, Any] | None:
    """RFC 8555 6.3: POST-as-GET carries an empty payload; other requests a JSON object."""
    raw = parsed.payload
    if raw == b"":
        if post_as_get is False:
            raise _malformed("this request needs a JSON payload", rule="RFC 8555 6.3")
        return None
    if post_as_get is True:
        raise _malformed("POST-as-GET takes an empty payload", rule="RFC 8555 6.3", value=len(raw))
    payload = json_or_malformed(raw, "the payload", rule="RFC 8555 6.3")
    if not isinstance(payload, dict):
        raise _malformed("the payload is not a JSON object", rule="RFC 8555 6.3")
    return payload


async def verify_post(
    request: Request, ctx: Context, *, jwk_allowed: bool | None, post_as_get: bool | None
) -> Verified:
    """Run every check, in order; raise :class:`AcmeRefusal` at the first that fails."""
    _check_content_type(request)
    obj = _flattened(await _read_body(request))
    header = _protected_header(obj)
    check_alg_listed(header.get("alg"))
    parsed = _parse(obj)
    locator = _locator(request, header, parsed, jwk_allowed)
    key, account = await anyio.to_thread.run_sync(_signed_and_fresh, ctx, header, parsed, locator)
    check_url(header.get("url"), str(request.url))
    return Verified(payload=_payload(parsed, post_as_get), jwk=key, account=account, url=str(request.url))


# --- the external account binding inside newAccount ------------------------------------------------


def parse_eab(raw: object, *, new_account_url: str, outer: JWK) -> EabBinding:
    """RFC 8555 7.3.4: a flattened JWS, MAC-signed, kid and url protected, no nonce, payload = the account key."""
    if not isinstance(raw, dict):
        raise _malformed("externalAccountBinding is not a JWS object", rule="RFC 8555 7.3.4")
    obj = _flattened(json.dumps(raw).encode())
    header = _protected_header(obj)
    check_eab_alg(header.get("alg"))
    if "nonce" in header or not isinstance(header.get("kid"), str):
        raise _malformed("the binding's header needs a kid and must not have a nonce", rule="RFC 8555 7.3.4")
    if header.get("url") != new_account_url:
        raise _malformed("the binding's url is not the newAccount URL", rule="RFC 8555 7.3.4", value=header.get("url"))
    parsed = _parse(obj)
    try:
        inner_key = _jwk(json_or_malformed(parsed.payload, "the binding's payload", rule="RFC 8555 7.3.4"))
    except (ValueError, TypeError, DeserializationError):
        raise _malformed("the binding's payload is not a JWK", rule="RFC 8555 7.3.4") from None
    if thumbprint(inner_key) != thumbprint(outer):
        raise _malformed("the binding's payload is not the account key of the request", rule="RFC 8555 7.3.4")

    def verify_mac(hmac_key: bytes) -> bool:
        try:
            return bool(parsed.verify(JWKOct(key=hmac_key)))
        except Exception:  # noqa: BLE001 - a malformed MAC value raises inside josepy
            return False

    return EabBinding(kid=header["kid"], verify_mac=verify_mac)
