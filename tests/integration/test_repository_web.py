"""The service publishes CA certificates at the URLs the profiles put into AIA, with the right types."""

from __future__ import annotations

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
