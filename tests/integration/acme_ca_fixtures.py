"""ACME server with a CA hierarchy made, for the tests that need certificates: ARI, revokeCert, limits.

``acme_ca`` is ecert's ACME server (SQLite and PostgreSQL in turn) on a context whose demo hierarchy is
made at the test clock's time; ``issue_to`` puts an issued certificate in an application straight through
the issuance pipeline (the orders feature is not needed to test what happens to a certificate later).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ecert.core.profiles import CertType, SubjectData
from ecert.services import issuance
from ecert.services.ca_config import load_hierarchy_config
from ecert.services.ceremony import init_hierarchy
from ecert.services.context import Context
from ecert.store import applications as store_apps
from tests.integration.acme_fixtures import EAB_SECRET, AcmeServer, Client, Clock, add_application, new_eab, serve
from tests.integration.foundation_fixtures import make_ctx


@dataclass
class Subscriber:
    """An approved application and one ACME account registered for it."""

    reference: str
    application_id: int
    server_name: str
    client: Client


@dataclass
class Issued:
    der: bytes
    pem: bytes
    serial_hex: str
    key: ec.EllipticCurvePrivateKey
    row_id: int

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_der_x509_certificate(self.der)


def subscriber(server: AcmeServer, client: Client | None = None) -> Subscriber:
    reference = add_application(server.ctx)
    with server.ctx.read() as session:
        row = store_apps.get_application_by_reference(session, reference)
        assert row is not None
        app_id, name = row.id, row.server_name
    who = client or Client(server.running.url)
    response = who.register(new_eab(server.ctx, reference))
    assert response.status_code == 201, response.text
    return Subscriber(reference, app_id, name, who)


def issue_to(ctx: Context, application_id: int | None, name: str) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    row = issuance.issue(
        ctx,
        issuance.IssueRequest(
            cert_type=CertType.SERVER,
            names=(name,),
            subject=SubjectData("Example Company Limited"),
            public_key=key.public_key(),
            application_id=application_id,
            accepted_on_issue=True,
            actor="test",
        ),
    )
    assert row.der is not None
    pem = x509.load_der_x509_certificate(row.der).public_bytes(serialization.Encoding.PEM)
    return Issued(row.der, pem, row.serial_hex, key, row.id)


def cert_id(cert: x509.Certificate) -> str:
    """RFC 9773 4.1, computed here from the certificate with cryptography (not with ecert's code)."""
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    assert aki is not None
    serial = cert.serial_number.to_bytes(cert.serial_number.bit_length() // 8 + 1, "big")
    b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()  # noqa: E731
    return f"{b64(aki)}.{b64(serial)}"


def _make(tmp_path: Path, db_url: str | None, clock: Clock, **overrides: Any) -> Iterator[AcmeServer]:
    ctx = make_ctx(tmp_path, db_url, **overrides)
    ctx.clock = clock
    ctx.acme_secret = EAB_SECRET  # seals nonces and EAB keys, as build_context reads it from the environment
    init_hierarchy(ctx, load_hierarchy_config(None), demo=True)
    running = serve(ctx)
    try:
        yield AcmeServer(ctx, running, clock)
    finally:
        running.stop()
        ctx.close()


@contextmanager
def acme_ca_with(tmp_path: Path, db_url: str | None, clock: Clock, **overrides: Any) -> Iterator[AcmeServer]:
    """An ``acme_ca`` with settings changed (rate limits, Redis), for the test that needs them."""
    yield from _make(tmp_path, db_url, clock, **overrides)


@pytest.fixture
def acme_ca(tmp_path: Path, db_url: str, clock: Clock) -> Iterator[AcmeServer]:
    """ecert's ACME server with the demo hierarchy, on SQLite and PostgreSQL in turn."""
    yield from _make(tmp_path, db_url, clock)


@pytest.fixture
def sqlite_acme_ca(tmp_path: Path, clock: Clock) -> Iterator[AcmeServer]:
    yield from _make(tmp_path, None, clock)
