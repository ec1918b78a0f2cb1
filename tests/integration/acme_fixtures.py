"""ACME test harness: ecert's ACME server under uvicorn on 127.0.0.1, and a small josepy-built client.

The client signs with certbot's ``acme.jws`` (no JOSE by hand); negative tests take its JWS as a dict and
change one thing, so each refusal is caused by exactly the rule under test.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import josepy as jose
import pytest
from acme import jws as acme_jws
from acme import messages
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from sqlalchemy import func, select

from ecert.services.acme_accounts import EabMade, make_eab
from ecert.services.context import Context
from ecert.store import applications as store_apps
from ecert.store.models import AuditEvent
from ecert.store.models_acme import AcmeAccount, AcmeEabCredential
from ecert.web.app import create_app
from tests.conftest import FIXED_NOW
from tests.integration.dcv_fixtures import RunningApp, start_asgi
from tests.integration.foundation_fixtures import PASSPHRASE_ENV, make_ctx

EAB_SECRET = "acme-test-wrapping-secret"
ENV = {**PASSPHRASE_ENV, "ECERT_ACME_EAB_SECRET": EAB_SECRET, "ECERT_SESSION_SECRET": "acme-test-session"}


class Clock:
    """A clock the test moves: every context of one test reads it."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@dataclass
class AcmeServer:
    ctx: Context
    running: RunningApp
    clock: Clock

    @property
    def directory_url(self) -> str:
        return f"{self.running.url}/acme/directory"

    def url(self, path: str) -> str:
        return f"{self.running.url}/acme/{path}"


def serve(ctx: Context) -> RunningApp:
    return start_asgi(create_app(ctx.settings, ENV, context=ctx))


def add_application(ctx: Context, *, state: str = "approved", days_left: int = 300) -> str:
    """An application as the RA registered it, straight into the store (ACME needs no DCV to make an account)."""
    now = ctx.clock()
    reference = str(secrets.randbelow(9 * 10**8) + 10**8)
    with ctx.transaction() as session:
        store_apps.add_application(
            session,
            reference_number=reference,
            pin_hash="x",
            server_name=f"w{reference}.example.com",
            additional_names=[],
            cert_type="server",
            org_name_en="Example Company Limited",
            reg_doc_type="br",
            reg_doc_number="12345678",
            subscription_start=now - timedelta(days=1),
            subscription_end=now + timedelta(days=days_left),
            rep_email="webmaster@example.com",
            state=state,
            created_at=now,
            updated_at=now,
        )
    return reference


def new_eab(ctx: Context, reference: str | None = None) -> EabMade:
    return make_eab(ctx, reference or add_application(ctx), wrap_secret=EAB_SECRET, actor="operator:test")


def ec_key(curve: ec.EllipticCurve | None = None) -> jose.JWK:
    return jose.JWKEC(key=ec.generate_private_key(curve or ec.SECP256R1()))


def rsa_key() -> jose.JWK:
    return jose.JWKRSA(key=rsa.generate_private_key(public_exponent=65537, key_size=2048))


def _alg_for(key: jose.JWK) -> jose.JWASignature:
    if isinstance(key, jose.JWKRSA):
        return jose.RS256
    return jose.ES384 if key.key.curve.name == "secp384r1" else jose.ES256


@dataclass
class Client:
    """One ACME client key talking to one server; every method returns the raw httpx response."""

    base: str
    key: jose.JWK = field(default_factory=ec_key)
    kid: str | None = None
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=10, trust_env=False))

    def url(self, path: str) -> str:
        return f"{self.base}/acme/{path}"

    def nonce(self) -> str:
        return self.http.head(self.url("new-nonce")).headers["Replay-Nonce"]

    def jws(self, url: str, payload: Any, *, nonce: str | None = None, use_kid: bool | None = None) -> dict[str, Any]:
        """The flattened JWS of ``payload`` (bytes as is, None as POST-as-GET, else JSON) for ``url``."""
        raw = payload if isinstance(payload, bytes) else b"" if payload is None else json.dumps(payload).encode()
        kid = self.kid if (use_kid if use_kid is not None else self.kid is not None) else None
        signed = acme_jws.JWS.sign(
            raw,
            key=self.key,
            alg=_alg_for(self.key),
            nonce=jose.decode_b64jose(nonce or self.nonce()),
            url=url,
            kid=kid,
        )
        return dict(signed.to_partial_json(flat=True))

    def post(self, url: str, body: Any, *, content_type: str = "application/jose+json") -> httpx.Response:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        return self.http.post(url, content=data, headers={"Content-Type": content_type})

    def eab(self, made: EabMade, *, url: str | None = None, key: jose.JWK | None = None) -> dict[str, Any]:
        directory = messages.Directory({"newAccount": url or self.url("new-account")})
        return messages.ExternalAccountBinding.from_data(
            (key or self.key).public_key(), made.kid, made.hmac_key, directory
        )

    def new_account_body(self, made: EabMade | None, **extra: Any) -> dict[str, Any]:
        payload: dict[str, Any] = {"termsOfServiceAgreed": True, "contact": ["mailto:admin@example.com"], **extra}
        if made is not None:
            payload["externalAccountBinding"] = self.eab(made)
        return payload

    def register(self, made: EabMade) -> httpx.Response:
        response = self.post(self.url("new-account"), self.jws(self.url("new-account"), self.new_account_body(made)))
        if response.status_code in (200, 201):
            self.kid = response.headers["Location"]
        return response


def resign(jws: dict[str, Any], key: jose.JWK, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """``jws`` with its protected header changed by ``change`` (then signed again with ``key`` where it can be)."""
    header = json.loads(jose.b64decode(jws["protected"]))
    change(header)
    protected = jose.b64encode(json.dumps(header).encode()).decode()
    out = dict(jws, protected=protected)
    alg = header.get("alg")
    signer = {"RS256": jose.RS256, "ES256": jose.ES256, "ES384": jose.ES384}.get(alg)
    if signer is not None and _alg_for(key).name == alg:
        sig = signer.sign(key.key, f"{protected}.{jws['payload']}".encode())
        out["signature"] = jose.b64encode(sig).decode()
    return out


def db_state(ctx: Context) -> tuple[Any, ...]:
    """What a refused request must not change: accounts, credentials and the audit log (nonces aside), but for
    the refusal's own audit row (see :func:`refusals_logged`)."""
    with ctx.read() as session:
        accounts = session.execute(select(AcmeAccount.id, AcmeAccount.status).order_by(AcmeAccount.id)).all()
        creds = session.execute(
            select(AcmeEabCredential.kid, AcmeEabCredential.status).order_by(AcmeEabCredential.id)
        ).all()
        audit = session.scalar(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.event != "acme.request.refused")
        )
    return (tuple(accounts), tuple(creds), audit)


def refusals_logged(ctx: Context) -> list[str]:
    """The problem types of the refused ACME requests in the audit log, oldest first."""
    with ctx.read() as session:
        rows = session.scalars(
            select(AuditEvent.details).where(AuditEvent.event == "acme.request.refused").order_by(AuditEvent.id)
        ).all()
    return [str(details["problem"]) for details in rows]


URN = "urn:ietf:params:acme:error:"


def assert_refused(response: Any, status: int, problem: str, sent_nonce: str | None = None) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["type"] == URN + problem, response.json()
    fresh = response.headers.get("Replay-Nonce")
    assert fresh and fresh != sent_nonce


def nonce_of(jws: dict[str, Any]) -> str | None:
    nonce = json.loads(jose.b64decode(jws["protected"])).get("nonce")
    return None if nonce is None else str(nonce)


@pytest.fixture
def clock() -> Clock:
    return Clock(FIXED_NOW)


def _make_server(tmp_path: Path, db_url: str | None, clock: Clock, **overrides: Any) -> Iterator[AcmeServer]:
    ctx = make_ctx(tmp_path, db_url, **overrides)
    ctx.clock = clock
    running = serve(ctx)
    try:
        yield AcmeServer(ctx, running, clock)
    finally:
        running.stop()
        ctx.close()


@pytest.fixture
def acme_server(tmp_path: Path, db_url: str, clock: Clock) -> Iterator[AcmeServer]:
    """ecert's ACME server on SQLite and PostgreSQL in turn, nonces in the database."""
    yield from _make_server(tmp_path, db_url, clock)


@pytest.fixture
def sqlite_acme_server(tmp_path: Path, clock: Clock) -> Iterator[AcmeServer]:
    yield from _make_server(tmp_path, None, clock)
