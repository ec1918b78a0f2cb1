"""A new subscriber's whole journey in Debian's chromium, in English and in Chinese (issue 4, "How it is checked").

Start at the home page, log in, confirm (Confirm Opt with Chinese in the Chinese run) and click Confirm again
in a second tab (issue 10 point 10: it moves on, no error), pass DCV by the DNS method against the real Knot
DNS server, paste a CSR for the wrong name (a plain refusal listing the covered names), paste an Exchange-style
CSR, accept, go Back to the CSR step (it explains Replace instead of issuing again), download the ``.p7b``,
find the certificate on the search page and open the API docs. Every step is screenshotted to
tests/artifacts/screenshots/{en,zh}/ and checked with axe for critical accessibility violations; in the
Chinese run every page is checked for English sentences (tests/i18n_check.py), and in both runs no request
may leave 127.0.0.1 (no CDN, issue 10 point 15).
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe
from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs7
from playwright.sync_api import Browser, Page, sync_playwright

import ecert
from ecert.services import applications as apps
from ecert.services.context import Context
from ecert.web.app import create_app
from tests.i18n_check import english_sentences
from tests.integration.ca_fixtures import DEMO_ENV
from tests.integration.dcv_fixtures import KnotDns, RunningApp, start_asgi
from tests.integration.test_applications import application_input, make_csr

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
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
def ctx(make_demo_ctx: Callable[..., Context], knot_dns: KnotDns) -> Context:
    return make_demo_ctx(dns_resolvers=(knot_dns.resolver_addr,), allow_private_addresses=True, smtp_port=9)


@pytest.fixture
def server(ctx: Context) -> Iterator[RunningApp]:
    env = {**DEMO_ENV, "ECERT_ACME_EAB_SECRET": "browser-journey-acme-secret"}  # EAB keys are kept sealed
    running = start_asgi(create_app(ctx.settings, env, context=ctx))
    try:
        yield running
    finally:
        running.stop()


class Journey:
    """One language's walk: screenshots numbered in order, axe run on every page, no English on Chinese pages."""

    def __init__(self, page: Page, base: str, lang_dir: str, chinese: bool) -> None:
        self.page, self.base, self.n, self.chinese = page, base, 0, chinese
        self.dir = ARTIFACTS / lang_dir
        self.dir.mkdir(parents=True, exist_ok=True)
        for old in self.dir.glob("*.png"):  # screenshots of an earlier run would mix with this one's
            old.unlink()

    def step(self, name: str, page: Page | None = None) -> None:
        page = page or self.page
        self.n += 1
        page.screenshot(path=str(self.dir / f"{self.n:02d}-{name}.png"), full_page=True)
        assert page.locator("html").get_attribute("lang") in ("en", "zh-Hant-HK")
        assert page.locator("#lang-switch").count() == 1
        assert page.locator(".error").count() == 0 or name.startswith("refused"), f"{name}: an error on the page"
        if self.chinese:
            assert page.locator("html").get_attribute("lang") == "zh-Hant-HK", name
            english = english_sentences(page.locator("body").inner_text(), _ca_names())
            assert english == [], f"{name}: English on a Chinese page: {english}"
        results = Axe().run(page)
        critical = [v["id"] for v in results.response["violations"] if v.get("impact") == "critical"]
        assert critical == [], f"{name}: critical accessibility violations {critical}"


@functools.cache
def _ca_names() -> tuple[str, ...]:
    """The demo hierarchy's CA names: proper nouns a Chinese page shows as they are."""
    import tomllib

    config = tomllib.loads((Path(ecert.__file__).parent / "demo.toml").read_text(encoding="utf-8"))
    found: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("name", "common_name", "organization") and isinstance(value, str):
                    found.append(value)
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(config)
    return tuple(found)


def _outside_loopback(urls: list[str]) -> list[str]:
    """The requests that went anywhere but 127.0.0.1 (a CDN, a validator badge, a font service...)."""
    from urllib.parse import urlsplit

    return [
        u for u in urls if urlsplit(u).scheme in ("http", "https", "ws", "wss") and urlsplit(u).hostname != "127.0.0.1"
    ]


@pytest.mark.parametrize(("lang", "lang_dir", "chinese"), [("en", "en", False), ("zh_HK", "zh", True)])
def test_new_subscriber_journey(
    browser: Browser, server: RunningApp, ctx: Context, knot_dns: KnotDns, lang: str, lang_dir: str, chinese: bool
) -> None:
    host = f"w{uuid.uuid4().hex[:10]}.example.com"
    reg = apps.register_application(ctx, application_input(host), actor="operator:test")
    context = browser.new_context(accept_downloads=True, locale="zh-HK" if chinese else "en-GB")
    context.set_default_timeout(TIMEOUT_MS)
    requested: list[str] = []
    context.on("request", lambda r: requested.append(r.url))
    page = context.new_page()
    j = Journey(page, server.url, lang_dir, chinese)
    try:
        page.goto(f"{server.url}/?lang={lang}")
        j.step("home")
        page.click("#to-portal")
        page.wait_for_url("**/portal/login")
        j.step("login")
        page.fill("#server_name", host)
        page.fill("#reference_number", reg.reference_number)
        page.fill("#pin", " ".join(reg.pin[i : i + 4] for i in range(0, 16, 4)))
        page.click("button[type=submit][value=login]")
        page.wait_for_url("**/portal/confirm")
        assert "範例有限公司" in page.content()
        j.step("confirm")
        second_tab = context.new_page()  # the same confirm page, left open in another tab
        second_tab.goto(f"{server.url}/portal/confirm")
        page.click("#confirm_zh" if chinese else "#confirm")
        page.wait_for_url("**/portal/dcv")

        second_tab.click("#confirm_zh" if chinese else "#confirm")  # Confirm again: it moves on, no error
        second_tab.wait_for_url("**/portal/dcv")
        assert second_tab.locator("#notice").count() == 1 and second_tab.locator(".error").count() == 0
        j.step("confirm-again-moves-on", second_tab)
        second_tab.close()
        page.go_back()  # Back to the confirm page: the data read-only, and the way on
        page.wait_for_selector("#continue")
        assert page.locator("#confirm").count() == 0
        j.step("confirm-after-back")
        page.click("#continue")
        page.wait_for_url("**/portal/dcv")
        j.step("dcv-choose")
        _pass_dns_validation(page, j, knot_dns, host)

        page.wait_for_url("**/portal/csr")
        page.fill("#csr_text", make_csr(["other-name.example.org"]))
        page.click("#submit-csr")
        page.wait_for_selector("#covered-names")
        assert host in page.locator("#error").inner_text()
        j.step("refused-names")
        page.goto(f"{server.url}/portal/csr")
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
        serial = _no_second_certificate_from_the_csr_step(page, j, server.url, host, serial)
        with page.expect_download() as info:
            page.click("#dl-p7b")
        download = info.value
        assert download.suggested_filename.endswith(".p7b")
        certs = pkcs7.load_der_pkcs7_certificates(Path(download.path()).read_bytes())
        _check_leaf_and_chain(certs, host, serial, chinese)
        _acme_credential_shown_once(page, j, server.url)

        page.goto(f"{server.url}/search")
        page.check("#by-server_name")
        page.fill("#q", host)
        page.click("#search-submit")
        page.wait_for_selector("#search-results")
        assert serial in page.locator("#search-results").inner_text()
        j.step("search")

        # Log out and in again: the portal continues where the application is; the other language too.
        page.goto(f"{server.url}/portal/download")
        page.click("form[action='/portal/logout'] button")
        page.wait_for_url("**/portal/login")
        page.fill("#server_name", host)
        page.fill("#reference_number", reg.reference_number)
        page.fill("#pin", reg.pin)
        page.click("button[type=submit][value=login]")
        page.wait_for_url("**/portal/download")
        page.click("#lang-switch")
        page.wait_for_url("**/portal/download?lang=*")
        assert page.locator(".error").count() == 0
        page.goto(f"{server.url}/portal/download?lang={lang}")

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

        page.goto(f"{server.url}/docs")  # the API docs, drawn from files this service serves
        page.wait_for_selector("#swagger-ui .information-container")
        page.screenshot(path=str(j.dir / "99-api-docs.png"), full_page=True)
        assert _outside_loopback(requested) == [], "requests left 127.0.0.1"
    finally:
        context.close()


def _pass_dns_validation(page: Page, j: Journey, knot_dns: KnotDns, host: str) -> None:
    """DNS Change against the real Knot server; the result's columns are wide enough to read."""
    page.select_option("#method", "dns")
    page.click("#choose-method")
    page.wait_for_selector("#dcv-dns")
    records = page.locator("table.dns-record")
    assert records.count() == 1
    txt_host = records.nth(0).locator(".txt-host").inner_text().strip()
    txt_value = records.nth(0).locator(".txt-value").inner_text().strip()
    assert txt_host in (host, f"_pki-validation.{host}") and len(txt_value) >= 32
    j.step("dcv-dns")
    knot_dns.add_txt(txt_host, txt_value)
    page.click("#dcv-confirm")
    page.wait_for_selector("#dcv-results")
    assert page.locator("#dcv-results tr.passed").count() == 1
    result = page.locator("#dcv-results tr.passed td").nth(1).bounding_box()
    assert result is not None and result["height"] < 2.5 * 16, "the Result column wraps a short word"
    j.step("dcv-result")
    page.click("#to-csr")


def _no_second_certificate_from_the_csr_step(page: Page, j: Journey, base: str, host: str, serial: str) -> str:
    """Back to the CSR step after Accept: it issues nothing and leads to Replace (issue 10 point 3).

    The replacement is then made on purpose, revoking the current certificate once the new one is accepted;
    the new certificate's serial is returned.
    """
    page.goto(f"{base}/portal/csr")
    page.wait_for_selector("#already-accepted")
    assert page.locator("#serial").inner_text().strip() == serial
    j.step("csr-after-accept")
    page.fill("#csr_text", make_csr([host]))
    page.check("#revoke-current")
    j.step("replace")
    page.click("#submit-replace")
    page.wait_for_url("**/portal/certificate")
    new_serial = page.locator("#serial").inner_text().strip()
    assert new_serial != serial
    j.step("replacement")
    page.click("#accept")
    page.wait_for_url("**/portal/download")
    return new_serial


def _acme_credential_shown_once(page: Page, j: Journey, base: str) -> None:
    """Automatic renewal (ACME), issue 13 point 2: a credential made here shows its HMAC key once, then only its kid."""
    page.goto(f"{base}/portal/download")
    page.click("#to-acme")
    page.wait_for_url("**/portal/acme")
    j.step("acme")
    page.click("#make-eab")
    page.wait_for_selector("#new-hmac-key")
    kid = page.locator("#new-kid").inner_text().strip()
    key = page.locator("#new-hmac-key").inner_text().strip()
    assert key in page.locator("#cmd-certbot-register").inner_text() and kid in page.locator("#cmd-lego").inner_text()
    j.step("acme-made")
    page.goto(f"{base}/portal/acme")
    assert kid in page.locator("#credentials").inner_text() and key not in page.content()
    j.step("acme-after-reload")


def _check_leaf_and_chain(certs: list[x509.Certificate], host: str, serial_spaced: str, chinese: bool) -> None:
    """The .p7b holds the leaf for ``host`` and the CA that signed it (what Exchange needs to complete)."""

    def names(c: x509.Certificate) -> list[Any]:
        try:
            return c.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
                x509.DNSName
            )
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
