"""The portal and public pages over HTTP: every step in both languages, CSRF, escaping, lock-out, downloads."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs7
from fastapi.testclient import TestClient

from ecert.services import applications as apps
from ecert.services.context import Context
from ecert.web import i18n
from ecert.web.app import create_app
from tests.integration.ca_fixtures import DEMO_ENV, hold_namespace
from tests.integration.dcv_fixtures import KnotDns
from tests.integration.test_applications import application_input, make_csr

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "the page has no CSRF token"
    return found.group(1)


def portal_context(make_demo_ctx: Callable[..., Context], knot_dns: KnotDns) -> Context:
    """The demo CA the page tests run against (test_portal_revoke builds its ``ctx`` from it too)."""
    # CAA is looked up on the loopback Knot server (no records: issuance permitted). SMTP on a closed
    # port: the registration mail fails fast and is audited; the pages do not need it.
    ctx = make_demo_ctx(
        login_max_failures=3, smtp_port=9, dns_resolvers=(knot_dns.resolver_addr,), allow_private_addresses=True
    )
    # The operator holds a validation of example.com, so these page tests skip the DCV step (the DNS
    # method itself is the browser test's); the seed's government exemption alone would not (BR 3.2.2.4).
    hold_namespace(ctx, knot_dns)
    return ctx


def portal_client(ctx: Context) -> TestClient:
    """A client of the whole app on ``ctx``; use it in a ``with`` block so the app starts and stops."""
    return TestClient(create_app(ctx.settings, DEMO_ENV, context=ctx))


@pytest.fixture
def ctx(make_demo_ctx: Callable[..., Context], knot_dns: KnotDns) -> Context:
    return portal_context(make_demo_ctx, knot_dns)


@pytest.fixture
def client(ctx: Context) -> Iterator[TestClient]:
    with portal_client(ctx) as c:
        yield c


def register(ctx: Context, **overrides: object) -> tuple[str, apps.RegisteredApplication]:
    host = overrides.pop("host", None) or f"w{uuid.uuid4().hex[:10]}.example.com"
    values: dict[str, object] = {"is_government": True}
    values.update(overrides)
    return str(host), apps.register_application(ctx, application_input(str(host), **values), actor="operator:test")


def log_in(client: TestClient, host: str, reg: apps.RegisteredApplication, *, pin: str | None = None):  # type: ignore[no-untyped-def]
    page = client.get("/portal/login")
    spaced = " ".join((pin or reg.pin)[i : i + 4] for i in range(0, 16, 4))
    return client.post(
        "/portal/login",
        data={
            "csrf_token": csrf_of(page.text),
            "server_name": host,
            "reference_number": reg.reference_number,
            "pin": spaced,
        },
        follow_redirects=False,
    )


@pytest.mark.parametrize("path", ["/portal/login", "/repository/", "/search", "/notices", "/privacy"])
@pytest.mark.parametrize(("lang", "html_lang", "switch"), [("en", "en", "中文"), ("zh_HK", "zh-Hant-HK", "English")])
def test_every_public_page_declares_charset_language_switch_and_footer(
    client: TestClient, path: str, lang: str, html_lang: str, switch: str
) -> None:
    page = client.get(path, params={"lang": lang})
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert '<meta charset="utf-8">' in page.text
    assert f'<html lang="{html_lang}">' in page.text
    assert f'id="lang-switch">{switch}</a>' in page.text
    assert "Privacy" in page.text or "私隱" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]


@pytest.mark.parametrize(
    ("query", "cookie", "accept", "expected"),
    [
        (None, None, "zh-TW,zh;q=0.9,en;q=0.5", "zh_HK"),
        (None, None, "zh-Hant", "zh_HK"),
        (None, None, "zh-HK", "zh_HK"),
        (None, None, "en-GB,en;q=0.8", "en"),
        (None, None, "fr-FR", "en"),
        (None, "zh_HK", "en", "zh_HK"),
        ("en", "zh_HK", "zh-TW", "en"),
        (None, None, None, "en"),
    ],
)
def test_language_comes_from_query_then_cookie_then_accept_language(
    query: str | None, cookie: str | None, accept: str | None, expected: str
) -> None:
    assert i18n.negotiate(query, cookie, accept) == expected


def test_an_explicit_language_choice_is_remembered(client: TestClient) -> None:
    client.get("/notices", params={"lang": "zh_HK"})
    assert '<html lang="zh-Hant-HK">' in client.get("/privacy").text


def test_every_catalog_message_has_a_chinese_translation() -> None:
    from babel.messages import pofile

    with (i18n.LOCALE_DIR / "zh_HK" / "LC_MESSAGES" / "messages.po").open("rb") as fh:
        catalog = pofile.read_po(fh)
    missing = [m.id for m in catalog if m.id and not m.string]
    assert missing == []


def test_every_template_string_is_in_the_catalog() -> None:
    from babel.messages import pofile
    from babel.messages.extract import extract_from_dir

    found = {
        msg
        for _, _, msg, _, _ in extract_from_dir(
            str(i18n.LOCALE_DIR.parent / "templates"),
            [("**.html", "jinja2")],
            options_map={"**.html": {"extensions": "jinja2.ext.i18n"}},
        )
    }
    with (i18n.LOCALE_DIR / "zh_HK" / "LC_MESSAGES" / "messages.po").open("rb") as fh:
        catalog = pofile.read_po(fh)
    assert sorted(m for m in found if isinstance(m, str) and m not in catalog) == []


def test_wrong_pin_and_unknown_reference_get_the_same_message(ctx: Context, client: TestClient) -> None:
    host, reg = register(ctx)
    wrong_pin = log_in(client, host, reg, pin="0000000000000000" if reg.pin != "0" * 16 else "1" * 16)
    unknown = log_in(client, host, apps.RegisteredApplication(0, "123456789", reg.pin))
    assert wrong_pin.status_code == unknown.status_code == 401
    message = "The Server Name, Reference Number or e-Cert PIN is not correct."
    assert message in wrong_pin.text and message in unknown.text


def test_repeated_wrong_pins_lock_the_reference_even_for_the_right_pin(ctx: Context, client: TestClient) -> None:
    host, reg = register(ctx)
    for _ in range(3):
        log_in(client, host, reg, pin="9" * 16 if reg.pin != "9" * 16 else "8" * 16)
    locked = log_in(client, host, reg)
    assert locked.status_code == 429
    assert "Too many unsuccessful attempts" in locked.text


def test_session_cookie_is_httponly_samesite_and_rotated_at_login(ctx: Context, client: TestClient) -> None:
    host, reg = register(ctx)
    first = client.get("/portal/login")
    before = client.cookies.get("ecert_portal")
    assert "httponly" in first.headers["set-cookie"].lower() and "samesite=lax" in first.headers["set-cookie"].lower()
    old_token = csrf_of(first.text)
    assert log_in(client, host, reg).status_code == 303
    assert client.cookies.get("ecert_portal") != before
    refused = client.post("/portal/confirm", data={"csrf_token": old_token, "action": "confirm"})
    assert refused.status_code == 403


@pytest.mark.parametrize("token", [None, "", "forged.token.value", "x" * 500])
def test_posts_without_a_valid_csrf_token_are_refused_and_change_nothing(
    ctx: Context, client: TestClient, token: str | None
) -> None:
    host, reg = register(ctx)
    log_in(client, host, reg)
    data = {"action": "confirm"} if token is None else {"action": "confirm", "csrf_token": token}
    refused = client.post("/portal/confirm", data=data)
    assert refused.status_code == 403
    assert "did not come from this site" in refused.text
    assert apps.get_application(ctx, reg.application_id).state == "approved"


def test_a_token_from_another_session_is_refused(ctx: Context, client: TestClient) -> None:
    host, reg = register(ctx)
    with TestClient(client.app) as other:
        foreign = csrf_of(other.get("/portal/login").text)
    log_in(client, host, reg)
    assert client.post("/portal/confirm", data={"csrf_token": foreign, "action": "confirm"}).status_code == 403


def test_step_pages_without_a_session_go_to_the_login_page(client: TestClient) -> None:
    for path in (
        "/portal/confirm",
        "/portal/dcv",
        "/portal/csr",
        "/portal/certificate",
        "/portal/download",
        "/portal/download/p7b",
    ):
        response = client.get(path, follow_redirects=False)
        assert (response.status_code, response.headers["location"]) == (303, "/portal/login")


def test_script_in_the_organisation_name_is_shown_as_text(ctx: Context, client: TestClient) -> None:
    evil = '<script>alert("x")</script>'
    host, reg = register(ctx, org_name_en=evil, org_name_zh="<b>粗體</b>有限公司")
    log_in(client, host, reg)
    page = client.get("/portal/confirm")
    assert evil not in page.text and "<b>粗體" not in page.text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page.text
    assert "&lt;b&gt;粗體&lt;/b&gt;有限公司" in page.text


def test_confirm_page_shows_the_guide_buttons_and_both_forms_of_an_idn(ctx: Context, client: TestClient) -> None:
    host, reg = register(ctx, additional_names=["香港郵政.example.com"], cert_type="multi")
    log_in(client, host, reg)
    page = client.get("/portal/confirm", params={"lang": "en"}).text
    for text in (
        "Confirm",
        "Reject",
        "Back",
        "Confirm Opt with Chinese",
        "Number of Additional Server(s)",
        "please make sure the Chinese characters are correct",
        "範例有限公司",
        "1-year",
    ):
        assert text in page
    assert "香港郵政.example.com" in page and "xn--" in page


def test_confirm_opt_with_chinese_is_absent_without_chinese_names(ctx: Context, client: TestClient) -> None:
    host, reg = register(ctx, org_name_zh=None)
    log_in(client, host, reg)
    assert "Confirm Opt with Chinese" not in client.get("/portal/confirm").text


def _dns_names(cert: x509.Certificate) -> list[str]:
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
            x509.DNSName
        )
    except x509.ExtensionNotFound:
        return []


def _to_csr_step(ctx: Context, client: TestClient, *, chinese: bool = False) -> tuple[str, apps.RegisteredApplication]:
    host, reg = register(ctx)
    log_in(client, host, reg)
    page = client.get("/portal/confirm")
    done = client.post(
        "/portal/confirm",
        data={"csrf_token": csrf_of(page.text), "action": "confirm_zh" if chinese else "confirm"},
        follow_redirects=False,
    )
    assert (done.status_code, done.headers.get("location")) == (303, "/portal/csr"), done.text[-3000:]
    return host, reg


def test_a_csr_for_another_name_is_refused_with_the_rule_and_the_name(ctx: Context, client: TestClient) -> None:
    _to_csr_step(ctx, client)
    page = client.get("/portal/csr")
    refused = client.post(
        "/portal/csr", data={"csrf_token": csrf_of(page.text), "csr_text": make_csr(["other.example.org"])}
    )
    assert refused.status_code == 400
    assert "other.example.org" in refused.text and 'class="rule"' in refused.text
    assert "Your request was refused." in refused.text


@pytest.mark.parametrize(
    ("text", "status", "message"),
    [
        ("   ", 400, "Please paste your Certificate Signing Request"),
        ("-----BEGIN CERTIFICATE REQUEST-----\nnot base64\n-----END CERTIFICATE REQUEST-----", 400, "refused"),
        ("A" * (70 * 1024), 413, "too large"),
    ],
)
def test_hostile_csr_text_gets_a_clear_refusal(
    ctx: Context, client: TestClient, text: str, status: int, message: str
) -> None:
    _, reg = _to_csr_step(ctx, client)
    page = client.get("/portal/csr")
    refused = client.post("/portal/csr", data={"csrf_token": csrf_of(page.text), "csr_text": text})
    assert refused.status_code == status and message in refused.text
    assert apps.get_application(ctx, reg.application_id).state == "validated"


@pytest.mark.parametrize("lang", ["en", "zh_HK"])
def test_the_journey_to_download_and_search_without_dcv(ctx: Context, client: TestClient, lang: str) -> None:
    client.get("/notices", params={"lang": lang})
    host, reg = _to_csr_step(ctx, client, chinese=True)
    page = client.get("/portal/csr")
    issued = client.post("/portal/csr", data={"csrf_token": csrf_of(page.text), "csr_text": make_csr([host])})
    assert issued.status_code == 200 and issued.url.path == "/portal/certificate"
    info = issued.text
    assert reg.reference_number in info
    serial = re.search(r'<code id="serial">([0-9a-f ]+)</code>', info)
    assert serial and re.fullmatch(r"([0-9a-f]{2} )+[0-9a-f]{2}", serial.group(1))
    assert re.search(r"\d\d/\d\d/\d{4} - \d\d/\d\d/\d{4} \((\d+) (days|日)\)", info)
    accepted = client.post("/portal/certificate", data={"csrf_token": csrf_of(info)})
    assert accepted.url.path == "/portal/download"
    p7b = client.get("/portal/download/p7b")
    certs = pkcs7.load_der_pkcs7_certificates(p7b.content)  # a SET OF: any order
    leaves = [c for c in certs if host in _dns_names(c)]
    assert len(leaves) == 1 and len(certs) >= 2
    assert "attachment" in p7b.headers["content-disposition"]
    found = client.get("/search", params={"by": "server_name", "q": host})
    assert host in found.text and "範例有限公司" in found.text  # Confirm Opt with Chinese: O is Chinese
    hex_serial = serial.group(1).replace(" ", "")
    assert client.get(f"/search/download/{hex_serial}/pem").content.startswith(b"-----BEGIN CERTIFICATE-----")


def test_rejecting_the_certificate_asks_for_a_reason(ctx: Context, client: TestClient) -> None:
    host, reg = _to_csr_step(ctx, client)
    page = client.get("/portal/csr")
    info = client.post("/portal/csr", data={"csrf_token": csrf_of(page.text), "csr_text": make_csr([host])}).text
    form = client.get("/portal/reject/certificate")
    no_reason = client.post("/portal/reject/certificate", data={"csrf_token": csrf_of(form.text), "reason": " "})
    assert no_reason.status_code == 400 and "Please state the reason." in no_reason.text
    assert "Accept" in info
    done = client.post("/portal/reject/certificate", data={"csrf_token": csrf_of(form.text), "reason": "wrong key"})
    assert done.status_code == 200 and "has been rejected" in done.text
    assert apps.get_application(ctx, reg.application_id).state == "validated"


@pytest.mark.parametrize("query", ["' OR 1=1--", "%", "\\", "_", "<script>x</script>"])
def test_search_input_is_literal_and_escaped(client: TestClient, query: str) -> None:
    page = client.get("/search", params={"by": "server_name", "q": query})
    assert page.status_code in (200, 400)
    assert "<script>x</script>" not in page.text
    assert 'class="hit"' not in page.text


@pytest.mark.parametrize(
    "path",
    [
        "/search/download/..%2F..%2Fkeys%2Fca.key/pem",
        "/search/download/abc/../../x",
        "/search/download/zz/pem",
        "/search/download/abcdef/exe",
        "/portal/download/..%2fkey",
    ],
)
def test_download_paths_that_are_not_a_serial_and_format_are_404(client: TestClient, path: str) -> None:
    assert client.get(path).status_code in (404, 303)


def test_repository_page_labels_issuing_cas_with_their_effective_date(client: TestClient) -> None:
    page = client.get("/repository/", params={"lang": "en"}).text
    assert re.search(r"Effective from \d\d/\d\d/\d{4}", page)
    assert "Cross-certificate" in page and "ARL" in page and "CRL" in page


def test_login_page_has_no_sub_ca_notice_with_one_generation(client: TestClient) -> None:
    page = client.get("/portal/login", params={"lang": "en"}).text
    assert "new Sub CA certificates" not in page and 'id="rollover"' not in page
    assert "Shown on the cover of the PIN Envelope" in page and "No need to input the space" in page


@pytest.mark.parametrize("lang", ["en", "zh_HK"])
def test_login_page_announces_the_rollover_and_the_old_sub_cas_revocation(
    ctx: Context, client: TestClient, lang: str
) -> None:
    from datetime import timedelta

    from ecert.services import ceremony
    from ecert.services.ca_config import load_hierarchy_config
    from ecert.store.models import CA

    effective = ctx.clock() + timedelta(days=10)
    _, old = ceremony.rollover(ctx, load_hierarchy_config(None), "ov", effective_from=effective)
    revoke_by = ctx.clock() + timedelta(days=60)
    with ctx.transaction() as session:  # the operator schedules the old Sub CA's revocation
        session.get(CA, old[0].id).revoked_at = revoke_by  # type: ignore[union-attr]
    page = client.get("/portal/login", params={"lang": lang}).text
    assert effective.strftime("%d/%m/%Y") in page.split('id="rollover"')[1]
    notice = page.split('id="old-sub-ca-revocation"')[1].split("</p>")[0]
    assert revoke_by.strftime("%d/%m/%Y") in notice
    assert ("will be revoked before" if lang == "en" else "撤銷") in notice


# --- the download page's CA links, downloads before Accept (issue 4 audit, items 2-4) --------------------

HREF = re.compile(r'href="([^"]+)"')


def _issued(ctx: Context, client: TestClient) -> tuple[str, str]:
    """Log in, confirm and submit a CSR: the certificate page (waiting for Accept) and its host."""
    host, _ = _to_csr_step(ctx, client)
    page = client.get("/portal/csr")
    info = client.post("/portal/csr", data={"csrf_token": csrf_of(page.text), "csr_text": make_csr([host])})
    assert info.url.path == "/portal/certificate"
    return host, info.text


def _accepted(ctx: Context, client: TestClient) -> str:
    host, info = _issued(ctx, client)
    assert client.post("/portal/certificate", data={"csrf_token": csrf_of(info)}).url.path == "/portal/download"
    return host


def _cn(ca: x509.Certificate) -> str:
    return str(ca.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value)


def test_download_page_names_only_the_certificates_own_issuer_after_a_rollover(
    ctx: Context, client: TestClient
) -> None:
    from datetime import timedelta

    from ecert.services import ceremony
    from ecert.services.ca_config import load_hierarchy_config

    _accepted(ctx, client)
    pem = client.get("/portal/download/fullchain").content
    leaf, issuer = x509.load_pem_x509_certificates(pem)[:2]
    # A rollover announced for next month: the new Sub CA is not in effect, and did not sign this certificate.
    new, _ = ceremony.rollover(ctx, load_hierarchy_config(None), "ov", effective_from=ctx.clock() + timedelta(days=30))
    new_cn = _cn(x509.load_der_x509_certificate(new.cert_der))
    page = client.get("/portal/download", params={"lang": "en"}).text
    assert _cn(issuer) in page and new_cn not in page
    assert re.search(
        rf'Install the Sub CA "{re.escape(_cn(issuer))}" issued by .*Effective from \d\d/\d\d/\d{{4}}', page, re.S
    )
    assert "EV" not in re.sub(r"<[^>]+>", "", page.split('id="issuing-ca"')[1].split("</ol>")[0])
    assert re.search(r'cross-certificate "[^"]+" issued by "[^"]+"', page)
    assert 'id="arl"' in page


@pytest.mark.parametrize("path", ["/portal/download", "/repository/"])
def test_ca_crl_and_arl_links_are_site_relative_and_served(ctx: Context, client: TestClient, path: str) -> None:
    _accepted(ctx, client)
    page = client.get(path).text
    links = [h for h in HREF.findall(page) if "/repository/ca/" in h or "/crl/" in h]
    assert links and all(h.startswith(("/repository/ca/", "/crl/")) for h in links), links
    assert {h.split("/")[1] for h in links} == {"repository", "crl"}
    for href in links:
        assert client.get(href).status_code == 200, href


def test_a_certificate_waiting_for_accept_cannot_be_downloaded(ctx: Context, client: TestClient) -> None:
    _issued(ctx, client)
    refused = client.get("/portal/download/pem", params={"lang": "en"})
    assert refused.status_code == 409 and "accept the certificate before downloading" in refused.text
    assert b"BEGIN CERTIFICATE" not in refused.content


def test_downloads_are_audited(ctx: Context, client: TestClient) -> None:
    from sqlalchemy import select

    from ecert.store.models import AuditEvent

    _accepted(ctx, client)
    client.get("/portal/download/p7b")
    serial = client.get("/portal/download/pem").text  # the PEM; its serial is the audit subject
    leaf = x509.load_pem_x509_certificate(serial.encode())
    client.get(f"/search/download/{leaf.serial_number:x}/der")
    with ctx.sessions() as s:
        rows = s.scalars(select(AuditEvent).where(AuditEvent.event == "cert.downloaded")).all()
    assert [(r.details["channel"], r.details["format"]) for r in rows] == [
        ("portal", "p7b"),
        ("portal", "pem"),
        ("search", "der"),
    ]


# --- DCV through the portal: switching methods, audit, the Validation File (items 1 and 7) ---------------


def _at_dcv_step(ctx: Context, client: TestClient) -> tuple[str, apps.RegisteredApplication]:
    """An application under example.net (no operator-held validation), confirmed: the DCV step is next."""
    host, reg = register(ctx, host=f"w{uuid.uuid4().hex[:10]}.example.net")
    log_in(client, host, reg)
    page = client.get("/portal/confirm")
    done = client.post(
        "/portal/confirm", data={"csrf_token": csrf_of(page.text), "action": "confirm"}, follow_redirects=False
    )
    assert done.headers.get("location") == "/portal/dcv"
    return host, reg


def _dcv_events(ctx: Context, event: str) -> int:
    from sqlalchemy import func, select

    from ecert.store.models import AuditEvent

    with ctx.sessions() as s:
        return int(s.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.event == event)) or 0)


def _choose(client: TestClient, method: str) -> str:
    """Choose a DCV method the way the page does: a POST with the CSRF token (a GET changes nothing)."""
    page = client.get("/portal/dcv", params={"lang": "en"})
    return client.post("/portal/dcv", data={"csrf_token": csrf_of(page.text), "action": "start", "method": method}).text


def test_portal_confirm_checks_the_method_on_screen(ctx: Context, client: TestClient, knot_dns: KnotDns) -> None:
    host, _ = _at_dcv_step(ctx, client)
    first = _choose(client, "dns")
    _choose(client, "http_file")
    page = _choose(client, "dns")
    value = re.search(r'<code class="txt-value"[^>]*>([^<]+)</code>', page)
    assert value and value.group(1) in first  # the DNS code survived the visit to Website Change
    knot_dns.add_txt(f"_pki-validation.{host}" if "_pki-validation" in page else host, value.group(1))
    done = client.post("/portal/dcv", data={"csrf_token": csrf_of(page), "action": "check", "method": "dns"})
    assert "Your control over every domain name has been confirmed" in done.text, done.text[-2000:]
    assert _dcv_events(ctx, "dcv.started") == 2  # one code per method, however often the pages were shown


def test_validation_file_needs_the_instructions_and_an_open_dcv_step(ctx: Context, client: TestClient) -> None:
    host, _ = _at_dcv_step(ctx, client)
    assert client.get("/portal/dcv/fileauth.txt").status_code == 404
    assert _dcv_events(ctx, "dcv.started") == 0
    _choose(client, "http_file")
    served = client.get("/portal/dcv/fileauth.txt", params={"domain": host})
    assert served.status_code == 200 and len(served.text) >= 32
    assert client.get("/portal/dcv/fileauth.txt").text == served.text and _dcv_events(ctx, "dcv.started") == 1


def test_validation_file_is_404_after_the_certificate_is_accepted(ctx: Context, client: TestClient) -> None:
    _accepted(ctx, client)
    assert client.get("/portal/dcv/fileauth.txt").status_code == 404
    assert _dcv_events(ctx, "dcv.started") == 0


@pytest.mark.parametrize("path", ["/portal/login", "/portal/confirm", "/portal/dcv", "/portal/csr"])
def test_a_form_over_the_cap_gets_the_413_page(client: TestClient, path: str) -> None:
    r = client.post(path, data={"pin": "1" * 2_000_000}, headers={"Accept": "text/html"})
    assert r.status_code == 413 and r.headers["content-type"] == "text/html; charset=utf-8"
    assert "too large" in r.text and "Field exceeded" not in r.text


def test_an_unknown_page_is_the_html_error_page(client: TestClient) -> None:
    r = client.get("/nonexistent", headers={"Accept": "text/html"}, params={"lang": "en"})
    assert r.status_code == 404 and "<h1>Sorry</h1>" in r.text and 'id="lang-switch"' in r.text


# --- Back, reload, second tab, log-in again: never an error page (issue 10 point 10) ----------------------


def _certificates(ctx: Context, app_id: int) -> list[str]:
    from sqlalchemy import select

    from ecert.store.models import Certificate

    with ctx.sessions() as s:
        return list(s.scalars(select(Certificate.status).where(Certificate.application_id == app_id)).all())


def test_back_then_confirm_moves_on_to_the_current_step(ctx: Context, client: TestClient) -> None:
    host, reg = register(ctx)
    log_in(client, host, reg)
    stale = client.get("/portal/confirm", params={"lang": "en"}).text  # the tab that stays on the confirm page
    client.post("/portal/confirm", data={"csrf_token": csrf_of(stale), "action": "confirm"})
    again = client.post(
        "/portal/confirm", data={"csrf_token": csrf_of(stale), "action": "confirm"}, follow_redirects=False
    )
    assert (again.status_code, again.headers["location"]) == (303, "/portal/csr")
    landed = client.get("/portal/csr")
    assert landed.status_code == 200 and 'id="notice"' in landed.text
    assert "You have already confirmed the application data" in landed.text and 'class="error"' not in landed.text
    back = client.get("/portal/confirm")  # Back: the data read-only, a way on, no Confirm button
    assert back.status_code == 200 and 'id="continue"' in back.text and 'id="confirm"' not in back.text


@pytest.mark.parametrize("lang", ["en", "zh_HK"])
def test_every_step_page_reached_out_of_turn_lands_where_the_application_is(
    ctx: Context, client: TestClient, lang: str
) -> None:
    host, reg = _to_csr_step(ctx, client)
    client.get("/notices", params={"lang": lang})
    for path in (
        "/portal/reject/application",
        "/portal/reject/certificate",
        "/portal/certificate",
        "/portal/download",
        "/portal/replace",
        "/portal/",
        "/portal/dcv",
    ):
        landed = client.get(path)
        assert landed.status_code == 200 and landed.url.path == "/portal/csr", path
        assert 'class="error"' not in landed.text, path


def test_reloading_accept_and_a_second_tab_reject_do_not_error(ctx: Context, client: TestClient) -> None:
    host, info = _issued(ctx, client)
    token = csrf_of(info)
    assert client.post("/portal/certificate", data={"csrf_token": token}).url.path == "/portal/download"
    reload = client.post("/portal/certificate", data={"csrf_token": token}, params={"lang": "en"})
    assert reload.status_code == 200 and reload.url.path == "/portal/download"
    assert "You have already accepted this certificate" in reload.text
    tab = client.post("/portal/reject/certificate", data={"csrf_token": token, "reason": "second tab"})
    assert tab.status_code == 200 and tab.url.path == "/portal/download" and 'id="notice"' in tab.text


def test_a_form_from_before_a_new_login_offers_the_way_on(ctx: Context, client: TestClient) -> None:
    host, reg = register(ctx)
    log_in(client, host, reg)
    stale = csrf_of(client.get("/portal/confirm").text)
    log_in(client, host, reg)  # logged in again (another tab): the old form's token is dead
    refused = client.post("/portal/confirm", data={"csrf_token": stale, "action": "confirm"}, params={"lang": "en"})
    assert refused.status_code == 403 and 'href="/portal/confirm" id="continue"' in refused.text
    assert apps.get_application(ctx, reg.application_id).state == "approved"


def test_after_accept_a_csr_at_the_csr_step_issues_nothing_and_explains_replace(
    ctx: Context, client: TestClient
) -> None:
    host = _accepted(ctx, client)
    app_id = next(iter(_app_ids_for(ctx, host)))
    page = client.get("/portal/csr", params={"lang": "en"})
    assert page.status_code == 200 and 'id="already-accepted"' in page.text and 'id="replace-form"' in page.text
    before = _certificates(ctx, app_id)
    pasted = make_csr([host])
    again = client.post("/portal/csr", data={"csrf_token": csrf_of(page.text), "csr_text": pasted})
    assert again.status_code == 409 and "nothing was issued" in again.text
    assert "BEGIN NEW CERTIFICATE REQUEST" in again.text  # the pasted CSR waits in the Replace form
    assert _certificates(ctx, app_id) == before == ["accepted"]
    assert apps.get_application(ctx, app_id).state == "accepted"
    assert 'id="to-replace"' in client.get("/portal/certificate").text


def _app_ids_for(ctx: Context, host: str) -> set[int]:
    from sqlalchemy import select

    from ecert.store.models import Application

    with ctx.sessions() as s:
        return set(s.scalars(select(Application.id).where(Application.server_name == host)).all())


def test_replace_needs_a_choice_for_the_current_certificate(ctx: Context, client: TestClient) -> None:
    _accepted(ctx, client)
    page = client.get("/portal/replace", params={"lang": "en"})
    assert page.status_code == 200 and 'name="current"' in page.text
    replaces = re.search(r'name="replaces" value="([0-9a-f]+)"', page.text)
    assert replaces is not None
    missing = client.post(
        "/portal/replace", data={"csrf_token": csrf_of(page.text), "csr_text": "x", "replaces": replaces.group(1)}
    )
    assert missing.status_code == 400 and "Please choose what should happen" in missing.text


# --- errors speak to people (issue 10 points 11 and 12) ------------------------------------------------


@pytest.mark.parametrize(
    ("lang", "sentence", "listing"),
    [
        ("en", "The CSR names domains that this application does not cover", "This application covers these names:"),
        ("zh_HK", "證書簽署要求列出了本申請並不涵蓋的域名", "本申請涵蓋以下名稱："),
    ],
)
def test_a_names_mismatch_says_it_plainly_first_and_lists_the_covered_names(
    ctx: Context, client: TestClient, lang: str, sentence: str, listing: str
) -> None:
    client.get("/notices", params={"lang": lang})
    host, _ = _to_csr_step(ctx, client)
    page = client.get("/portal/csr")
    other = make_csr(["x.example.org"])
    refused = client.post("/portal/csr", data={"csrf_token": csrf_of(page.text), "csr_text": other})
    error = refused.text.split('id="error"')[1].split("</div>")[0]
    assert refused.status_code == 400
    assert error.index(sentence) < error.index('class="rule"'), "the plain sentence comes before the rule"
    assert listing in error and host in error.split(listing)[1]
    assert "<small>" in error and "PolicyViolation" not in error


def test_plain_sentences_never_show_an_exception_class_name() -> None:
    from ecert.web import messages

    said = messages.plain(
        "could not fetch http://w.example.com/.well-known/pki-validation/fileauth.txt: "
        "ConnectError; could not fetch https://w.example.com/x: ReadTimeout",
        "zh_HK",
    )
    assert "Error" not in said and "Timeout" not in said and "未能取得" in said
    assert "ConnectError" not in messages.plain("the relay broke off (ConnectError)", "en")


# --- the front door: home page and offline API docs (issue 10 point 15) --------------------------------


@pytest.mark.parametrize(
    ("lang", "title"), [("en", "e-Cert (Server) certification authority"), ("zh_HK", "電子證書（伺服器）核證機關")]
)
def test_the_home_page_leads_to_portal_search_ca_certificates_and_api_docs(
    client: TestClient, lang: str, title: str
) -> None:
    home = client.get("/", params={"lang": lang})
    assert home.status_code == 200 and title in home.text
    for href in ("/portal/login", "/search", "/repository/", "/docs"):
        assert f'href="{href}"' in home.text
        assert client.get(href).status_code == 200, href


def test_api_docs_are_served_from_this_site_only(client: TestClient) -> None:
    docs = client.get("/docs")
    assert docs.status_code == 200 and "swagger-ui-bundle.js" in docs.text
    assert not re.search(r'(src|href)="(https?:)?//', docs.text), "an asset from another site"
    for src in re.findall(r'(?:src|href)="(/[^"]+)"', docs.text):
        assert client.get(src).status_code == 200, src
    assert "validatorUrl: null" in client.get("/static/swagger-init.js").text
    assert client.get("/redoc").status_code == 404


@pytest.mark.parametrize("choice", ["revoke", "keep"])
def test_replace_issues_a_new_certificate_and_says_what_happens_to_the_old_one(
    ctx: Context, client: TestClient, choice: str
) -> None:
    host = _accepted(ctx, client)
    app_id = next(iter(_app_ids_for(ctx, host)))
    old_serial = re.search(r'<code id="serial">([0-9a-f ]+)</code>', client.get("/portal/certificate").text)
    page = client.get("/portal/replace", params={"lang": "en"})
    assert 'id="replace-form"' in page.text, "services.certificates.replace_certificate is not there yet"
    form = {
        "csrf_token": csrf_of(page.text),
        "csr_text": make_csr([host]),
        "current": choice,
        "replaces": re.search(r'name="replaces" value="([0-9a-f]+)"', page.text).group(1),
    }  # type: ignore[union-attr]
    done = client.post("/portal/replace", data=form)
    assert done.status_code == 200 and done.url.path == "/portal/certificate" and 'id="accept"' in done.text
    new_serial = re.search(r'<code id="serial">([0-9a-f ]+)</code>', done.text)
    assert old_serial and new_serial and new_serial.group(1) != old_serial.group(1)
    client.post("/portal/certificate", data={"csrf_token": csrf_of(done.text)})
    statuses = sorted(_certificates(ctx, app_id))
    assert statuses == (["accepted", "revoked"] if choice == "revoke" else ["accepted", "accepted"])
    again = client.post("/portal/replace", data=form, params={"lang": "en"})  # Back to the form, Submit again
    assert again.status_code == 200 and "has already been replaced; nothing was issued" in again.text
    assert len(_certificates(ctx, app_id)) == 2


def test_reloading_the_rejection_result_shows_it_again(ctx: Context, client: TestClient) -> None:
    _issued(ctx, client)
    form = client.get("/portal/reject/certificate")
    done = client.post(
        "/portal/reject/certificate",
        data={"csrf_token": csrf_of(form.text), "reason": "wrong key"},
        follow_redirects=False,
    )
    assert done.status_code == 303 and done.headers["location"] == "/portal/rejected/certificate"
    reload = client.get(done.headers["location"], params={"lang": "en"})
    assert reload.status_code == 200 and "has been rejected" in reload.text and 'class="error"' not in reload.text
