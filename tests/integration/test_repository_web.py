"""The service publishes CA certificates at the URLs the profiles put into AIA, with the right types."""

from __future__ import annotations

import re

from cryptography import x509
from fastapi.testclient import TestClient

from ecert.services.context import Context
from ecert.web.app import create_app

from .foundation_fixtures import PASSPHRASE_ENV


def test_ca_certificates_are_served_where_aia_points(sqlite_ctx: Context) -> None:
    from sqlalchemy import select

    from ecert.store.models import CA

    client = TestClient(create_app(sqlite_ctx.settings, {**PASSPHRASE_ENV, "ECERT_JOBS": "off"}, context=sqlite_ctx))
    with sqlite_ctx.transaction() as s:
        ov = s.scalar(select(CA).where(CA.role == "ov"))
    aia = (
        x509.load_der_x509_certificate(ov.cert_der)
        .extensions.get_extension_for_class(x509.AuthorityInformationAccess)
        .value[0]
        .access_location.value
    )
    path = aia.removeprefix(sqlite_ctx.settings.base_url)
    der = client.get(path)
    assert der.status_code == 200 and der.headers["content-type"] == "application/pkix-cert"
    root = x509.load_der_x509_certificate(der.content)
    ov_cert = x509.load_der_x509_certificate(ov.cert_der)
    ov_cert.verify_directly_issued_by(root)
    pem = client.get(path.replace(".crt", ".pem"))
    assert pem.headers["content-type"].startswith("application/x-pem-file")
    assert x509.load_pem_x509_certificate(pem.content) == root


def test_unknown_or_traversing_names_are_404(sqlite_ctx: Context) -> None:
    client = TestClient(create_app(sqlite_ctx.settings, {**PASSPHRASE_ENV, "ECERT_JOBS": "off"}, context=sqlite_ctx))
    for path in (
        "/repository/ca/nope.crt",
        "/repository/ca/..%2f..%2fkeys%2fdemo-root-ca-1.key",
        "/repository/ca/demo-root-ca-1.key",
    ):
        assert client.get(path).status_code == 404, path


def test_a_head_answers_with_the_headers_a_get_would_have(sqlite_ctx: Context) -> None:
    """RFC 9110 9.1: HEAD wherever GET. A relying party or a monitor checks a CRL's freshness with a HEAD
    (Last-Modified, ETag, Content-Length); every one of these answered 405."""
    client = TestClient(create_app(sqlite_ctx.settings, {**PASSPHRASE_ENV, "ECERT_JOBS": "off"}, context=sqlite_ctx))
    crl = next(path for path in _links(client.get("/repository/").text) if path.endswith(".crl"))
    crt = next(path for path in _links(client.get("/repository/").text) if path.endswith(".crt"))
    for path in (crl, crt, "/repository/", "/repository/index.json", "/", "/search", "/openapi.json"):
        got, head = client.get(path), client.head(path)
        assert head.status_code == got.status_code == 200, path
        for header in ("content-type", "content-length", "etag", "last-modified", "cache-control"):
            assert head.headers.get(header) == got.headers.get(header), (path, header)
    refused = client.put(crl)
    assert refused.status_code == 405 and refused.headers["Allow"] == "GET, HEAD"
    page = client.put(crl, headers={"Accept": "text/html"})  # a browser gets the error page, and the header
    assert page.status_code == 405 and page.headers["Allow"] == "GET, HEAD"


def test_a_head_on_a_certificate_download_is_refused_as_it_would_be_logged_as_a_download(
    sqlite_ctx: Context,
) -> None:
    """Every certificate download is an audit event; a HEAD delivers nothing, so it is not taken for one."""
    client = TestClient(create_app(sqlite_ctx.settings, {**PASSPHRASE_ENV, "ECERT_JOBS": "off"}, context=sqlite_ctx))
    for path in ("/api/v1/certificates/01/download", "/search/download/01/pem", "/portal/download/pem"):
        refused = client.head(path)
        assert refused.status_code == 405 and refused.headers["Allow"] == "GET", path


def test_the_api_document_describes_each_get_once_with_no_head_operation(sqlite_ctx: Context) -> None:
    client = TestClient(create_app(sqlite_ctx.settings, {**PASSPHRASE_ENV, "ECERT_JOBS": "off"}, context=sqlite_ctx))
    paths = client.get("/openapi.json").json()["paths"]
    assert not [path for path, operations in paths.items() if "head" in operations]
    assert paths["/api/v1/certificate"]["get"]["operationId"] == "read_certificate_api_v1_certificate_get"


def _links(page: str) -> list[str]:
    return re.findall(r'href="(/[^"]+)"', page)
