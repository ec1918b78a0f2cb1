"""Helpers for the ACME order tests: an application with chosen names, a validated order, the DB state.

Functions only (the fixtures live in the test modules); the ACME server itself is acme_fixtures' harness.
"""

from __future__ import annotations

import secrets
import time
from datetime import timedelta
from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from josepy.b64 import b64encode
from josepy.jwk import JWK
from sqlalchemy import func, select

from ecert.core.acme_orders import dns01_txt_value, key_authorization
from ecert.services.context import Context
from ecert.store import applications as store_apps
from ecert.store.models import Certificate, DomainValidation
from ecert.store.models_acme_orders import AcmeAuthorization, AcmeChallenge, AcmeOrder
from tests.integration.acme_fixtures import Client
from tests.integration.dcv_fixtures import KnotDns

__all__ = [
    "add_named_application",
    "b64_csr",
    "make_csr",
    "order_state",
    "publish_dns01",
    "ready_order",
    "thumbprint",
    "unique_label",
    "wait_status",
]


def unique_label(prefix: str = "acme") -> str:
    return f"{prefix}-{secrets.token_hex(5)}"


def add_named_application(
    ctx: Context, server_name: str, additional: tuple[str, ...] = (), *, cert_type: str = "server"
) -> str:
    """An approved application covering exactly these names, as the RA registered it."""
    now = ctx.clock()
    reference = str(secrets.randbelow(9 * 10**8) + 10**8)
    with ctx.transaction() as session:
        store_apps.add_application(
            session,
            reference_number=reference,
            pin_hash="x",
            server_name=server_name,
            additional_names=list(additional),
            cert_type=cert_type,
            org_name_en="Example Company Limited",
            reg_doc_type="br",
            reg_doc_number="12345678",
            subscription_start=now - timedelta(days=1),
            subscription_end=now + timedelta(days=300),
            rep_email="webmaster@example.com",
            state="approved",
            created_at=now,
            updated_at=now,
        )
    return reference


def make_csr(names: list[str], key: Any = None) -> x509.CertificateSigningRequest:
    key = key or ec.generate_private_key(ec.SECP256R1())
    san = x509.SubjectAlternativeName([x509.DNSName(n) for n in names])
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .add_extension(san, False)
        .sign(key, hashes.SHA256())
    )


def b64_csr(csr: x509.CertificateSigningRequest) -> str:
    return b64encode(csr.public_bytes(serialization.Encoding.DER)).decode()


def thumbprint(key: JWK) -> str:
    return b64encode(key.thumbprint(hash_function=hashes.SHA256)).decode()


def publish_dns01(knot: KnotDns, name: str, token: str, key: JWK) -> None:
    """The TXT record dns-01 asks for (RFC 8555 8.4), at _acme-challenge of the base name."""
    base = name.removeprefix("*.")
    value = dns01_txt_value(key_authorization(token, thumbprint(key)))
    knot.add_txt(f"_acme-challenge.{base}", value)  # added, not replaced: a wildcard and its base share the name


def wait_status(client: Client, url: str, wanted: set[str], timeout: float = 30.0) -> dict[str, Any]:
    """POST-as-GET ``url`` until its status is one of ``wanted``."""
    deadline = time.monotonic() + timeout
    while True:
        body: dict[str, Any] = client.post(url, client.jws(url, None)).json()
        if body.get("status") in wanted or time.monotonic() > deadline:
            return body
        time.sleep(0.2)


def ready_order(
    client: Client, knot: KnotDns, names: list[str], profile: str | None = None
) -> tuple[str, dict[str, Any]]:
    """An order whose authorizations all passed dns-01: (order URL, order body with status ready)."""
    payload: dict[str, Any] = {"identifiers": [{"type": "dns", "value": n} for n in names]}
    if profile:
        payload["profile"] = profile
    response = client.post(client.url("new-order"), client.jws(client.url("new-order"), payload))
    assert response.status_code == 201, response.text
    order_url = response.headers["Location"]
    for authz_url in response.json()["authorizations"]:
        authz = client.post(authz_url, client.jws(authz_url, None)).json()
        if authz["status"] == "valid":
            continue
        challenge = next(c for c in authz["challenges"] if c["type"] == "dns-01")
        wildcard = "*." if authz.get("wildcard") else ""
        publish_dns01(knot, wildcard + authz["identifier"]["value"], challenge["token"], client.key)
        started = client.post(challenge["url"], client.jws(challenge["url"], {}))
        assert started.status_code == 200, started.text
    body = wait_status(client, order_url, {"ready", "invalid"})
    assert body["status"] == "ready", body
    return order_url, body


def order_state(ctx: Context) -> tuple[Any, ...]:
    """What a refused order request must not change: orders, authorizations, challenges, evidence, certificates."""
    with ctx.read() as session:
        orders = session.execute(select(AcmeOrder.id, AcmeOrder.status).order_by(AcmeOrder.id)).all()
        authzs = session.execute(
            select(AcmeAuthorization.id, AcmeAuthorization.status).order_by(AcmeAuthorization.id)
        ).all()
        challenges = session.execute(select(AcmeChallenge.id, AcmeChallenge.status).order_by(AcmeChallenge.id)).all()
        validations = session.scalar(select(func.count()).select_from(DomainValidation))
        certificates = session.scalar(select(func.count()).select_from(Certificate))
    return (tuple(orders), tuple(authzs), tuple(challenges), validations, certificates)


def http_get(url: str) -> httpx.Response:
    with httpx.Client(timeout=10, trust_env=False) as http:
        return http.get(url)
