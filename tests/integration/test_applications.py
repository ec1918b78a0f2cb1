"""The application and enrolment services end to end: register, log in, confirm, DCV by DNS, CSR, accept, download."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs7
from sqlalchemy import func, select

from ecert.core.dcv_rules import DcvMethod
from ecert.core.errors import (
    BadCSR,
    BadName,
    Conflict,
    PolicyViolation,
    RateLimited,
    Unauthorized,
    ValidationFailed,
)
from ecert.core.profiles import CertType
from ecert.services import applications as apps
from ecert.services import certificates, downloads, enrolment
from ecert.services.context import Context
from ecert.services.pin_envelope import render_pin_envelope_html
from ecert.store.models import CA, Application, AuditEvent, Certificate, DcvChallenge, DomainValidation, LoginAttempt
from tests.integration.ca_fixtures import hold_namespace
from tests.integration.dcv_fixtures import HttpFileServer, KnotDns, SmtpSink

ADDR = "192.0.2.10"


def make_csr(names: list[str], *, label: str = "NEW CERTIFICATE REQUEST", crlf: bool = True) -> str:
    """An Exchange-style CSR: the NEW CERTIFICATE REQUEST label and CRLF line ends."""
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, names[0])]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
        .sign(key, hashes.SHA256())
    )
    pem = csr.public_bytes(serialization.Encoding.PEM).decode().replace("CERTIFICATE REQUEST", label)
    return pem.replace("\n", "\r\n") if crlf else pem


def application_input(server: str, **overrides: object) -> apps.ApplicationInput:
    values: dict[str, object] = dict(
        server_name=server,
        cert_type=CertType.SERVER,
        org_name_en="Example Company Limited",
        org_name_zh="範例有限公司",
        branch_name_en="IT Department",
        reg_doc_type="br",
        reg_doc_number="12345678",
        subscription_years=1,
        rep_email="webmaster@example.com",
    )
    values.update(overrides)
    return apps.ApplicationInput(**values)  # type: ignore[arg-type]


@pytest.fixture
def dns_ctx(make_demo_ctx: Callable[..., Context], knot_dns: KnotDns, smtp_sink: SmtpSink) -> Context:
    return make_demo_ctx(
        dns_resolvers=(knot_dns.resolver_addr,),
        allow_private_addresses=True,
        caa_identities=("ecert.example.hk",),
        smtp_port=smtp_sink.port,
        smtp_port_for_dcv=smtp_sink.port,
        login_max_failures=5,
    )


def _unique_host() -> str:
    return f"w{uuid.uuid4().hex[:10]}.example.com"


def _registered(ctx: Context, host: str, **overrides: object) -> apps.RegisteredApplication:
    return apps.register_application(ctx, application_input(host, **overrides), actor="operator:test")


def _validated(ctx: Context, knot: KnotDns, host: str, **overrides: object) -> int:
    reg = _registered(ctx, host, **overrides)
    app_id = apps.authenticate(
        ctx, server_name=host, reference_number=reg.reference_number, pin=reg.pin, client_addr=ADDR
    )
    apps.confirm_application(ctx, app_id, use_chinese=False, actor="subscriber")
    for ch in enrolment.dcv_start(ctx, app_id, method="dns_txt"):
        knot.add_txt(ch.txt_name, ch.txt_value)
    assert enrolment.dcv_check(ctx, app_id).passed
    return app_id


def test_full_journey_by_dns(dns_ctx: Context, knot_dns: KnotDns, smtp_sink: SmtpSink) -> None:
    host = _unique_host()
    reg = _registered(dns_ctx, host)
    assert len(reg.reference_number) == 9 and reg.reference_number[0] != "0"
    assert len(reg.pin) == 16 and reg.pin.isdigit() and reg.pin not in repr(reg)
    # The invitation arrived, with the portal link and the reference number, never the PIN.
    mail = smtp_sink.messages[-1]["content"]
    assert "Submission of Certificate Signing Request (CSR)" in mail
    assert "http://pki.ecert-demo.hk/portal/" in mail and reg.reference_number in mail and reg.pin not in mail

    spaced_pin = " ".join(reg.pin[i : i + 4] for i in range(0, 16, 4))
    app_id = apps.authenticate(
        dns_ctx, server_name=host.upper(), reference_number=reg.reference_number, pin=spaced_pin, client_addr=ADDR
    )
    view = apps.get_application(dns_ctx, app_id)
    assert (view.state, view.next_step, view.has_chinese, view.subscription_period) == (
        "approved",
        "confirm",
        True,
        "1-year",
    )
    apps.confirm_application(dns_ctx, app_id, use_chinese=True, actor="subscriber")
    assert enrolment.dcv_required(dns_ctx, app_id)
    assert [o.method.value for o in enrolment.dcv_methods(dns_ctx, app_id)][:2] == ["http_file", "dns"]

    challenges = enrolment.dcv_start(dns_ctx, app_id, method="dns_txt")
    assert [c.domain for c in challenges] == [host] and challenges[0].txt_ttl == 3600
    # Coming back later shows the same code (valid for 30 days).
    assert enrolment.dcv_start(dns_ctx, app_id, method="dns_txt")[0].code == challenges[0].code
    failed = enrolment.dcv_check(dns_ctx, app_id)
    assert not failed.passed and "no TXT record" in failed.results[0].reason
    knot_dns.add_txt(challenges[0].txt_name, challenges[0].txt_value)
    outcome = enrolment.dcv_check(dns_ctx, app_id)
    assert outcome.passed and outcome.state == "validated"

    cert = certificates.submit_csr(dns_ctx, app_id, make_csr([host]), actor="subscriber")
    assert cert.state == "issued" and cert.names == (host,) and cert.issuer_cn
    assert cert.serial_spaced.replace(" ", "").lstrip("0") == cert.serial_hex
    assert cert.validity_days <= 200
    accepted = certificates.accept_certificate(dns_ctx, app_id, actor="subscriber")
    assert accepted.state == "accepted"

    p7b = downloads.download(dns_ctx, app_id, "p7b")
    certs = pkcs7.load_der_pkcs7_certificates(p7b.data)  # a SET OF: DER sorts it, so find the leaf
    leaf = next(c for c in certs if not c.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    issuing = next(c for c in certs if c is not leaf)
    assert len(certs) == 2 and leaf.issuer == issuing.subject
    org = leaf.subject.get_attributes_for_oid(x509.NameOID.ORGANIZATION_NAME)[0].value
    assert org == "範例有限公司"  # Confirm Opt with Chinese
    hits = downloads.search_certificates(dns_ctx, by="reference", query=reg.reference_number)
    assert [h.serial_hex for h in hits] == [cert.serial_hex]
    assert downloads.public_download(dns_ctx, cert.serial_spaced, "der").data == leaf.public_bytes(
        serialization.Encoding.DER
    )


def test_a_second_csr_after_accept_is_refused_and_changes_nothing(dns_ctx: Context, knot_dns: KnotDns) -> None:
    """Issue 10 point 3: Back to the CSR step after Accept must not silently issue a second certificate."""
    host = _unique_host()
    app_id = _validated(dns_ctx, knot_dns, host)
    first = certificates.submit_csr(dns_ctx, app_id, make_csr([host]), actor="s")
    certificates.accept_certificate(dns_ctx, app_id, actor="s")
    with pytest.raises(Conflict, match="Replace certificate"):
        certificates.submit_csr(dns_ctx, app_id, make_csr([host]), actor="s")
    assert apps.get_application(dns_ctx, app_id).state == "accepted"
    with dns_ctx.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Certificate).where(Certificate.application_id == app_id)) == 1
    assert certificates.get_certificate(dns_ctx, app_id).serial_hex == first.serial_hex  # type: ignore[union-attr]


@pytest.mark.parametrize("revoke_current", [True, False])
def test_replacement_is_deliberate_and_says_what_happens_to_the_current_one(
    dns_ctx: Context, knot_dns: KnotDns, revoke_current: bool
) -> None:
    host = _unique_host()
    app_id = _validated(dns_ctx, knot_dns, host)
    first = certificates.submit_csr(dns_ctx, app_id, make_csr([host]), actor="s")
    certificates.accept_certificate(dns_ctx, app_id, actor="s")
    second = certificates.replace_certificate(
        dns_ctx, app_id, make_csr([host]), revoke_current=revoke_current, actor="s"
    )
    assert second.serial_hex != first.serial_hex and second.state == "issued"
    assert second.replaces_serial == first.serial_hex and second.revoke_replaced is revoke_current
    # Until the replacement is accepted, the current certificate stands either way.
    with dns_ctx.sessions() as s:
        assert s.scalar(select(Certificate.status).where(Certificate.serial_hex == first.serial_hex)) == "accepted"
    certificates.accept_certificate(dns_ctx, app_id, actor="s")
    with dns_ctx.sessions() as s:
        old = s.scalar(select(Certificate).where(Certificate.serial_hex == first.serial_hex))
        assert old is not None
        if revoke_current:
            assert old.status == "revoked" and old.revocation_reason == "superseded"
        else:
            assert old.status == "accepted" and old.revoked_at is None  # left to expire
        events = s.scalars(select(AuditEvent.event)).all()
    assert "csr.submitted" in events and "cert.accepted" in events


def test_a_rejected_replacement_leaves_the_current_certificate(dns_ctx: Context, knot_dns: KnotDns) -> None:
    host = _unique_host()
    app_id = _validated(dns_ctx, knot_dns, host)
    first = certificates.submit_csr(dns_ctx, app_id, make_csr([host]), actor="s")
    certificates.accept_certificate(dns_ctx, app_id, actor="s")
    certificates.replace_certificate(dns_ctx, app_id, make_csr([host]), revoke_current=True, actor="s")
    certificates.reject_certificate(dns_ctx, app_id, reason="wrong server", actor="s")
    assert apps.get_application(dns_ctx, app_id).state == "accepted"
    assert certificates.get_certificate(dns_ctx, app_id).serial_hex == first.serial_hex  # type: ignore[union-attr]


def test_rejected_certificate_is_revoked_and_a_new_csr_allowed(dns_ctx: Context, knot_dns: KnotDns) -> None:
    host = _unique_host()
    app_id = _validated(dns_ctx, knot_dns, host)
    cert = certificates.submit_csr(dns_ctx, app_id, make_csr([host]), actor="s")
    certificates.reject_certificate(dns_ctx, app_id, reason="wrong key", actor="s")
    with dns_ctx.sessions() as s:
        row = s.scalar(select(Certificate).where(Certificate.serial_hex == cert.serial_hex))
        assert row is not None and row.status == "rejected" and row.revoked_at is not None
        ca_label = s.scalar(select(CA.label).where(CA.id == row.ca_id))
    # On the CRL at once, not at the next job pass.
    from ecert.services.publication import latest_crl

    crl = x509.load_der_x509_crl(latest_crl(dns_ctx, ca_label).der)
    assert crl.get_revoked_certificate_by_serial_number(int(cert.serial_hex, 16)) is not None
    with pytest.raises(Conflict):
        certificates.accept_certificate(dns_ctx, app_id, actor="s")
    assert certificates.get_certificate(dns_ctx, app_id) is None
    assert certificates.submit_csr(dns_ctx, app_id, make_csr([host]), actor="s").state == "issued"


def test_caa_forbidding_refuses_issuance(dns_ctx: Context, knot_dns: KnotDns) -> None:
    host = _unique_host()
    app_id = _validated(dns_ctx, knot_dns, host)
    knot_dns.set_records(host, "CAA", ['0 issue "other-ca.example"'])
    with pytest.raises(ValidationFailed, match=host):
        certificates.submit_csr(dns_ctx, app_id, make_csr([host]), actor="s")
    assert apps.get_application(dns_ctx, app_id).state == "validated"


def test_parallel_csr_submits_give_one_certificate(dns_ctx: Context, knot_dns: KnotDns) -> None:
    host = _unique_host()
    app_id = _validated(dns_ctx, knot_dns, host)
    csrs = [make_csr([host]) for _ in range(6)]
    results: list[object] = []

    def go(csr: str) -> None:
        try:
            results.append(certificates.submit_csr(dns_ctx, app_id, csr, actor="s"))
        except Conflict as exc:
            results.append(exc)

    threads = [threading.Thread(target=go, args=(c,)) for c in csrs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sum(isinstance(r, certificates.CertificateView) for r in results) == 1
    assert sum(isinstance(r, Conflict) for r in results) == 5
    with dns_ctx.sessions() as s:
        assert (
            s.scalar(
                select(func.count())
                .select_from(Certificate)
                .where(Certificate.application_id == app_id, Certificate.status != "failed")
            )
            == 1
        )


def test_government_alone_does_not_skip_dcv(dns_ctx: Context) -> None:
    """The seed exempts government bureaux; the BR does not (BR 3.2.2.4), so they validate too."""
    reg = _registered(dns_ctx, _unique_host(), is_government=True)
    apps.confirm_application(dns_ctx, reg.application_id, use_chinese=False, actor="s")
    assert enrolment.dcv_required(dns_ctx, reg.application_id)
    assert enrolment.dcv_methods(dns_ctx, reg.application_id)
    assert apps.get_application(dns_ctx, reg.application_id).state == "confirmed"


def test_names_under_an_operator_held_validation_skip_dcv(dns_ctx: Context, knot_dns: KnotDns) -> None:
    hold_namespace(dns_ctx, knot_dns)
    reg = _registered(dns_ctx, _unique_host(), is_government=True)
    apps.confirm_application(dns_ctx, reg.application_id, use_chinese=False, actor="s")
    assert not enrolment.dcv_required(dns_ctx, reg.application_id)
    assert enrolment.dcv_methods(dns_ctx, reg.application_id) == []
    assert apps.get_application(dns_ctx, reg.application_id).state == "validated"
    with dns_ctx.sessions() as s:
        held = s.scalars(select(DomainValidation).where(DomainValidation.operator_held.is_(True))).all()
        assert [(v.domain, v.method, v.namespace) for v in held] == [("example.com", "dns", True)]
        assert held[0].evidence and "dcv.exempt" in s.scalars(select(AuditEvent.event)).all()


def test_operator_validation_fails_without_the_txt_record(dns_ctx: Context) -> None:
    from ecert.core.errors import ValidationFailed
    from ecert.services.operator_dcv import check_operator_validation, start_operator_validation

    start_operator_validation(dns_ctx, "example.net", actor="operator")
    with pytest.raises(ValidationFailed):
        check_operator_validation(dns_ctx, "example.net", actor="operator")
    reg = _registered(dns_ctx, f"w{uuid.uuid4().hex[:8]}.example.net", is_government=True)
    apps.confirm_application(dns_ctx, reg.application_id, use_chinese=False, actor="s")
    assert enrolment.dcv_required(dns_ctx, reg.application_id)


def test_wrong_pin_locks_out_with_the_same_message_and_audit(dns_ctx: Context) -> None:
    reg = _registered(dns_ctx, _unique_host())
    view = apps.get_application(dns_ctx, reg.application_id)
    wrong = "0000000000000000" if reg.pin != "0000000000000000" else "1111111111111111"
    messages = set()
    for _ in range(4):
        with pytest.raises(Unauthorized) as exc:
            apps.authenticate(
                dns_ctx,
                server_name=view.server_name.a_label,
                reference_number=reg.reference_number,
                pin=wrong,
                client_addr=ADDR,
            )
        messages.add(exc.value.message)
    with pytest.raises(Unauthorized) as unknown:
        apps.authenticate(
            dns_ctx, server_name=view.server_name.a_label, reference_number="999999999", pin=wrong, client_addr=ADDR
        )
    messages.add(unknown.value.message)
    assert messages == {apps.LOGIN_FAILED_MESSAGE}
    with pytest.raises(RateLimited):
        apps.authenticate(
            dns_ctx,
            server_name=view.server_name.a_label,
            reference_number=reg.reference_number,
            pin=wrong,
            client_addr=ADDR,
        )
    with pytest.raises(RateLimited):  # locked: even the right PIN is refused now
        apps.authenticate(
            dns_ctx,
            server_name=view.server_name.a_label,
            reference_number=reg.reference_number,
            pin=reg.pin,
            client_addr=ADDR,
        )
    with dns_ctx.sessions() as s:
        events = s.scalars(select(AuditEvent.event)).all()
        assert "login.locked" in events and events.count("login.failed") == 6
        assert events.count("login.refused") == 1  # the attempt while locked: audited, not counted as a failure
        assert not any(reg.pin in str(d) for d in s.scalars(select(AuditEvent.details)).all())
        assert s.scalar(select(func.count()).select_from(LoginAttempt)) == 6


def test_lockout_ends_after_the_lockout_period(demo_ctx: Context) -> None:
    reg = _registered(demo_ctx, "www.example.com")
    for _ in range(demo_ctx.settings.login_max_failures):
        with pytest.raises((Unauthorized, RateLimited)):
            apps.authenticate(
                demo_ctx,
                server_name="www.example.com",
                reference_number=reg.reference_number,
                pin="1" * 16 if reg.pin != "1" * 16 else "2" * 16,
                client_addr=ADDR,
            )
    later = demo_ctx.clock() + timedelta(minutes=demo_ctx.settings.login_lockout_minutes + 1)
    demo_ctx.clock = lambda: later
    assert (
        apps.authenticate(
            demo_ctx,
            server_name="www.example.com",
            reference_number=reg.reference_number,
            pin=reg.pin,
            client_addr=ADDR,
        )
        == reg.application_id
    )


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"server_name": "localhost"}, BadName),
        ({"server_name": "*.example.com"}, PolicyViolation),
        ({"additional_names": ["www2.example.com"]}, PolicyViolation),
        ({"cert_type": CertType.EV}, PolicyViolation),
    ],
)
def test_bad_applications_are_refused(demo_ctx: Context, overrides: dict[str, object], error: type) -> None:
    with pytest.raises(error):
        _registered(demo_ctx, "www.example.com", **overrides)
    with demo_ctx.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Application)) == 0


@pytest.mark.parametrize(
    ("csr", "error"),
    [
        ("not a csr", BadCSR),
        (make_csr(["other.example.org"]), PolicyViolation),
        (make_csr(["www.example.com", "evil.example.net"]), PolicyViolation),
    ],
)
def test_bad_csrs_change_nothing(dns_ctx: Context, knot_dns: KnotDns, csr: str, error: type) -> None:
    hold_namespace(dns_ctx, knot_dns)
    reg = _registered(dns_ctx, "www.example.com", is_government=True)
    apps.confirm_application(dns_ctx, reg.application_id, use_chinese=False, actor="s")
    with pytest.raises(error):
        certificates.submit_csr(dns_ctx, reg.application_id, csr, actor="s")
    assert apps.get_application(dns_ctx, reg.application_id).state == "validated"
    with dns_ctx.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Certificate)) == 0
        assert "issuance.refused" in s.scalars(select(AuditEvent.event)).all()  # the RA audits every refusal


def test_csr_before_validation_is_refused(demo_ctx: Context) -> None:
    reg = _registered(demo_ctx, "www.example.com")
    with pytest.raises(Conflict):
        certificates.submit_csr(demo_ctx, reg.application_id, make_csr(["www.example.com"]), actor="s")
    apps.confirm_application(demo_ctx, reg.application_id, use_chinese=False, actor="s")
    with pytest.raises(Conflict):  # confirmed but not validated
        certificates.submit_csr(demo_ctx, reg.application_id, make_csr(["www.example.com"]), actor="s")


def test_pin_envelope_escapes_and_groups() -> None:
    html = render_pin_envelope_html("123456789", "1234567812345678", "www.example.com", "<b>Evil</b> 公司")
    assert "1234 5678 1234 5678" in html and "&lt;b&gt;Evil&lt;/b&gt; 公司" in html and "@media print" in html


@pytest.mark.postgres
def test_journey_and_race_on_postgresql(
    make_demo_ctx: Callable[..., Context], pg_url: str, knot_dns: KnotDns, smtp_sink: SmtpSink
) -> None:
    ctx = make_demo_ctx(
        database_url=pg_url,
        dns_resolvers=(knot_dns.resolver_addr,),
        allow_private_addresses=True,
        smtp_port=smtp_sink.port,
    )
    host = _unique_host()
    app_id = _validated(ctx, knot_dns, host)
    results: list[object] = []

    def go() -> None:
        try:
            results.append(certificates.submit_csr(ctx, app_id, make_csr([host]), actor="s"))
        except Conflict as exc:
            results.append(exc)

    threads = [threading.Thread(target=go) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sum(isinstance(r, certificates.CertificateView) for r in results) == 1
    assert certificates.accept_certificate(ctx, app_id, actor="s").state == "accepted"
    assert len(pkcs7.load_der_pkcs7_certificates(downloads.download(ctx, app_id, "p7b").data)) == 2


# --- DCV: switching methods, e-mail at an Authorization Domain Name, audit (issue 4 audit, items 1, 6, 7) ---


@pytest.fixture
def web_ctx(
    make_demo_ctx: Callable[..., Context], knot_dns: KnotDns, http_file_server: HttpFileServer, smtp_sink: SmtpSink
) -> Context:
    """DNS, HTTP and SMTP all pointed at the loopback fixtures, so every DCV method can pass."""
    return make_demo_ctx(
        dns_resolvers=(knot_dns.resolver_addr,),
        allow_private_addresses=True,
        caa_identities=("ecert.example.hk",),
        http_port=http_file_server.http_port,
        https_port=http_file_server.https_port,
        smtp_port=smtp_sink.port,
        smtp_port_for_dcv=smtp_sink.port,
    )


def _confirmed(ctx: Context, host: str) -> int:
    reg = _registered(ctx, host)
    apps.confirm_application(ctx, reg.application_id, use_chinese=False, actor="subscriber")
    return reg.application_id


def publish(method: str, view: enrolment.ChallengeView, knot: KnotDns, web: HttpFileServer) -> None:
    """Do what the instructions of ``method`` say: the TXT record, or the file on the site."""
    if method == "dns_txt":
        knot.add_txt(str(view.txt_name), str(view.txt_value))
    else:
        knot.set_records(view.domain, "A", ["127.0.0.1"])
        web.serve_file(view.domain, str(view.file_content))


SWITCHES = [
    ("dns_txt", "http_file", "dns_txt"),
    ("http_file", "dns_txt", "http_file"),
    ("http_file", "dns_txt"),
    ("dns_txt", "http_file"),
]


@pytest.mark.parametrize("order", SWITCHES)
def test_confirm_checks_the_method_last_opened(
    web_ctx: Context, knot_dns: KnotDns, http_file_server: HttpFileServer, order: tuple[str, ...]
) -> None:
    host = _unique_host()
    app_id = _confirmed(web_ctx, host)
    seen: dict[str, list[str | None]] = {}
    for method in order:
        view = enrolment.dcv_start(web_ctx, app_id, method=method)[0]
        seen.setdefault(method, []).append(view.code)
    # Opening the other method did not destroy this one's code: coming back shows the same one.
    assert all(len(set(codes)) == 1 for codes in seen.values())
    publish(order[-1], view, knot_dns, http_file_server)
    outcome = enrolment.dcv_check(web_ctx, app_id)
    assert outcome.passed, outcome.results
    assert outcome.results[0].method == enrolment.parse_method(order[-1]).value


def test_confirm_may_name_the_method_and_the_other_code_stays_live(
    web_ctx: Context, knot_dns: KnotDns, http_file_server: HttpFileServer
) -> None:
    host = _unique_host()
    app_id = _confirmed(web_ctx, host)
    dns_view = enrolment.dcv_start(web_ctx, app_id, method="dns_txt")[0]
    enrolment.dcv_start(web_ctx, app_id, method="http_file")
    assert enrolment.current_method(web_ctx, app_id) is DcvMethod.HTTP_FILE
    knot_dns.add_txt(str(dns_view.txt_name), str(dns_view.txt_value))
    outcome = enrolment.dcv_check(web_ctx, app_id, method="dns_txt")
    assert outcome.passed and outcome.results[0].method == "dns"


def test_reopening_a_method_audits_no_new_start(web_ctx: Context) -> None:
    host = _unique_host()
    app_id = _confirmed(web_ctx, host)
    for method in ("dns_txt", "dns_txt", "http_file", "dns_txt"):
        enrolment.dcv_start(web_ctx, app_id, method=method)
    with web_ctx.sessions() as s:
        events = s.scalars(select(AuditEvent.event).where(AuditEvent.event.like("dcv.%")).order_by(AuditEvent.id)).all()
    assert events.count("dcv.started") == 2  # one per code made: DNS once, Website Change once
    assert events.count("dcv.method_selected") == 3  # dns, http_file, dns again


def _mailed_code(sink: SmtpSink) -> str:
    content = sink.messages[-1]["content"]
    return content.split("Validation Code:")[1].split()[0]


def test_email_offers_every_authorization_domain_name_and_passes_at_a_parent(
    web_ctx: Context, smtp_sink: SmtpSink
) -> None:
    host = f"www.{uuid.uuid4().hex[:8]}.example.com"
    app_id = _confirmed(web_ctx, host)
    listed = enrolment.dcv_start(web_ctx, app_id, method="email")[0].email_addresses
    parent = host.split(".", 1)[1]
    assert {f"admin@{host}", f"admin@{parent}", "admin@example.com"} <= set(listed)
    assert not any(a.endswith("@com") for a in listed)
    sent = enrolment.dcv_start(web_ctx, app_id, method="email", email_local_part="admin", email_domain="example.com")
    assert sent[0].email_address == "admin@example.com" and smtp_sink.messages[-1]["to"] == ["admin@example.com"]
    outcome = enrolment.dcv_check(web_ctx, app_id, email_code=_mailed_code(smtp_sink))
    assert outcome.passed and outcome.state == "validated"


@pytest.mark.parametrize("email_domain", ["com", "other.example.com", "example.net", "x.www.{host}"])
def test_email_refuses_a_domain_that_is_not_an_adn(web_ctx: Context, smtp_sink: SmtpSink, email_domain: str) -> None:
    host = f"www.{uuid.uuid4().hex[:8]}.example.com"
    app_id = _confirmed(web_ctx, host)
    with pytest.raises(PolicyViolation, match="Authorization Domain Name"):
        enrolment.dcv_start(
            web_ctx, app_id, method="email", email_local_part="admin", email_domain=email_domain.format(host=host)
        )
    assert all(m["to"] == ["webmaster@example.com"] for m in smtp_sink.messages)  # only the invitation went out


def test_undeliverable_email_says_so_plainly_and_audits_the_reason(
    make_demo_ctx: Callable[..., Context], knot_dns: KnotDns
) -> None:
    ctx = make_demo_ctx(
        dns_resolvers=(knot_dns.resolver_addr,), allow_private_addresses=True, smtp_port=9, smtp_port_for_dcv=9
    )  # nothing listens on port 9: the relay refuses the connection
    host = _unique_host()
    app_id = _confirmed(ctx, host)
    with pytest.raises(ValidationFailed) as caught:
        enrolment.dcv_start(ctx, app_id, method="email", email_local_part="admin")
    assert caught.value.message == enrolment.EMAIL_NOT_DELIVERED and "Error" not in str(caught.value)
    with ctx.sessions() as s:
        failed = s.scalars(select(AuditEvent).where(AuditEvent.event == "dcv.email_failed")).one()
    assert "ConnectionRefusedError" in failed.details["error"] and failed.details["to"] == f"admin@{host}"
    outcome = enrolment.dcv_check(ctx, app_id, email_code="anything")  # the undelivered code does not count
    assert not outcome.passed and "send the Validation Code" in outcome.results[0].reason


def test_validation_file_is_only_read_never_created(web_ctx: Context, knot_dns: KnotDns) -> None:
    host = _unique_host()
    app_id = _confirmed(web_ctx, host)
    assert enrolment.validation_file(web_ctx, app_id) is None  # the instructions were never opened
    code = enrolment.dcv_start(web_ctx, app_id, method="http_file")[0].code
    assert enrolment.validation_file(web_ctx, app_id, host) == code
    with web_ctx.sessions() as s:
        assert s.scalar(select(func.count()).select_from(DcvChallenge)) == 1


def test_invitation_shows_an_idn_in_both_forms(dns_ctx: Context, smtp_sink: SmtpSink) -> None:
    _registered(dns_ctx, "香港郵政.example.com")
    mail = smtp_sink.messages[-1]["content"]
    import email

    body = email.message_from_string(mail).get_payload(decode=True).decode()  # type: ignore[union-attr]
    assert "香港郵政.example.com (xn--" in body


def test_registration_says_why_the_invitation_was_not_sent(make_demo_ctx: Callable[..., Context]) -> None:
    ctx = make_demo_ctx(smtp_port=9)  # nothing listens there
    reg = _registered(ctx, _unique_host())
    assert not reg.mail_sent and reg.mail_error is not None and "\n" not in reg.mail_error
    assert "127.0.0.1:9 refused the connection" in reg.mail_error and reg.pin not in reg.mail_error


def test_a_high_risk_name_needs_a_recorded_review(demo_ctx: Context) -> None:
    with pytest.raises(PolicyViolation, match="manual high-risk review") as err:
        application_input("p\u0430ypal.com")
    assert err.value.rule == "BR 4.2.1"
    reg = apps.register_application(
        demo_ctx, application_input("p\u0430ypal.com", high_risk_reviewed=True), actor="operator:test"
    )
    with demo_ctx.read() as s:
        event = s.scalar(select(AuditEvent).where(AuditEvent.event == "application.registered"))
        assert event.details["high_risk_reviewed"] is True and event.subject == reg.reference_number


def test_a_namespace_held_for_an_organisation_widens_what_it_may_be_issued(dns_ctx: Context, knot_dns: KnotDns) -> None:  # noqa: F811
    """Issue 13 point 2: names under an operator-held validation made for that organisation may be issued to
    it (direct issuance and ACME share the rule, core.evidence.names_outside); other organisations may not."""
    from ecert.services import operator_dcv

    owner = _registered(dns_ctx, f"www.{uuid.uuid4().hex[:8]}.example.org")
    other = _registered(dns_ctx, f"www.{uuid.uuid4().hex[:8]}.example.org")
    started = operator_dcv.start_operator_validation(dns_ctx, "example.org", actor="operator:test")
    knot_dns.add_txt(started.txt_hosts[0], started.txt_value)
    operator_dcv.check_operator_validation(
        dns_ctx, "example.org", actor="operator:test", for_application=owner.reference_number
    )
    name = f"new{uuid.uuid4().hex[:6]}.example.org"
    issued = certificates.issue_direct(
        dns_ctx,
        csr=make_csr([name]),
        profile="server",
        names=(name,),
        vetting_id=None,
        reference_number=owner.reference_number,
        days=None,
        high_risk_reviewed=False,
        actor="operator:test",
    )
    assert issued.names == (name,) and "operator" in issued.evidence_summary[name]
    with pytest.raises(PolicyViolation, match="not among the names of application"):
        certificates.issue_direct(
            dns_ctx,
            csr=make_csr([name]),
            profile="server",
            names=(name,),
            vetting_id=None,
            reference_number=other.reference_number,
            days=None,
            high_risk_reviewed=False,
            actor="operator:test",
        )
