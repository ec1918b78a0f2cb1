"""The status endpoints over HTTP: CRL and ARL files, OCSP GET/POST with RFC 5019 caching, the revocation API."""

from __future__ import annotations

import base64
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from fastapi.testclient import TestClient
from sqlalchemy import select

from ecert.services.context import Context
from ecert.store.models import CA
from ecert.web.api.deps import session_app
from ecert.web.app import create_app
from tests.integration.foundation_fixtures import application_in_state

from .test_revocation import _openssl_proof, issue_leaf

TOKEN = "operator-test-token"
ENV = {"ECERT_JOBS": "off", "ECERT_OPERATOR_TOKEN": TOKEN, "ECERT_SESSION_SECRET": "s" * 32}


@pytest.fixture
def client(sqlite_ctx: Context) -> Iterator[TestClient]:
    with TestClient(create_app(sqlite_ctx.settings, ENV, context=sqlite_ctx)) as c:
        yield c


def _ca(ctx: Context, role: str) -> CA:
    with ctx.transaction() as s:
        return s.scalar(select(CA).where(CA.role == role, CA.status == "active"))


def _request(
    ctx: Context, serial: int, issuer: x509.Certificate | None = None, algorithm: hashes.HashAlgorithm | None = None
) -> bytes:
    issuer = issuer or x509.load_der_x509_certificate(_ca(ctx, "ov").cert_der)
    # The builder wants a leaf; build the CertID from hashes as a client with only the serial would.
    from ecert.signer.status import issuer_hashes

    algorithm = algorithm or hashes.SHA1()
    name_hash, key_hash = issuer_hashes(issuer, algorithm)
    req = ocsp.OCSPRequestBuilder().add_certificate_by_hash(name_hash, key_hash, serial, algorithm).build()
    return req.public_bytes(serialization.Encoding.DER)


def _get(client: TestClient, der: bytes):  # type: ignore[no-untyped-def]
    return client.get("/ocsp/" + urllib.parse.quote(base64.b64encode(der).decode(), safe=""))


def test_crl_is_served_as_pkix_crl_with_cache_headers(client: TestClient, sqlite_ctx: Context) -> None:
    label = _ca(sqlite_ctx, "ov").label
    resp = client.get(f"/crl/{label}.crl")
    assert resp.status_code == 200 and resp.headers["content-type"] == "application/pkix-crl"
    crl = x509.load_der_x509_crl(resp.content)
    assert crl.issuer.rfc4514_string() == _ca(sqlite_ctx, "ov").subject_dn
    max_age = int(resp.headers["cache-control"].split("max-age=")[1].split(",")[0])
    assert 0 < max_age <= 600
    assert resp.headers["last-modified"] and resp.headers["etag"]
    again = client.get(f"/crl/{label}.crl", headers={"If-None-Match": resp.headers["etag"]})
    assert again.status_code == 304


def test_arl_is_served_at_the_root_arl_path(client: TestClient, sqlite_ctx: Context) -> None:
    root = _ca(sqlite_ctx, "root").label
    resp = client.get(f"/crl/{root}-arl.crl")
    assert resp.status_code == 200
    arl = x509.load_der_x509_crl(resp.content)
    assert arl.extensions.get_extension_for_class(x509.IssuingDistributionPoint).value.only_contains_ca_certs


@pytest.mark.parametrize("path", ["/crl/nosuchca.crl", "/crl/demo-root-ca.txt"])
def test_unknown_crls_are_not_found(client: TestClient, path: str) -> None:
    assert client.get(path).status_code == 404


def test_ocsp_get_answers_good_with_rfc5019_cache_headers(client: TestClient, sqlite_ctx: Context) -> None:
    row, _ = issue_leaf(sqlite_ctx)
    resp = _get(client, _request(sqlite_ctx, int(row.serial_hex, 16)))
    assert resp.status_code == 200 and resp.headers["content-type"] == "application/ocsp-response"
    answer = ocsp.load_der_ocsp_response(resp.content)
    assert answer.certificate_status is ocsp.OCSPCertStatus.GOOD
    cache = resp.headers["cache-control"]
    assert {"public", "no-transform", "must-revalidate"} <= {p.strip() for p in cache.split(",")}
    max_age = int(cache.split("max-age=")[1].split(",")[0])
    assert abs(max_age - (answer.next_update_utc - sqlite_ctx.clock()).total_seconds()) < 5
    assert resp.headers["etag"] and resp.headers["last-modified"] and resp.headers["expires"]
    assert client.get(resp.request.url.path, headers={"If-None-Match": resp.headers["etag"]}).status_code == 304


def test_ocsp_head_has_the_get_headers(client: TestClient, sqlite_ctx: Context) -> None:
    """RFC 9110 9.1: HEAD wherever GET (a cache checks freshness with it); the fast path answered 405."""
    row, _ = issue_leaf(sqlite_ctx)
    got = _get(client, _request(sqlite_ctx, int(row.serial_hex, 16)))
    head = client.head(got.request.url.path)
    assert head.status_code == 200
    for name in ("content-type", "content-length", "cache-control", "etag", "last-modified", "expires"):
        assert head.headers[name] == got.headers[name], name
    assert client.head(got.request.url.path, headers={"If-None-Match": got.headers["etag"]}).status_code == 304
    refused = client.put("/ocsp", content=b"x")
    assert refused.status_code == 405 and refused.headers["allow"] == "GET, HEAD, POST"


def test_ocsp_post_answers_and_is_not_cached(client: TestClient, sqlite_ctx: Context) -> None:
    row, _ = issue_leaf(sqlite_ctx)
    resp = client.post(
        "/ocsp",
        content=_request(sqlite_ctx, int(row.serial_hex, 16)),
        headers={"Content-Type": "application/ocsp-request"},
    )
    assert ocsp.load_der_ocsp_response(resp.content).certificate_status is ocsp.OCSPCertStatus.GOOD
    assert resp.headers["cache-control"] == "no-store"


@pytest.mark.parametrize(
    ("case", "status"),
    [
        ("garbage", ocsp.OCSPResponseStatus.MALFORMED_REQUEST),
        ("empty", ocsp.OCSPResponseStatus.MALFORMED_REQUEST),
        ("other-issuer", ocsp.OCSPResponseStatus.UNAUTHORIZED),
    ],
)
def test_ocsp_error_responses(
    client: TestClient, sqlite_ctx: Context, case: str, status: ocsp.OCSPResponseStatus
) -> None:
    if case == "garbage":
        resp = client.post("/ocsp", content=b"\x30\x03\x02\x01\x01")
    elif case == "empty":
        resp = client.get("/ocsp/")
    else:
        resp = _get(
            client,
            _request(sqlite_ctx, 5, issuer=x509.load_der_x509_certificate(_ca(sqlite_ctx, "external-root").cert_der)),
        )
    assert resp.status_code == 200
    assert ocsp.load_der_ocsp_response(resp.content).response_status is status


@pytest.mark.parametrize("algorithm", [hashes.SHA1(), hashes.SHA256()], ids=["sha1", "sha256"])
def test_a_serial_never_issued_is_unknown_never_good(
    client: TestClient, sqlite_ctx: Context, algorithm: hashes.HashAlgorithm
) -> None:
    resp = _get(client, _request(sqlite_ctx, 0x7EADBEEF, algorithm=algorithm))
    answer = ocsp.load_der_ocsp_response(resp.content)
    assert answer.certificate_status is ocsp.OCSPCertStatus.UNKNOWN
    assert answer.hash_algorithm.name == algorithm.name


def test_operator_api_revocation_shows_in_ocsp_at_once(client: TestClient, sqlite_ctx: Context) -> None:
    row, _ = issue_leaf(sqlite_ctx)
    request = _request(sqlite_ctx, int(row.serial_hex, 16))
    assert ocsp.load_der_ocsp_response(_get(client, request).content).certificate_status is ocsp.OCSPCertStatus.GOOD
    resp = client.post(
        f"/api/v1/operator/certificates/{row.serial_hex}/revoke",
        json={"reason": "superseded"},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert resp.status_code == 200, resp.text
    answer = ocsp.load_der_ocsp_response(_get(client, request).content)
    assert answer.certificate_status is ocsp.OCSPCertStatus.REVOKED
    assert answer.revocation_reason is x509.ReasonFlags.superseded


@pytest.mark.parametrize(("headers", "status"), [({}, 401), ({"Authorization": "Bearer wrong"}, 401)])
def test_operator_revocation_needs_the_token(
    client: TestClient, sqlite_ctx: Context, headers: dict[str, str], status: int
) -> None:
    row, _ = issue_leaf(sqlite_ctx)
    resp = client.post(f"/api/v1/operator/certificates/{row.serial_hex}/revoke", json={}, headers=headers)
    assert resp.status_code == status
    assert resp.headers["content-type"] == "application/problem+json"


def test_key_holder_revokes_through_challenge_and_proof(
    client: TestClient, sqlite_ctx: Context, tmp_path: Path
) -> None:
    row, key = issue_leaf(sqlite_ctx)
    nonce = client.post("/api/v1/revocation/challenge", json={"serial": row.serial_hex}).json()["nonce"]
    proof = _openssl_proof(tmp_path, key, nonce).decode()
    resp = client.post("/api/v1/revocation/by-key", json={"serial": row.serial_hex, "csr": proof})
    assert resp.status_code == 200, resp.text
    assert resp.json()["reason"] == "keyCompromise" and resp.json()["key_blocked"]
    replay = client.post("/api/v1/revocation/by-key", json={"serial": row.serial_hex, "csr": proof})
    assert replay.status_code == 403


def test_subscriber_api_revokes_its_own_certificate(client: TestClient, sqlite_ctx: Context) -> None:

    from ecert.core.profiles import CertType
    from ecert.services import issuance

    app_id = application_in_state(sqlite_ctx, "accepted", reference="A00000009")
    from cryptography.hazmat.primitives.asymmetric import ec

    from .test_revocation import SUBJECT

    row = issuance.issue(
        sqlite_ctx,
        issuance.IssueRequest(
            cert_type=CertType.SERVER,
            names=("www.example.com",),
            subject=SUBJECT,
            public_key=ec.generate_private_key(ec.SECP256R1()).public_key(),
            application_id=app_id,
        ),
    )
    from ecert.store.models import Certificate

    with sqlite_ctx.transaction() as s:  # accepted (seed C.6), as in the portal flow
        s.get(Certificate, row.id).status = "accepted"
    client.app.dependency_overrides[session_app] = lambda: app_id  # type: ignore[attr-defined]
    resp = client.post("/api/v1/certificate/revoke", json={"reason": "cessationOfOperation"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["reason"] == "cessationOfOperation"
    bad = client.post("/api/v1/certificate/revoke", json={"reason": "certificateHold"})
    assert bad.status_code in (400, 404) and bad.headers["content-type"] == "application/problem+json"


def _worker_sees_revocation(ctx: Context, other_url: str | None, tmp_path: Path, bound: float) -> float:
    """Two web workers on one database: a revocation made through one shows in the other's OCSP within ``bound``."""
    import time

    from ecert.services import publication, revocation

    from .foundation_fixtures import PASSPHRASE_ENV, make_ctx

    leaf, _ = issue_leaf(ctx, name="two-workers.example.com")
    publication.refresh_ocsp(ctx, _ca(ctx, "ov").label)
    der = _request(ctx, int(leaf.serial_hex, 16))
    other = make_ctx(tmp_path / "other", other_url) if other_url else make_ctx(tmp_path)
    try:
        with TestClient(create_app(other.settings, {**ENV, **PASSPHRASE_ENV}, context=other)) as worker_b:
            good = ocsp.load_der_ocsp_response(_get(worker_b, der).content)
            assert good.certificate_status is ocsp.OCSPCertStatus.GOOD  # now in worker B's memory
            revocation.revoke_certificate(
                ctx, ca_label=None, serial_hex=leaf.serial_hex, reason="keyCompromise", actor="t"
            )  # through worker A's context
            started = time.monotonic()
            while (
                ocsp.load_der_ocsp_response(_get(worker_b, der).content).certificate_status
                is not ocsp.OCSPCertStatus.REVOKED
            ):
                assert time.monotonic() - started < bound, f"worker B still says good after {bound} s"
                time.sleep(0.05)
            return time.monotonic() - started
    finally:
        other.close()


def test_another_worker_answers_revoked_at_once_on_sqlite(sqlite_ctx: Context, tmp_path: Path) -> None:
    """Before: up to ANSWER_TTL (30 s) of "good" from the other worker's memory; now the 1 s change marker."""
    assert _worker_sees_revocation(sqlite_ctx, None, tmp_path, 2.5) < 2.5


@pytest.mark.postgres
def test_another_worker_answers_revoked_at_once_on_postgresql(pg_url: str, tmp_path: Path) -> None:
    from ecert.services.ca_config import load_hierarchy_config
    from ecert.services.ceremony import init_hierarchy

    from .foundation_fixtures import make_ctx

    ctx = make_ctx(tmp_path / "a", pg_url)
    try:
        init_hierarchy(ctx, load_hierarchy_config(None), demo=True)
        assert _worker_sees_revocation(ctx, pg_url, tmp_path, 1.0) < 1.0  # NOTIFY at commit
    finally:
        ctx.close()
