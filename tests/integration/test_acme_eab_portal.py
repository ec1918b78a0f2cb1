"""EAB credentials in the portal and through the operator API (issue 13 point 2), against a running app.

The subscriber logs in, opens "Automatic renewal (ACME)", makes a credential (POST behind CSRF) and sees its
HMAC key once with the client commands; a reload shows only the kid, the database never holds the key in
clear, and certbot's own ``acme.ClientV2`` registers with what the page showed. The operator's endpoints make
and list credentials behind the operator token.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest
from acme import client as acme_client
from acme import messages
from josepy.jwa import ES256
from sqlalchemy import select, text

from ecert.services import applications as apps
from ecert.services.context import Context
from ecert.store import applications as store_apps
from ecert.store.models import AuditEvent
from ecert.store.models_acme import AcmeEabCredential
from ecert.web.app import create_app
from tests.i18n_check import english_sentences
from tests.integration.acme_fixtures import ENV, Clock, ec_key, new_eab
from tests.integration.dcv_fixtures import RunningApp, start_asgi
from tests.integration.foundation_fixtures import make_ctx
from tests.integration.test_applications import application_input

OPERATOR_TOKEN = "operator-token-for-acme-eab"
DIRECTORY = "http://pki.ecert-demo.hk/acme/directory"  # the base URL of make_ctx + /acme/directory
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
FORM_ID = re.compile(r'name="form_id" value="([^"]+)"')


@dataclass
class Portal:
    """A running app and one logged-in subscriber's browser-like client (cookies kept)."""

    ctx: Context
    running: RunningApp
    http: httpx.Client
    reg: apps.RegisteredApplication
    host: str

    def get(self, path: str, **params: str) -> httpx.Response:
        return self.http.get(self.running.url + path, params=params)

    def post(self, path: str, data: dict[str, str]) -> httpx.Response:
        return self.http.post(self.running.url + path, data=data)

    def make_form(self) -> dict[str, str]:
        """The fields of the page's "Make a new credential" form, as a browser would send them."""
        page = self.get("/portal/acme").text
        token, form_id = CSRF.search(page), FORM_ID.search(page)
        assert token and form_id, "the page offers no form to make a credential"
        return {"csrf_token": token.group(1), "form_id": form_id.group(1)}

    def accept(self) -> None:
        """Stand in for the portal's steps up to Accept (their pages are test_portal_pages' subject)."""
        with self.ctx.transaction() as session:
            moved = store_apps.compare_and_set_application_state(
                session, self.reg.application_id, "approved", "accepted", now=self.ctx.clock()
            )
        assert moved


def _start(
    tmp_path: Path, db_url: str | None, clock: Clock, *, wrapping: bool = True, **settings: Any
) -> tuple[Context, RunningApp]:
    ctx = make_ctx(tmp_path, db_url, smtp_port=9, **settings)
    ctx.clock = clock
    env = {**ENV, "ECERT_OPERATOR_TOKEN": OPERATOR_TOKEN}
    if not wrapping:
        env.pop("ECERT_ACME_EAB_SECRET")
    return ctx, start_asgi(create_app(ctx.settings, env, context=ctx))


def _log_in(ctx: Context, running: RunningApp) -> Portal:
    host = f"w{re.sub('[^a-z0-9]', '', str(id(ctx)))[-8:]}{len(running.url)}.example.com"
    reg = apps.register_application(ctx, application_input(host), actor="operator:test")
    http = httpx.Client(timeout=30, trust_env=False, follow_redirects=True)
    page = http.get(running.url + "/portal/login").text
    token = CSRF.search(page)
    assert token
    done = http.post(
        running.url + "/portal/login",
        data={
            "csrf_token": token.group(1),
            "server_name": host,
            "reference_number": reg.reference_number,
            "pin": reg.pin,
        },
    )
    assert done.status_code == 200 and "/portal/confirm" in str(done.url), done.text[-1500:]
    return Portal(ctx, running, http, reg, host)


@pytest.fixture
def portal(tmp_path: Path, db_url: str, clock: Clock) -> Iterator[Portal]:
    """A logged-in subscriber on SQLite and PostgreSQL in turn."""
    ctx, running = _start(tmp_path, db_url, clock)
    try:
        p = _log_in(ctx, running)
        yield p
        p.http.close()
    finally:
        running.stop()
        ctx.close()


def _start_portal(tmp_path: Path, clock: Clock, *, wrapping: bool = True, **settings: Any) -> tuple[Portal, RunningApp]:
    ctx, running = _start(tmp_path, None, clock, wrapping=wrapping, **settings)
    return _log_in(ctx, running), running


def _code(page: str, element_id: str) -> str | None:
    found = re.search(rf'<code[^>]* id="{element_id}"[^>]*>([^<]*)</code>', page)
    return None if found is None else found.group(1)


def _credentials(ctx: Context) -> list[tuple[str, str, bytes]]:
    with ctx.read() as session:
        rows = session.execute(
            select(AcmeEabCredential.kid, AcmeEabCredential.status, AcmeEabCredential.hmac_key_sealed)
        ).all()
    return [(r[0], r[1], bytes(r[2])) for r in rows]


def _audit(ctx: Context, event: str) -> list[tuple[str, str | None]]:
    with ctx.read() as session:
        rows = session.execute(select(AuditEvent.actor, AuditEvent.subject).where(AuditEvent.event == event)).all()
    return [(r[0], r[1]) for r in rows]


def _database_text(ctx: Context) -> str:
    """Every row of every table as text, to look for a secret that must never be stored in clear."""
    from sqlalchemy import inspect

    out: list[str] = []
    with ctx.engine.connect() as conn:
        for table in inspect(conn).get_table_names():
            out += [repr(tuple(r)) for r in conn.execute(text(f'SELECT * FROM "{table}"'))]
    return "\n".join(out)


def _register_with_certbot_library(running: RunningApp, kid: str, hmac_key: str) -> messages.RegistrationResource:
    key = ec_key()
    net = acme_client.ClientNetwork(key, alg=ES256, user_agent="ecert-portal-test")
    directory = acme_client.ClientV2.get_directory(f"{running.url}/acme/directory", net)
    client = acme_client.ClientV2(directory, net)
    eab = messages.ExternalAccountBinding.from_data(key.public_key(), kid, hmac_key, directory)
    return client.new_account(
        messages.NewRegistration.from_data(
            email="admin@example.com", terms_of_service_agreed=True, external_account_binding=eab
        )
    )


# --- the portal ---------------------------------------------------------------------------------------


def test_the_key_is_shown_once_and_binds_with_certbots_client(portal: Portal) -> None:
    portal.accept()
    made = portal.post("/portal/acme", portal.make_form())
    assert made.status_code == 200, made.text[-1500:]
    assert made.headers["Cache-Control"] == "no-store"
    kid, key = _code(made.text, "new-kid"), _code(made.text, "new-hmac-key")
    assert kid and key and len(base64.urlsafe_b64decode(key + "=")) == 32
    commands = {name: _code(made.text, f"cmd-{name}") for name in ("certbot-register", "lego", "ecert-register")}
    assert commands["certbot-register"] == (
        f"certbot register --server {DIRECTORY} --eab-kid {kid} --eab-hmac-key {key} "
        "--agree-tos --email webmaster@example.com"
    )
    assert f"lego --server {DIRECTORY} --eab --kid {kid} --hmac {key} " in str(commands["lego"])
    assert f"--domains {portal.host}" in str(commands["lego"])
    assert commands["ecert-register"] == (
        f"ecert acme register --server {DIRECTORY} --eab-kid {kid} --eab-hmac-key {key} --email webmaster@example.com"
    )
    assert f"-d {portal.host}" in str(_code(made.text, "cmd-certbot-certonly"))
    caddy = re.search(r'<code class="command" id="cmd-caddy">(.*?)</code>', made.text, re.S)
    assert caddy and f"acme_ca {DIRECTORY}" in caddy.group(1)
    assert f"acme_eab {{\n\t\tkey_id {kid}\n\t\tmac_key {key}\n\t}}" in caddy.group(1)
    assert _code(made.text, "cmd-ecert-renew") == "ecert renew --all"

    # Audited, and kept only sealed: neither the key's text nor its bytes are anywhere in the database.
    assert _audit(portal.ctx, "acme.eab.created") == [
        (f"subscriber:{portal.reg.reference_number}", portal.reg.reference_number)
    ]
    stored = _credentials(portal.ctx)
    assert [(k, s) for k, s, _ in stored] == [(kid, "unused")]
    raw = base64.urlsafe_b64decode(key + "=")
    assert raw not in stored[0][2]
    everything = _database_text(portal.ctx)
    assert key not in everything and raw.hex() not in everything

    # A reload of the page shows the kid, never the key.
    again = portal.get("/portal/acme")
    assert kid in again.text and key not in again.text and _code(again.text, "new-hmac-key") is None
    assert "unused" in re.search(r'<tr class="credential ([a-z]+)">', again.text).group(1)  # type: ignore[union-attr]

    # certbot's protocol library registers with what the page showed; the page then lists the account.
    regr = _register_with_certbot_library(portal.running, kid, key)
    assert regr.body.status == "valid"
    after = portal.get("/portal/acme").text
    assert '<tr class="credential bound">' in after and '<tr class="account valid">' in after
    assert key not in after


def test_reposting_the_form_makes_nothing_and_shows_no_key(portal: Portal) -> None:
    portal.accept()
    form = portal.make_form()
    first = portal.post("/portal/acme", form)
    kid, key = _code(first.text, "new-kid"), _code(first.text, "new-hmac-key")
    assert kid and key
    reload = portal.post("/portal/acme", form)  # the browser's "resend the form" on reload
    assert reload.status_code == 200
    assert 'id="already-made"' in reload.text and kid in reload.text and key not in reload.text
    assert len(_credentials(portal.ctx)) == 1


@pytest.mark.parametrize("token", [None, "", "forged.token.value"])
def test_making_a_credential_needs_the_csrf_token(portal: Portal, token: str | None) -> None:
    portal.accept()
    form = portal.make_form()
    del form["csrf_token"]
    if token is not None:
        form["csrf_token"] = token
    refused = portal.post("/portal/acme", form)
    assert refused.status_code == 403
    assert _credentials(portal.ctx) == [] and _audit(portal.ctx, "acme.eab.created") == []


def test_before_acceptance_the_page_lists_but_makes_nothing(tmp_path: Path, clock: Clock) -> None:
    p, running = _start_portal(tmp_path, clock)
    try:
        page = p.get("/portal/acme")
        assert page.status_code == 200 and 'id="make-eab"' not in page.text
        assert 'data-kind="not_accepted"' in page.text and 'id="no-credentials"' in page.text
        form = {"csrf_token": CSRF.search(page.text).group(1), "form_id": "x"}  # type: ignore[union-attr]
        refused = p.post("/portal/acme", form)
        assert refused.status_code == 409 and 'id="error"' in refused.text
        assert _credentials(p.ctx) == []
        assert _audit(p.ctx, "acme.eab.refused") == [(f"subscriber:{p.reg.reference_number}", p.reg.reference_number)]
    finally:
        running.stop()
        p.ctx.close()


def test_the_operator_can_keep_credentials_to_itself(tmp_path: Path, clock: Clock) -> None:
    """acme_portal_eab=false: no button; a credential the operator made is listed by kid, never with a key."""
    p, running = _start_portal(tmp_path, clock, acme_portal_eab=False)
    try:
        p.accept()
        made = new_eab(p.ctx, p.reg.reference_number)
        page = p.get("/portal/acme")
        assert 'data-kind="disabled"' in page.text and 'id="make-eab"' not in page.text
        assert made.kid in page.text and made.hmac_key not in page.text
        token = CSRF.search(page.text).group(1)  # type: ignore[union-attr]
        assert p.post("/portal/acme", {"csrf_token": token, "form_id": "y"}).status_code == 403
        assert len(_credentials(p.ctx)) == 1
    finally:
        running.stop()
        p.ctx.close()


class _Text(HTMLParser):
    """The text a reader sees (what ``inner_text`` gives in the browser test), without the page's markup."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def _visible_text(html: str) -> str:
    body = html.split("<body>", 1)[1]
    parser = _Text()
    parser.feed(body)
    return " ".join(parser.parts)


def test_the_chinese_page_has_no_english_sentence(tmp_path: Path, clock: Clock) -> None:
    p, running = _start_portal(tmp_path, clock)
    try:
        p.accept()
        p.get("/portal/acme", lang="zh_HK")
        listed = p.get("/portal/acme").text
        made = p.post("/portal/acme", p.make_form()).text
        reloaded = p.get("/portal/acme").text
        for page in (listed, made, reloaded):
            assert '<html lang="zh-Hant-HK">' in page
            assert english_sentences(_visible_text(page)) == []
        assert "自動續期 (ACME)" in made and "HMAC 密碼匙" in made
    finally:
        running.stop()
        p.ctx.close()


# --- the operator API ---------------------------------------------------------------------------------


def _operator(token: str | None) -> dict[str, str]:
    if token is None:
        return {}
    return {"Authorization": token if token.startswith("Basic ") else f"Bearer {token}"}


@pytest.mark.parametrize("token", [None, "Basic b3BlcmF0b3I6eA==", "not-the-operator-token"])
def test_the_operator_api_refuses_without_the_token(portal: Portal, token: str | None) -> None:
    base = f"{portal.running.url}/api/v1/operator/applications/{portal.reg.reference_number}/acme"
    with httpx.Client(timeout=30, trust_env=False) as http:
        made = http.post(base + "/eab", headers=_operator(token))
        listed = http.get(base, headers=_operator(token))
    assert made.status_code == listed.status_code == 401
    assert made.headers["content-type"].startswith("application/problem+json")
    assert _credentials(portal.ctx) == []


def test_the_operator_api_makes_and_lists_credentials(portal: Portal) -> None:
    reference = portal.reg.reference_number
    base = f"{portal.running.url}/api/v1/operator/applications/{reference}/acme"
    with httpx.Client(timeout=30, trust_env=False, headers=_operator(OPERATOR_TOKEN)) as http:
        made = http.post(base + "/eab")
        assert made.status_code == 201, made.text
        body = made.json()
        assert body["reference_number"] == reference and body["directory_url"] == DIRECTORY
        listed = http.get(base)
        assert listed.status_code == 200
        assert body["hmac_key"] not in listed.text
        assert [(c["kid"], c["status"]) for c in listed.json()["credentials"]] == [(body["kid"], "unused")]
        assert listed.json()["accounts"] == []
        _register_with_certbot_library(portal.running, body["kid"], body["hmac_key"])
        after = http.get(base).json()
        assert after["credentials"][0]["status"] == "bound"
        assert [(a["status"], a["kid"]) for a in after["accounts"]] == [("valid", body["kid"])]
        assert after["accounts"][0]["contact"] == ["mailto:admin@example.com"]
        assert http.get(f"{portal.running.url}/api/v1/operator/applications/999999999/acme").status_code == 404
        second = http.post(base + "/eab").json()
        portal.ctx.clock.advance(timedelta(days=8))  # type: ignore[attr-defined]  # unused past its lifetime
        statuses = {c["kid"]: c["status"] for c in http.get(base).json()["credentials"]}
        assert statuses == {body["kid"]: "bound", second["kid"]: "expired"}
    assert _audit(portal.ctx, "acme.eab.created") == [("operator:api", reference)] * 2


def test_the_portal_shows_the_operators_credentials_by_kid(portal: Portal) -> None:
    made = new_eab(portal.ctx, portal.reg.reference_number)
    page = portal.get("/portal/acme").text
    assert made.kid in page and made.hmac_key not in page and '<tr class="credential unused">' in page


def test_without_the_wrapping_secret_nothing_is_made_and_the_page_says_so(tmp_path: Path, clock: Clock) -> None:
    p, running = _start_portal(tmp_path, clock, wrapping=False)
    try:
        p.accept()
        page = p.get("/portal/acme")
        assert 'data-kind="not_configured"' in page.text and 'id="make-eab"' not in page.text
        reference = p.reg.reference_number
        with httpx.Client(timeout=30, trust_env=False, headers=_operator(OPERATOR_TOKEN)) as http:
            refused = http.post(f"{running.url}/api/v1/operator/applications/{reference}/acme/eab")
        assert refused.status_code == 403 and "wrapping secret" in refused.json()["detail"]
        assert _credentials(p.ctx) == []
    finally:
        running.stop()
        p.ctx.close()
