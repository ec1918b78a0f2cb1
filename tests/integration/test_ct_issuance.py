"""Certificate Transparency in the one issuance pipeline, against test RFC 6962 logs on loopback.

The precertificate is stored before any log sees it; the final certificate embeds verified SCTs from two
operators; a down or lying log is survived; too few logs refuse the issuance and revoke the promised serial;
a crash between precertificate and final certificate is settled by the jobs' reconciler.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select
from typer.testing import CliRunner

from ecert.core import ct
from ecert.core.errors import TransparencyFailed
from ecert.core.profiles import CertType, SubjectData
from ecert.services import issuance, publication
from ecert.services import transparency as ct_service
from ecert.services.context import Context
from ecert.signer.lint import lint_certificate
from ecert.store.models import Certificate, IssuanceRecord
from ecert.store.models_ct import CtLogResult, Precertificate, SctRecord
from tests.ct_log.server import Faults, TestLog

StartLog = Callable[..., TestLog]
OV = SubjectData("Example Limited")


def _issue(ctx: Context, days: int | None = None) -> Certificate:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    return issuance.issue(
        ctx,
        issuance.IssueRequest(
            cert_type=CertType.SERVER, names=("www.example.com",), subject=OV, public_key=key, requested_days=days
        ),
    )


def _issuer_of(ctx: Context, row: Certificate) -> x509.Certificate:
    from ecert.store.models import CA

    with ctx.read() as session:
        ca = session.get(CA, row.ca_id)
        assert ca is not None
        return x509.load_der_x509_certificate(ca.cert_der)


def _embedded(cert: x509.Certificate) -> tuple[ct.SignedCertificateTimestamp, ...]:
    ext = cert.extensions.get_extension_for_oid(x509.ObjectIdentifier(ct.SCT_LIST_OID))
    return ct.sct_list_from_extension_value(ext.value.public_bytes())


def _verify_embedded(cert: x509.Certificate, issuer: x509.Certificate, logs: list[TestLog]) -> set[str]:
    """Check every embedded SCT the way a browser does: cryptography's RFC 6962 TBS, the issuer key hash."""
    spki = issuer.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    entry = ct.precert_signed_entry(ct.issuer_key_hash(spki), cert.tbs_precertificate_bytes)
    names = set()
    for sct in _embedded(cert):
        log = next(log for log in logs if log.log_id == sct.log_id)
        ct.verify_sct(sct, log_key_der=log.key_der, entry_type=ct.EntryType.PRECERT, signed_entry=entry)
        names.add(log.name)
    return names


def test_final_certificate_embeds_verified_scts_from_two_operators(
    ct_ctx: Callable[..., Context], ct_logs: StartLog
) -> None:
    logs = [ct_logs("Argon", "Google"), ct_logs("Xenon", "Google"), ct_logs("Nimbus", "Cloudflare")]
    ctx = ct_ctx(logs)
    row = _issue(ctx, days=90)
    assert row.status == "issued"
    cert = x509.load_der_x509_certificate(row.der)
    assert not any(e.oid == x509.ObjectIdentifier(ct.POISON_OID) for e in cert.extensions)
    names = _verify_embedded(cert, _issuer_of(ctx, row), logs)
    assert len(names) == 2 and "Nimbus" in names  # two operators
    assert lint_certificate(row.der, "OV-FINAL-CERTIFICATE").ok
    with ctx.read() as session:
        precert = session.scalar(select(Precertificate).where(Precertificate.serial_hex == row.serial_hex))
        assert precert is not None and precert.status == "final" and precert.certificate_id == row.id
        pre = x509.load_der_x509_certificate(precert.der)
        assert pre.serial_number == cert.serial_number
        assert lint_certificate(precert.der, "OV-PRE-CERTIFICATE").ok
        stored = session.scalars(select(SctRecord).where(SctRecord.certificate_id == row.id)).all()
        assert {s.log_name for s in stored} == names
    shown = ct_service.certificate_scts(ctx, row.serial_hex)
    assert {(s.log_name, s.operator) for s in shown} >= {("Nimbus", "Cloudflare")}
    # Every log that gave an SCT holds the precertificate in its tree.
    assert sum(log.sth()["tree_size"] for log in logs) == 2


def test_a_lifetime_over_180_days_gets_three_scts(ct_ctx: Callable[..., Context], ct_logs: StartLog) -> None:
    logs = [ct_logs("a1", "A"), ct_logs("a2", "A"), ct_logs("b1", "B")]
    row = _issue(ct_ctx(logs), days=199)
    assert len(_embedded(x509.load_der_x509_certificate(row.der))) == 3


def test_one_log_down_issuance_succeeds(ct_ctx: Callable[..., Context], ct_logs: StartLog) -> None:
    logs = [ct_logs("a1", "A"), ct_logs("b1", "B"), ct_logs("a2", "A"), ct_logs("b2", "B")]
    ctx = ct_ctx(logs)
    logs[0].stop()
    row = _issue(ctx, days=90)
    assert "a1" not in _verify_embedded(x509.load_der_x509_certificate(row.der), _issuer_of(ctx, row), logs)
    overview = {log.name: log for log in ct_service.log_overview(ctx).logs}
    assert overview["a1"].last_ok is False and "ConnectError" in (overview["a1"].last_error or "")


def test_a_log_returning_a_bad_sct_is_discarded(ct_ctx: Callable[..., Context], ct_logs: StartLog) -> None:
    logs = [ct_logs("liar", "A", Faults(bad_signature=True)), ct_logs("b1", "B"), ct_logs("a2", "A")]
    ctx = ct_ctx(logs)
    row = _issue(ctx, days=90)
    assert _verify_embedded(x509.load_der_x509_certificate(row.der), _issuer_of(ctx, row), logs) == {"b1", "a2"}
    with ctx.read() as session:
        liar = session.scalar(select(CtLogResult).where(CtLogResult.log_name == "liar"))
        assert liar is not None and not liar.last_ok and "does not verify" in (liar.last_error or "")


def test_too_few_logs_refuse_and_revoke_the_precertificate(ct_ctx: Callable[..., Context], ct_logs: StartLog) -> None:
    logs = [ct_logs("a1", "A"), ct_logs("b1", "B", Faults(status=500))]
    ctx = ct_ctx(logs)
    with pytest.raises(TransparencyFailed, match=r"the policy needs 2 from at least 2 operators: failed: b1"):
        _issue(ctx, days=90)
    with ctx.read() as session:
        precert = session.scalars(select(Precertificate)).one()
        cert = session.scalars(select(Certificate).where(Certificate.serial_hex == precert.serial_hex)).one()
        record = session.scalars(select(IssuanceRecord).where(IssuanceRecord.serial_hex == precert.serial_hex)).one()
    assert precert.status == "revoked" and "policy" in (precert.error or "")
    # No final certificate: the row holds the precertificate (poisoned), revoked; the record failed.
    assert cert.status == "revoked" and cert.der == precert.der
    assert x509.load_der_x509_certificate(cert.der).extensions.get_extension_for_class(x509.PrecertPoison).critical
    assert record.state == "failed"
    assert logs[0].sth()["tree_size"] == 1  # the log that answered has the precertificate
    # CRL and OCSP answer "revoked" for the promised serial.
    crl = x509.load_der_x509_crl(publication.latest_crl(ctx, _label(ctx, cert)).der)
    assert crl.get_revoked_certificate_by_serial_number(int(cert.serial_hex, 16)) is not None
    assert publication.sign_ocsp_now(ctx, _label(ctx, cert), int(cert.serial_hex, 16)).status == "revoked"


def _label(ctx: Context, cert: Certificate) -> str:
    from ecert.store.models import CA

    with ctx.read() as session:
        ca = session.get(CA, cert.ca_id)
        assert ca is not None
        return ca.label


class _Crash(BaseException):
    """Stands for the process dying: no ``except Exception`` handler runs."""


def test_crash_between_precertificate_and_final_is_settled_by_the_jobs(
    ct_ctx: Callable[..., Context], ct_logs: StartLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    logs = [ct_logs("a1", "A"), ct_logs("b1", "B")]
    ctx = ct_ctx(logs)

    def crash(*_a: object, **_k: object) -> None:
        raise _Crash

    monkeypatch.setattr(ct_service, "collect_scts", crash)
    with pytest.raises(_Crash):
        _issue(ctx, days=90)
    with ctx.read() as session:
        precert = session.scalars(select(Precertificate)).one()
        record = session.scalars(select(IssuanceRecord).where(IssuanceRecord.serial_hex == precert.serial_hex)).one()
        cert = session.scalars(select(Certificate).where(Certificate.serial_hex == precert.serial_hex)).one()
    # The record names the serial of the stored precertificate; nothing is final yet.
    assert (record.state, cert.status, precert.status) == ("linted", "signing", "signed")
    # The precertificate is a promise to issue: OCSP answers for its serial as for a certificate (issue 12.1).
    assert publication.sign_ocsp_now(ctx, _label(ctx, cert), int(cert.serial_hex, 16)).status == "good"
    assert issuance.settle_abandoned(ctx, older_than=timedelta(0)) == [precert.serial_hex]
    with ctx.read() as session:
        precert = session.get(Precertificate, precert.id)
        cert = session.get(Certificate, cert.id)
        record = session.get(IssuanceRecord, record.id)
    assert precert is not None and precert.status == "revoked"
    assert cert is not None and cert.status == "revoked" and cert.der == precert.der
    assert record is not None and record.state == "failed"
    crl = x509.load_der_x509_crl(publication.latest_crl(ctx, _label(ctx, cert)).der)
    assert crl.get_revoked_certificate_by_serial_number(int(cert.serial_hex, 16)) is not None
    assert publication.sign_ocsp_now(ctx, _label(ctx, cert), int(cert.serial_hex, 16)).status == "revoked"


def test_ct_logs_command_shows_each_logs_last_result(
    ct_ctx: Callable[..., Context], ct_logs: StartLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    logs = [ct_logs("a1", "A"), ct_logs("b1", "B"), ct_logs("down", "B")]
    ctx = ct_ctx(logs)
    logs[2].stop()
    _issue(ctx, days=90)
    from ecert.cli import ca as ca_cli
    from ecert.cli.ct import app

    monkeypatch.setattr(ca_cli, "_settings", lambda demo=False: ctx.settings)
    monkeypatch.setenv("COLUMNS", "250")
    result = CliRunner().invoke(app, ["logs", "--json"], env={"ECERT_KEY_PASSPHRASE": "x"})
    assert result.exit_code == 0, result.output
    import json

    doc = json.loads(result.output)
    assert doc["data"]["enabled"] is True
    by_name = {log["name"]: log for log in doc["data"]["logs"]}
    assert set(by_name) == {"a1", "b1", "down"}
    assert by_name["a1"]["last_ok"] is True and by_name["a1"]["operator"] == "A"


def test_cert_show_lists_the_scts(
    ct_ctx: Callable[..., Context], ct_logs: StartLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from ecert.cli import ca as ca_cli
    from ecert.cli.certs import cert_app

    ctx = ct_ctx([ct_logs("Argon", "Google"), ct_logs("Nimbus", "Cloudflare")])
    row = _issue(ctx, days=90)
    monkeypatch.setattr(ca_cli, "_settings", lambda demo=False: ctx.settings)
    result = CliRunner().invoke(cert_app, ["show", row.serial_hex, "--json"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)["data"]["scts"]
    assert sorted((s["log"], s["operator"]) for s in shown) == [("Argon", "Google"), ("Nimbus", "Cloudflare")]
    text = CliRunner().invoke(cert_app, ["show", row.serial_hex], env={"COLUMNS": "200"}).output
    assert "Nimbus (Cloudflare) 20" in text
