"""A new subscriber's whole journey in Debian's chromium, in English and in Chinese (issue 4, "How it is checked").

Log in, confirm (Confirm Opt with Chinese in the Chinese run), pass DCV by the DNS method against the real
Knot DNS server, paste an Exchange-style CSR, accept, download the ``.p7b`` and find the certificate on the
search page. Every step is screenshotted to tests/artifacts/screenshots/{en,zh}/ and checked with axe for
critical accessibility violations.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe
from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs7
from playwright.sync_api import Browser, Page, sync_playwright

from ecert.services import applications as apps
from ecert.services.context import Context
from ecert.web.app import create_app
from tests.integration.ca_fixtures import DEMO_ENV, demo_ctx, make_demo_ctx  # noqa: F401
from tests.integration.dcv_fixtures import KnotDns, RunningApp, knot_dns, start_asgi  # noqa: F401
from tests.integration.test_applications import application_input, make_csr

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "screenshots"
TIMEOUT_MS = 15_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def ctx(make_demo_ctx: Callable[..., Context], knot_dns: KnotDns) -> Context:  # noqa: F811
    return make_demo_ctx(dns_resolvers=(knot_dns.resolver_addr,), allow_private_addresses=True, smtp_port=9)


@pytest.fixture
def server(ctx: Context) -> Iterator[RunningApp]:
    running = start_asgi(create_app(ctx.settings, DEMO_ENV, context=ctx))
    try:
        yield running
    finally:
        running.stop()


class Journey:
    """One language's walk: screenshots numbered in order, axe run on every page."""

    def __init__(self, page: Page, base: str, lang_dir: str) -> None:
        self.page, self.base, self.n = page, base, 0
        self.dir = ARTIFACTS / lang_dir
        self.dir.mkdir(parents=True, exist_ok=True)

    def step(self, name: str) -> None:
        self.n += 1
        self.page.screenshot(path=str(self.dir / f"{self.n:02d}-{name}.png"), full_page=True)
        assert self.page.locator("html").get_attribute("lang") in ("en", "zh-Hant-HK")
        assert self.page.locator("#lang-switch").count() == 1
        results = Axe().run(self.page)
        critical = [v["id"] for v in results.response["violations"] if v.get("impact") == "critical"]
        assert critical == [], f"{name}: critical accessibility violations {critical}"


@pytest.mark.parametrize(("lang", "lang_dir", "chinese"), [("en", "en", False), ("zh_HK", "zh", True)])
def test_new_subscriber_journey(browser: Browser, server: RunningApp, ctx: Context, knot_dns: KnotDns,  # noqa: F811
                                lang: str, lang_dir: str, chinese: bool) -> None:
    host = f"w{uuid.uuid4().hex[:10]}.example.com"
    reg = apps.register_application(ctx, application_input(host), actor="operator:test")
    context = browser.new_context(accept_downloads=True, locale="zh-HK" if chinese else "en-GB")
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    j = Journey(page, server.url, lang_dir)
    try:
        page.goto(f"{server.url}/portal/login?lang={lang}")
        j.step("login")
        page.fill("#server_name", host)
        page.fill("#reference_number", reg.reference_number)
        page.fill("#pin", " ".join(reg.pin[i:i + 4] for i in range(0, 16, 4)))
        page.click("button[type=submit][value=login]")
        page.wait_for_url("**/portal/confirm")
        assert "範例有限公司" in page.content()
        j.step("confirm")
        page.click("#confirm_zh" if chinese else "#confirm")

        page.wait_for_url("**/portal/dcv")
        j.step("dcv-choose")
        page.select_option("#method", "dns")
        page.click("#choose-method")
        page.wait_for_selector("#dcv-dns")
        records = page.locator("table.dns-record")
        assert records.count() == 1
        txt_host = records.nth(0).locator(".txt-host").inner_text().strip()
        txt_value = records.nth(0).locator(".txt-value").inner_text().strip()
        assert txt_host == host and len(txt_value) >= 32
        j.step("dcv-dns")
        knot_dns.add_txt(txt_host, txt_value)
        page.click("#dcv-confirm")
        page.wait_for_selector("#dcv-results")
        assert page.locator("#dcv-results tr.passed").count() == 1
        j.step("dcv-result")
        page.click("#to-csr")

        page.wait_for_url("**/portal/csr")
        page.fill("#csr_text", make_csr([host], label="NEW CERTIFICATE REQUEST", crlf=True))
        j.step("csr")
        page.click("#submit-csr")
        page.wait_for_url("**/portal/certificate")
        serial = page.locator("#serial").inner_text().strip()
        assert reg.reference_number in page.locator("#ref").inner_text()
        j.step("certificate")
        page.click("#accept")

        page.wait_for_url("**/portal/download")
        j.step("download")
        with page.expect_download() as info:
            page.click("#dl-p7b")
        download = info.value
        assert download.suggested_filename.endswith(".p7b")
        certs = pkcs7.load_der_pkcs7_certificates(Path(download.path()).read_bytes())
        _check_leaf_and_chain(certs, host, serial, chinese)

        page.goto(f"{server.url}/search")
        page.check("#by-server_name")
        page.fill("#q", host)
        page.click("#search-submit")
        page.wait_for_selector("#search-results")
        hit = page.locator("tr.hit")
        assert hit.count() == 1 and serial in hit.inner_text()
        j.step("search")

        if lang == "en":  # issue 5 point 1: the subscriber revokes from the download page
            page.goto(f"{server.url}/portal/download")
            page.click("#to-revoke")
            page.wait_for_url("**/portal/revoke")
            assert page.locator("#serial").inner_text().strip() == serial
            page.select_option("#reason", "superseded")
            page.check("#confirm")
            j.step("revoke")
            page.click("#revoke")
            page.wait_for_url("**/portal/revoked")
            assert "has been revoked" in page.locator("#revoked").inner_text()
            j.step("revoked")
    finally:
        context.close()


def _check_leaf_and_chain(certs: list[x509.Certificate], host: str, serial_spaced: str, chinese: bool) -> None:
    """The .p7b holds the leaf for ``host`` and the CA that signed it (what Exchange needs to complete)."""
    def names(c: x509.Certificate) -> list[Any]:
        try:
            return c.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
                x509.DNSName)
        except x509.ExtensionNotFound:
            return []

    leaves = [c for c in certs if host in names(c)]
    assert len(leaves) == 1
    leaf = leaves[0]
    assert format(leaf.serial_number, "x").zfill(len(serial_spaced.replace(" ", ""))) == serial_spaced.replace(" ", "")
    issuers = [c for c in certs if c.subject == leaf.issuer]
    assert issuers, "the issuing CA is missing from the .p7b"
    leaf.verify_directly_issued_by(issuers[0])
    org = leaf.subject.get_attributes_for_oid(x509.NameOID.ORGANIZATION_NAME)[0].value
    assert org == ("範例有限公司" if chinese else "Example Company Limited")
