"""The CA hierarchy: init, pkilint's CA validators, rollover, the offline-root and cross ceremonies."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from sqlalchemy import select

from ecert.core.errors import PolicyViolation
from ecert.services import ceremony
from ecert.services.ca_config import load_hierarchy_config
from ecert.services.context import Context
from ecert.signer.lint import lint_certificate
from ecert.store.audit import verify_chain
from ecert.store.models import CA, AuditEvent

from .foundation_fixtures import make_ctx

LINT_TYPE = {
    "root": "ROOT-CA",
    "external-root": "ROOT-CA",
    "ov": "INTERNAL-UNCONSTRAINED-TLS-CA",
    "ev": "INTERNAL-UNCONSTRAINED-TLS-CA",
    "cross": "EXTERNAL-CROSS-CA",
}


def _rows(ctx: Context) -> dict[str, CA]:
    with ctx.transaction() as s:
        return {r.label: r for r in s.scalars(select(CA))}


def test_init_makes_root_ov_ev_and_a_cross_certificate(any_db_ctx: Context) -> None:
    roles = sorted(r.role for r in _rows(any_db_ctx).values())
    assert roles == ["cross", "ev", "external-root", "ov", "root"]


def test_every_ca_certificate_passes_pkilint_ca_validators(any_db_ctx: Context) -> None:
    for row in _rows(any_db_ctx).values():
        report = lint_certificate(row.cert_der, LINT_TYPE[row.role])
        assert report.ok, (row.label, report.blocking)


def test_issuing_cas_are_server_auth_only_with_path_length_zero(sqlite_ctx: Context) -> None:
    for row in _rows(sqlite_ctx).values():
        if row.role not in ("ov", "ev"):
            continue
        cert = x509.load_der_x509_certificate(row.cert_der)
        assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
            ExtendedKeyUsageOID.SERVER_AUTH
        ]
        assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length == 0
        aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
        crldp = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
        assert aia[0].access_location.value == "http://pki.ecert-demo.hk/repository/ca/demo-root-ca-1.crt"
        assert crldp[0].full_name[0].value == "http://pki.ecert-demo.hk/crl/demo-root-ca-1-arl.crl"


def test_demo_names_say_demo(sqlite_ctx: Context) -> None:
    for row in _rows(sqlite_ctx).values():
        assert "DEMO" in row.subject_dn


def test_init_twice_changes_nothing(sqlite_ctx: Context) -> None:
    before = _rows(sqlite_ctx)
    result = ceremony.init_hierarchy(sqlite_ctx, load_hierarchy_config(None), demo=True)
    assert result.already and _rows(sqlite_ctx).keys() == before.keys()


def test_rollover_makes_a_new_issuing_ca_and_retires_the_old(sqlite_ctx: Context) -> None:
    new, old = ceremony.rollover(sqlite_ctx, load_hierarchy_config(None), "ov")
    rows = _rows(sqlite_ctx)
    assert new.label == "demo-ov-ca-2" and rows["demo-ov-ca-2"].status == "active"
    assert [o.label for o in old] == ["demo-ov-ca-1"] and rows["demo-ov-ca-1"].status == "retired"
    assert "SSL CA 2" in rows["demo-ov-ca-2"].subject_dn
    assert lint_certificate(rows["demo-ov-ca-2"].cert_der, "INTERNAL-UNCONSTRAINED-TLS-CA").ok


def test_rollover_of_the_root_is_refused(sqlite_ctx: Context) -> None:
    with pytest.raises(PolicyViolation, match="ov or ev"):
        ceremony.rollover(sqlite_ctx, load_hierarchy_config(None), "root")


def test_offline_root_ceremony_request_sign_import(sqlite_ctx: Context) -> None:
    config = load_hierarchy_config(None)
    csr = ceremony.make_ca_request(sqlite_ctx, config, "ev", label="ev-offline-2", common_name="ecert DEMO EV CA 2")
    cert = ceremony.sign_ca_request(sqlite_ctx, csr, "ev")
    row = ceremony.import_ca_certificate(sqlite_ctx, cert, role="ev", label="ev-offline-2")
    assert row.role == "ev" and row.key_ref == "file:ev-offline-2.key"
    assert lint_certificate(row.cert_der, "INTERNAL-UNCONSTRAINED-TLS-CA").ok


def test_import_refuses_a_certificate_for_another_key(sqlite_ctx: Context) -> None:
    config = load_hierarchy_config(None)
    ceremony.make_ca_request(sqlite_ctx, config, "ov", label="ov-a", common_name="ecert DEMO OV A")
    other = ceremony.make_ca_request(sqlite_ctx, config, "ov", label="ov-b", common_name="ecert DEMO OV B")
    cert_b = ceremony.sign_ca_request(sqlite_ctx, other, "ov")
    with pytest.raises(PolicyViolation, match="does not match"):
        ceremony.import_ca_certificate(sqlite_ctx, cert_b, role="ov", label="ov-a")


def test_cross_certification_by_another_instance_round_trip(tmp_path: Path) -> None:
    """Our root makes a request; another instance's root cross-certifies it; we import the result."""
    ours = make_ctx(tmp_path / "ours")
    ceremony.init_hierarchy(ours, load_hierarchy_config(None), demo=False)
    theirs = make_ctx(tmp_path / "theirs")
    ceremony.init_hierarchy(theirs, load_hierarchy_config(None), demo=False)
    root_cert, csr = ceremony.cross_request(ours)
    assert csr.is_signature_valid and csr.public_key() == root_cert.public_key()
    # The other root signs a cross-certificate for our name and key (what an external root operator does).
    with theirs.transaction() as s:
        their_root = s.scalar(select(CA).where(CA.role == "root"))
    from ecert.signer.hierarchy import cross_certificate

    their_cert = x509.load_der_x509_certificate(their_root.cert_der)
    cross = cross_certificate(
        external_root_cert=their_cert,
        external_root_key=theirs.keys.load_key(their_root.key_ref),  # type: ignore[arg-type]
        our_root_cert=root_cert,
        urls=ceremony.ca_urls_for(theirs, their_root.label, role="root"),
        now=theirs.clock(),
    )
    row = ceremony.import_cross_certificate(ours, cross, their_cert, external_label="their-root")
    assert row.role == "cross"
    with pytest.raises(PolicyViolation, match="not issued by"):
        ceremony.import_cross_certificate(ours, cross, root_cert, external_label="wrong-root")
    ours.close()
    theirs.close()


def test_every_ceremony_step_is_in_the_audit_chain(sqlite_ctx: Context) -> None:
    ceremony.rollover(sqlite_ctx, load_hierarchy_config(None), "ev")
    with sqlite_ctx.transaction() as s:
        events = [e.event for e in s.scalars(select(AuditEvent).order_by(AuditEvent.id))]
        assert verify_chain(s).ok
    assert events.count("ca.created") == 6 and "ca.retired" in events


@pytest.mark.parametrize(
    "base_url",
    [
        "http://127.0.0.1:8000",
        "http://localhost:8000",
        "http://ca.corp",
        "https://pki.example.com",
        "ftp://pki.ecert-demo.hk",
    ],
)
def test_init_refuses_a_base_url_no_certificate_may_carry(tmp_path: Path, base_url: str) -> None:
    from ecert.core.errors import ConfigError

    ctx = make_ctx(tmp_path, base_url=base_url)
    with pytest.raises(ConfigError):
        ceremony.init_hierarchy(ctx, load_hierarchy_config(None), demo=True)
    ctx.close()
