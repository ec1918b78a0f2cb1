"""Every JWS rule of web/acme/verify.py, one refusal each, against ecert's ACME server on loopback.

Each case checks the RFC 8555 6.7 problem type and HTTP status, a fresh Replay-Nonce on the error, and that
no account, credential or audit row changed.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import josepy as jose
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select

from ecert.store.models import AuditEvent
from tests.integration.acme_fixtures import (
    URN,
    AcmeServer,
    Client,
    assert_refused,
    db_state,
    ec_key,
    new_eab,
    nonce_of,
    refusals_logged,
    resign,
)

# --- refusals on newAccount (jwk requests) ------------------------------------------------------------


def _with(header_change: Callable[[dict[str, Any]], None]) -> Callable[[Client, AcmeServer], Any]:
    def make(client: Client, server: AcmeServer) -> Any:
        url = client.url("new-account")
        jws = resign(client.jws(url, client.new_account_body(new_eab(server.ctx))), client.key, header_change)
        return client.post(url, jws), nonce_of(jws)

    return make


def _body_change(change: Callable[[dict[str, Any]], dict[str, Any] | bytes], **post: Any) -> Callable[..., Any]:
    def make(client: Client, server: AcmeServer) -> Any:
        url = client.url("new-account")
        jws = client.jws(url, client.new_account_body(new_eab(server.ctx)))
        return client.post(url, change(jws), **post), nonce_of(jws)

    return make


def _bad_signature(jws: dict[str, Any]) -> dict[str, Any]:
    sig = bytearray(jose.b64decode(jws["signature"]))
    sig[5] ^= 0xFF
    return dict(jws, signature=jose.b64encode(bytes(sig)).decode())


def _replayed(client: Client, server: AcmeServer) -> Any:
    url = client.url("new-account")
    nonce = client.nonce()
    first = client.jws(url, {"onlyReturnExisting": True}, nonce=nonce)
    assert client.post(url, first).json()["type"] == URN + "accountDoesNotExist"  # the nonce is now used
    again = client.jws(url, client.new_account_body(new_eab(server.ctx)), nonce=nonce)
    return client.post(url, again), nonce


def _expired(client: Client, server: AcmeServer) -> Any:
    url = client.url("new-account")
    jws = client.jws(url, client.new_account_body(new_eab(server.ctx)))
    server.clock.advance(timedelta(hours=1, seconds=1))  # core.acme_rules.NONCE_LIFETIME
    return client.post(url, jws), nonce_of(jws)


def _unknown_nonce(client: Client, server: AcmeServer) -> Any:
    url = client.url("new-account")
    jws = client.jws(url, client.new_account_body(new_eab(server.ctx)), nonce=jose.b64encode(b"x" * 16).decode())
    return client.post(url, jws), None


def _empty_payload(client: Client, server: AcmeServer) -> Any:
    url = client.url("new-account")
    jws = client.jws(url, None)
    return client.post(url, jws), nonce_of(jws)


def _deep_payload(client: Client, server: AcmeServer) -> Any:
    """A signed payload nested deeper than the JSON parser recurses (RecursionError was a 500)."""
    url = client.url("new-account")
    new_eab(server.ctx)
    jws = client.jws(url, b"[" * 20_000 + b"]" * 20_000)
    return client.post(url, jws), nonce_of(jws)


def _too_large(client: Client, server: AcmeServer) -> Any:
    url = client.url("new-account")
    jws = client.jws(url, client.new_account_body(new_eab(server.ctx), padding="x" * 300_000))
    return client.post(url, jws), nonce_of(jws)


def _get(client: Client, server: AcmeServer) -> Any:
    return client.http.get(client.url("new-account")), None


def _es384_on_p256(header: dict[str, Any]) -> None:
    header["alg"] = "ES384"


CASES: list[tuple[str, Callable[[Client, AcmeServer], Any], int, str]] = [
    ("content type not jose+json", _body_change(lambda j: j, content_type="application/json"), 415, "malformed"),
    ("unprotected header", _body_change(lambda j: dict(j, header={"kid": "x"})), 400, "malformed"),
    (
        "general serialization",
        _body_change(
            lambda j: {
                "payload": j["payload"],
                "signatures": [{"protected": j["protected"], "signature": j["signature"]}],
            }
        ),
        400,
        "malformed",
    ),
    ("two signatures' worth of fields", _body_change(lambda j: dict(j, extra="x")), 400, "malformed"),
    ("not JSON", _body_change(lambda j: b"{not json"), 400, "malformed"),
    ("JSON nested past the parser's depth", _body_change(lambda j: b"[" * 20_000 + b"]" * 20_000), 400, "malformed"),
    ("payload nested past the parser's depth", _deep_payload, 400, "malformed"),
    ("alg none", _with(lambda h: h.update(alg="none")), 400, "badSignatureAlgorithm"),
    ("alg HS256 (a MAC)", _with(lambda h: h.update(alg="HS256")), 400, "badSignatureAlgorithm"),
    ("alg not matching the key", _with(_es384_on_p256), 400, "badSignatureAlgorithm"),
    ("jwk and kid", _with(lambda h: h.update(kid="http://127.0.0.1/acme/acct/1")), 400, "malformed"),
    ("neither jwk nor kid", _with(lambda h: h.pop("jwk")), 400, "malformed"),
    ("bad signature", _body_change(_bad_signature), 400, "malformed"),
    ("no nonce", _with(lambda h: h.pop("nonce")), 400, "badNonce"),
    ("unknown nonce", _unknown_nonce, 400, "badNonce"),
    ("replayed nonce", _replayed, 400, "badNonce"),
    ("expired nonce", _expired, 400, "badNonce"),
    (
        "url of another resource",
        _with(lambda h: h.update(url=h["url"].replace("new-account", "new-order"))),
        403,
        "unauthorized",
    ),
    ("empty payload where a body is needed", _empty_payload, 400, "malformed"),
    ("GET on a POST resource", _get, 405, "malformed"),
    ("body over the cap", _too_large, 413, "malformed"),
]


@pytest.mark.parametrize(("case", "make", "status", "problem"), CASES, ids=[c[0] for c in CASES])
def test_new_account_refusal(
    acme_server: AcmeServer, case: str, make: Callable[..., Any], status: int, problem: str
) -> None:
    client = Client(acme_server.running.url)
    new_eab(acme_server.ctx)  # the credentials table is not empty, so "unchanged" means something
    before = db_state(acme_server.ctx)
    response, sent_nonce = make(client, acme_server)
    assert_refused(response, status, problem, sent_nonce)
    assert db_state(acme_server.ctx)[0] == before[0]  # no account
    if case == "GET on a POST resource":
        assert refusals_logged(acme_server.ctx) == []  # a GET writes nothing, not even its refusal (issue 10)
    else:
        assert refusals_logged(acme_server.ctx)[-1] == problem  # BR 5.4.1: the refusal is in the audit log
    if case not in {"replayed nonce"}:  # the other cases make one credential each, as the test's own setup
        assert [c for c in db_state(acme_server.ctx)[1] if c[1] != "unused"] == []


# --- refusals on kid requests (the account URL) -------------------------------------------------------


@pytest.fixture
def registered(acme_server: AcmeServer) -> Client:
    client = Client(acme_server.running.url)
    assert client.register(new_eab(acme_server.ctx)).status_code == 201
    return client


def test_unknown_account_kid(acme_server: AcmeServer, registered: Client) -> None:
    before = db_state(acme_server.ctx)
    url = registered.kid
    assert url is not None
    ghost = url.rsplit("/", 1)[0] + "/987654"
    jws = registered.jws(ghost, None)
    jws = resign(jws, registered.key, lambda h: h.update(kid=ghost))
    response = registered.post(ghost, jws)
    assert_refused(response, 400, "accountDoesNotExist", nonce_of(jws))
    assert db_state(acme_server.ctx) == before
    assert refusals_logged(acme_server.ctx) == ["accountDoesNotExist"]


def test_kid_of_another_account_is_unauthorized(acme_server: AcmeServer, registered: Client) -> None:
    other = Client(acme_server.running.url)
    assert other.register(new_eab(acme_server.ctx)).status_code == 201
    before = db_state(acme_server.ctx)
    assert registered.kid is not None
    jws = other.jws(registered.kid, None)
    response = other.post(registered.kid, jws)
    assert_refused(response, 403, "unauthorized", nonce_of(jws))
    assert db_state(acme_server.ctx) == before


def test_jwk_where_a_kid_is_required(acme_server: AcmeServer, registered: Client) -> None:
    before = db_state(acme_server.ctx)
    assert registered.kid is not None
    jws = registered.jws(registered.kid, None, use_kid=False)
    response = registered.post(registered.kid, jws)
    assert_refused(response, 400, "malformed", nonce_of(jws))
    assert db_state(acme_server.ctx) == before


def test_key_that_does_not_match_the_account(acme_server: AcmeServer, registered: Client) -> None:
    """A kid with a signature by some other key: the signature check fails (RFC 8555 6.2)."""
    before = db_state(acme_server.ctx)
    assert registered.kid is not None
    impostor = Client(acme_server.running.url, key=ec_key(), kid=registered.kid)
    jws = impostor.jws(registered.kid, None)
    response = impostor.post(registered.kid, jws)
    assert_refused(response, 400, "malformed", nonce_of(jws))
    assert db_state(acme_server.ctx) == before


def test_deactivated_account_is_refused(acme_server: AcmeServer, registered: Client) -> None:
    assert registered.kid is not None
    done = registered.post(registered.kid, registered.jws(registered.kid, {"status": "deactivated"}))
    assert done.status_code == 200 and done.json()["status"] == "deactivated"
    before = db_state(acme_server.ctx)
    jws = registered.jws(registered.kid, None)
    response = registered.post(registered.kid, jws)
    assert_refused(response, 403, "unauthorized", nonce_of(jws))
    assert db_state(acme_server.ctx) == before


def test_account_post_as_get_and_p384_key(acme_server: AcmeServer) -> None:
    client = Client(acme_server.running.url, key=ec_key(ec.SECP384R1()))
    created = client.register(new_eab(acme_server.ctx))
    assert created.status_code == 201
    assert client.kid is not None
    read = client.post(client.kid, client.jws(client.kid, None))
    orders = client.url(f"orders/{client.kid.rsplit('/', 1)[-1]}")  # RFC 8555 7.1.2
    assert read.status_code == 200
    assert read.json() == {"status": "valid", "contact": ["mailto:admin@example.com"], "orders": orders}
    assert read.headers["Replay-Nonce"] and read.headers["Location"] == client.kid


def test_a_flood_of_refusals_is_thinned_and_counted(acme_server: AcmeServer) -> None:
    """Anyone can send bad requests: past 10 a minute from one source they are counted, not each written, and
    the next row written says how many were left out."""
    client = Client(acme_server.running.url)
    url = client.url("new-account")
    for _ in range(25):
        assert client.post(url, {"protected": "e30", "payload": "", "signature": ""}).status_code == 400
    assert len(refusals_logged(acme_server.ctx)) == 10
    acme_server.clock.advance(timedelta(minutes=1))
    assert client.post(url, {"protected": "e30", "payload": "", "signature": ""}).status_code == 400
    with acme_server.ctx.read() as session:
        last = session.scalars(
            select(AuditEvent.details).where(AuditEvent.event == "acme.request.refused").order_by(AuditEvent.id.desc())
        ).first()
    assert last is not None and last["refusals_left_out_before"] == 15
