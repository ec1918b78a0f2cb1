"""Log-in limits a person can understand, and the operator's hold on applications (issue 10 points 6 and 13).

Tries left and the length of a lock are told the same way for a reference number that exists and one that
does not; the operator lists, unlocks and reissues a PIN (CLI and API), and every one of those, every
refused registration and every refused log-in is in the audit log, never with a PIN.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import select

from ecert.core.errors import BadName, Conflict, LoginRefused, LoginSuspended, PolicyViolation, Unauthorized
from ecert.services import applications as apps
from ecert.services.context import Context, build_context
from ecert.settings import Settings
from ecert.store.models import AuditEvent
from ecert.web.app import create_app
from tests.integration.ca_fixtures import DEMO_ENV
from tests.integration.test_applications import application_input

ADDR = "192.0.2.20"
OPERATOR_TOKEN = "operator-access-test-token"
OP = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
SERVER = "www.example.com"


def _register(ctx: Context, host: str = SERVER, **overrides: object) -> apps.RegisteredApplication:
    return apps.register_application(ctx, application_input(host, **overrides), actor="operator:test")


def _wrong(pin: str) -> str:
    return "1" * 16 if pin != "1" * 16 else "2" * 16


def _log_in(ctx: Context, reference: str, pin: str, *, server: str = SERVER, addr: str = ADDR) -> int:
    return apps.authenticate(ctx, server_name=server, reference_number=reference, pin=pin, client_addr=addr)


def _refusal(ctx: Context, reference: str, pin: str, **kwargs: str) -> LoginRefused | LoginSuspended:
    with pytest.raises((LoginRefused, LoginSuspended)) as caught:
        _log_in(ctx, reference, pin, **kwargs)
    assert isinstance(caught.value, (LoginRefused, LoginSuspended))
    return caught.value


def _events(ctx: Context, name: str) -> list[AuditEvent]:
    with ctx.read() as s:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.event == name).order_by(AuditEvent.id)))


def _all_audit_text(ctx: Context) -> str:
    with ctx.read() as s:
        return " ".join(f"{e.subject} {e.details}" for e in s.scalars(select(AuditEvent)))


def _at(ctx: Context, moment: datetime) -> None:
    ctx.clock = lambda: moment


def _freeze(ctx: Context) -> Context:
    """Stop the clock, so waits and lock ends come out exact."""
    _at(ctx, ctx.clock().replace(microsecond=0))
    return ctx


# --- tries left and locks, told alike for every reference -----------------------------------------------


def test_tries_count_down_the_same_for_a_real_and_an_unknown_reference(any_db_ctx: Context) -> None:
    ctx = _freeze(any_db_ctx)
    reg = _register(ctx)
    unknown = "999999999" if reg.reference_number != "999999999" else "999999998"
    real = [_refusal(ctx, reg.reference_number, _wrong(reg.pin)) for _ in range(4)]
    fake = [_refusal(ctx, unknown, _wrong(reg.pin)) for _ in range(4)]
    assert [(type(e), e.message, getattr(e, "tries_left", None)) for e in real] == [
        (LoginRefused, apps.LOGIN_FAILED_MESSAGE, n) for n in (4, 3, 2, 1)
    ]
    assert [(type(e), e.message, getattr(e, "tries_left", None)) for e in fake] == [
        (type(e), e.message, getattr(e, "tries_left", None)) for e in real
    ]
    # The fifth failure locks both, for the same time, with the same sentence.
    locks = [_refusal(ctx, ref, _wrong(reg.pin)) for ref in (reg.reference_number, unknown)]
    assert all(isinstance(e, LoginSuspended) for e in locks)
    assert {(str(e), e.retry_after) for e in locks if isinstance(e, LoginSuspended)} == {
        (
            "Too many failed log-in attempts with this reference number; log-in is suspended for 30 more minutes. "
            "(NSR 3 / BR 5.4.1(3))",
            30 * 60,
        )
    }
    # While locked, even the right PIN is refused, and it says how long is left.
    _at(ctx, ctx.clock() + timedelta(minutes=10))
    still = _refusal(ctx, reg.reference_number, reg.pin)
    assert isinstance(still, LoginSuspended) and still.retry_after == 20 * 60 and "20 more minutes" in still.message


def test_retrying_during_a_lock_does_not_make_it_longer(sqlite_ctx: Context) -> None:
    ctx = _freeze(sqlite_ctx)
    reg = _register(ctx)
    start = ctx.clock()
    for _ in range(ctx.settings.login_max_failures):
        _refusal(ctx, reg.reference_number, _wrong(reg.pin))
    for minute in (5, 15, 29):
        _at(ctx, start + timedelta(minutes=minute))
        assert isinstance(_refusal(ctx, reg.reference_number, _wrong(reg.pin)), LoginSuspended)
    _at(ctx, start + timedelta(minutes=30, seconds=1))
    assert _log_in(ctx, reg.reference_number, reg.pin) == reg.application_id
    assert len(_events(ctx, "login.refused")) == 3


def test_a_success_starts_the_count_afresh(sqlite_ctx: Context) -> None:
    ctx = _freeze(sqlite_ctx)
    reg = _register(ctx)
    for _ in range(3):
        _refusal(ctx, reg.reference_number, _wrong(reg.pin))
    _log_in(ctx, reg.reference_number, reg.pin)
    _at(ctx, ctx.clock() + timedelta(seconds=1))
    again = _refusal(ctx, reg.reference_number, _wrong(reg.pin))
    assert isinstance(again, LoginRefused) and again.tries_left == 4


def test_a_noisy_address_is_suspended_whatever_the_reference(sqlite_ctx: Context) -> None:
    ctx = _freeze(sqlite_ctx)
    for n in range(apps.ADDR_MAX_FAILURES):
        _refusal(ctx, f"{100000000 + n}", "0" * 16, addr="198.51.100.7")
    refused = _refusal(ctx, "123456789", "0" * 16, addr="198.51.100.7")
    assert isinstance(refused, LoginSuspended) and refused.scope == "address"
    assert "from this address" in refused.message and refused.retry_after == 15 * 60
    # Another address is not affected.
    assert isinstance(_refusal(ctx, "123456789", "0" * 16, addr="198.51.100.8"), LoginRefused)


def test_refused_log_ins_are_audited_without_the_pin(sqlite_ctx: Context) -> None:
    ctx = _freeze(sqlite_ctx)
    reg = _register(ctx)
    # The PIN typed into the reference box: only its length may be kept.
    _refusal(ctx, reg.pin, reg.pin)
    _refusal(ctx, "ab<script>cdefghijklmnop", reg.pin)
    for _ in range(ctx.settings.login_max_failures):
        _refusal(ctx, reg.reference_number, _wrong(reg.pin))
    _refusal(ctx, reg.reference_number, reg.pin)
    failed = _events(ctx, "login.failed")
    assert [e.subject for e in failed[:2]] == ["(16 characters, not a reference number)", "ab<script>cd"]
    refused = _events(ctx, "login.refused")
    assert [(e.subject, e.details["limit"], e.details["client_addr"]) for e in refused] == [
        (reg.reference_number, "reference", ADDR)
    ]
    assert len(_events(ctx, "login.locked")) == 1
    text = _all_audit_text(ctx)
    assert reg.pin not in text and reg.pin[:10] not in text


# --- the operator: list, unlock, reissue -----------------------------------------------------------------


def test_a_locked_application_is_listed_unlocked_by_the_operator_and_can_log_in(any_db_ctx: Context) -> None:
    ctx = _freeze(any_db_ctx)
    reg = _register(ctx)
    other = _register(ctx, "www2.example.com")
    for _ in range(ctx.settings.login_max_failures):
        _refusal(ctx, reg.reference_number, _wrong(reg.pin))
    locked = apps.list_applications(ctx, locked=True)
    assert [(r.reference_number, r.failed_logins) for r in locked] == [(reg.reference_number, 5)]
    assert locked[0].locked_until == ctx.clock() + timedelta(minutes=30)
    assert {r.reference_number for r in apps.list_applications(ctx)} == {reg.reference_number, other.reference_number}

    summary = apps.unlock_application(ctx, reg.reference_number, actor="operator:alice")
    assert summary.locked_until is None and apps.list_applications(ctx, locked=True) == []
    assert _log_in(ctx, reg.reference_number, reg.pin) == reg.application_id
    (event,) = _events(ctx, "application.unlocked")
    assert (event.actor, event.subject, event.details["failures"]) == ("operator:alice", reg.reference_number, 5)
    assert event.details["was_locked_until"] is not None


def test_unlocked_tries_count_from_the_unlock(sqlite_ctx: Context) -> None:
    ctx = _freeze(sqlite_ctx)
    reg = _register(ctx)
    for _ in range(ctx.settings.login_max_failures):
        _refusal(ctx, reg.reference_number, _wrong(reg.pin))
    apps.unlock_application(ctx, reg.reference_number, actor="operator:alice")
    _at(ctx, ctx.clock() + timedelta(seconds=1))
    again = _refusal(ctx, reg.reference_number, _wrong(reg.pin))
    assert isinstance(again, LoginRefused) and again.tries_left == 4


def test_list_filters_by_state_and_refuses_an_unknown_state(sqlite_ctx: Context) -> None:
    ctx = _freeze(sqlite_ctx)
    first = _register(ctx)
    second = _register(ctx, "www2.example.com")
    apps.confirm_application(ctx, second.application_id, use_chinese=False, actor="subscriber")
    assert [r.reference_number for r in apps.list_applications(ctx, state="approved")] == [first.reference_number]
    assert [r.state for r in apps.list_applications(ctx, state="confirmed")] == ["confirmed"]
    assert apps.list_applications(ctx, state="issued") == []
    with pytest.raises(PolicyViolation, match="unknown application state 'csr_submitted'"):
        apps.list_applications(ctx, state="csr_submitted")


def test_after_a_reissue_the_old_pin_fails_the_new_one_works_and_sessions_end(any_db_ctx: Context) -> None:
    ctx = _freeze(any_db_ctx)
    reg = _register(ctx)
    app_id = _log_in(ctx, reg.reference_number, reg.pin)
    session = apps.open_session(ctx, app_id)
    assert apps.resolve_session(ctx, session.token) == app_id

    new = apps.reissue_pin(ctx, reg.reference_number, actor="operator:bob")
    assert new.pin != reg.pin and new.pin not in repr(new) and new.sessions_ended == 1
    with pytest.raises(Unauthorized):
        apps.resolve_session(ctx, session.token)
    old = _refusal(ctx, reg.reference_number, reg.pin)
    assert isinstance(old, LoginRefused) and old.message == apps.LOGIN_FAILED_MESSAGE
    assert _log_in(ctx, reg.reference_number, new.pin) == app_id
    (event,) = _events(ctx, "application.pin_reissued")
    assert (event.actor, event.subject, event.details) == ("operator:bob", reg.reference_number, {"sessions_ended": 1})
    assert new.pin not in _all_audit_text(ctx)


def test_a_reissue_lifts_the_lock_and_a_rejected_application_gets_no_pin(sqlite_ctx: Context) -> None:
    ctx = _freeze(sqlite_ctx)
    reg = _register(ctx)
    for _ in range(ctx.settings.login_max_failures):
        _refusal(ctx, reg.reference_number, _wrong(reg.pin))
    new = apps.reissue_pin(ctx, reg.reference_number, actor="operator:bob")
    assert _log_in(ctx, reg.reference_number, new.pin) == reg.application_id
    apps.reject_application(ctx, reg.application_id, reason="wrong organisation", actor="subscriber")
    with pytest.raises(Conflict, match="rejected"):
        apps.reissue_pin(ctx, reg.reference_number, actor="operator:bob")


# --- refused registrations are audited ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "error", "reason"),
    [
        ({"server_name": "localhost"}, BadName, "localhost"),
        ({"rep_email": "not-an-address"}, ValidationError, "rep_email: Value error, not an e-mail address"),
        ({"cert_type": "ev"}, PolicyViolation, "EV applications need"),
        ({"subscription_years": 9}, ValidationError, "subscription_years: Input should be less than or equal to 3"),
    ],
)
def test_refused_registrations_are_audited(
    sqlite_ctx: Context,
    raw: dict[str, object],
    error: type,
    reason: str,
) -> None:
    body = {**application_input(SERVER).model_dump(mode="json", exclude_none=True), **raw}
    with pytest.raises(error):
        apps.submit_application(sqlite_ctx, body, actor="operator:carol")
    (event,) = _events(sqlite_ctx, "application.refused")
    assert event.actor == "operator:carol" and reason in event.details["reason"]
    assert event.subject == str(body["server_name"])
    assert apps.list_applications(sqlite_ctx) == []


# --- the same, through the portal and the API --------------------------------------------------------------


@pytest.fixture
def client(sqlite_ctx: Context) -> Iterator[TestClient]:
    env = {**DEMO_ENV, "ECERT_OPERATOR_TOKEN": OPERATOR_TOKEN, "ECERT_SESSION_SECRET": "s" * 48}
    with TestClient(create_app(sqlite_ctx.settings, env, context=sqlite_ctx)) as c:
        yield c


def _portal_log_in(client: TestClient, reference: str, pin: str, lang: str = "en") -> str:
    page = client.get("/portal/login", params={"lang": lang})
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token is not None
    response = client.post(
        "/portal/login",
        data={"csrf_token": token.group(1), "server_name": SERVER, "reference_number": reference, "pin": pin},
        follow_redirects=False,
    )
    return f"{response.status_code} {response.headers.get('retry-after', '-')} {response.text}"


def test_the_log_in_page_says_how_many_tries_are_left_and_how_long_the_lock_lasts(
    sqlite_ctx: Context,
    client: TestClient,
) -> None:
    reg = _register(_freeze(sqlite_ctx))
    first = _portal_log_in(client, reg.reference_number, _wrong(reg.pin))
    assert first.startswith("401 - ")
    assert "4 tries left with this Reference Number; after that, log-in with it is suspended for 30 minutes." in first
    for _ in range(3):
        last = _portal_log_in(client, reg.reference_number, _wrong(reg.pin))
    assert "1 try left with this Reference Number" in last
    locked = _portal_log_in(client, reg.reference_number, _wrong(reg.pin))
    assert locked.startswith("429 1800 ")
    assert "Log-in with this Reference Number is suspended for 30 more minutes." in locked
    # An unknown reference shows the same count on its first try.
    other = _portal_log_in(client, "987654321" if reg.reference_number != "987654321" else "987654320", "1" * 16)
    assert "4 tries left with this Reference Number" in other


def test_the_session_api_says_tries_left_and_retry_after(sqlite_ctx: Context, client: TestClient) -> None:
    reg = _register(_freeze(sqlite_ctx))
    body = {"server_name": SERVER, "reference_number": reg.reference_number, "pin": _wrong(reg.pin)}
    first = client.post("/api/v1/sessions", json=body)
    assert first.status_code == 401 and first.headers["content-type"] == "application/problem+json"
    assert (first.json()["tries_left"], first.json()["lockout_minutes"]) == (4, 30)
    assert first.json()["detail"] == apps.LOGIN_FAILED_MESSAGE and "WWW-Authenticate" in first.headers
    for _ in range(4):
        last = client.post("/api/v1/sessions", json=body)
    assert last.status_code == 429 and last.headers["retry-after"] == "1800"
    assert last.json()["retry_after_seconds"] == 1800 and last.json()["limit"] == "reference"


def test_the_operator_api_lists_unlocks_and_reissues(sqlite_ctx: Context, client: TestClient) -> None:
    reg = _register(sqlite_ctx)
    for _ in range(sqlite_ctx.settings.login_max_failures):
        _refusal(sqlite_ctx, reg.reference_number, _wrong(reg.pin))
    listed = client.get("/api/v1/operator/applications", params={"locked": "true"}, headers=OP)
    assert listed.status_code == 200 and [r["reference_number"] for r in listed.json()] == [reg.reference_number]
    assert client.get("/api/v1/operator/applications", params={"state": "confirmed"}, headers=OP).json() == []
    assert client.get("/api/v1/operator/applications", params={"state": "nonsense"}, headers=OP).status_code == 400
    assert client.post(f"/api/v1/operator/applications/{reg.reference_number}/unlock").status_code == 401

    unlocked = client.post(f"/api/v1/operator/applications/{reg.reference_number}/unlock", headers=OP)
    assert unlocked.status_code == 200 and unlocked.json()["locked_until"] is None
    assert _log_in(sqlite_ctx, reg.reference_number, reg.pin) == reg.application_id

    new = client.post(f"/api/v1/operator/applications/{reg.reference_number}/reissue-pin", headers=OP)
    assert new.status_code == 200
    pin = new.json()["pin"]
    assert pin != reg.pin and "earlier PIN no longer works" in new.json()["envelope_html"]
    assert isinstance(_refusal(sqlite_ctx, reg.reference_number, reg.pin), LoginRefused)
    assert _log_in(sqlite_ctx, reg.reference_number, pin) == reg.application_id
    assert client.post("/api/v1/operator/applications/123/unlock", headers=OP).status_code == 404
    assert [e.actor for e in _events(sqlite_ctx, "application.unlocked")] == ["operator:api"]


def test_the_operator_api_audits_a_refused_registration(sqlite_ctx: Context, client: TestClient) -> None:
    body = application_input(SERVER).model_dump(mode="json", exclude_none=True)
    assert (
        client.post("/api/v1/operator/applications", json={**body, "server_name": "localhost"}, headers=OP).status_code
        == 400
    )
    assert client.post("/api/v1/operator/applications", content=b"{not json", headers=OP).status_code == 422
    assert client.post("/api/v1/operator/applications", json={}, headers={}).status_code == 401  # not audited
    refused = _events(sqlite_ctx, "application.refused")
    assert [(e.subject, e.actor) for e in refused] == [("localhost", "operator:api"), (None, "operator:api")]
    created = client.post("/api/v1/operator/applications", json=body, headers=OP)
    assert created.status_code == 201 and len(created.json()["pin"]) == 16


def test_the_openapi_document_still_describes_the_registration_body(client: TestClient) -> None:
    operation = client.get("/openapi.json").json()["paths"]["/api/v1/operator/applications"]["post"]
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    assert "server_name" in schema["properties"] and "$ref" not in json.dumps(schema)


# --- the command line ------------------------------------------------------------------------------------


VENV_BIN = Path(sys.executable).parent  # where this interpreter's console scripts are installed


def test_the_operator_command_line(tmp_path: Path) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "ECERT_DATA_DIR": str(tmp_path / "data"),
        "ECERT_KEY_PASSPHRASE": "cli-pass",
        "NO_COLOR": "1",
        "ECERT_SMTP_PORT": "9",
        "USER": "dora",
    }

    def run(*args: str, code: int = 0) -> str:
        done = subprocess.run(
            [str(VENV_BIN / "ecert-ca"), "application", *args], capture_output=True, text=True, env=env, timeout=120
        )
        assert done.returncode == code, done.stdout + done.stderr
        return done.stdout + done.stderr

    refused = run(
        "add",
        "--server-name",
        "localhost",
        "--org-en",
        "Example Limited",
        "--reg-doc-number",
        "1",
        "--rep-email",
        "a@example.com",
        "--envelope",
        str(tmp_path / "x.html"),
        code=1,
    )
    assert "localhost" in refused and not (tmp_path / "x.html").exists()
    added = json.loads(
        run(
            "add",
            "--server-name",
            SERVER,
            "--org-en",
            "Example Limited",
            "--reg-doc-number",
            "1",
            "--rep-email",
            "a@example.com",
            "--envelope",
            str(tmp_path / "env.html"),
            "--json",
        )
    )
    reference = added["data"]["reference_number"]
    pin = re.search(r'class="pin">([0-9 ]+)<', (tmp_path / "env.html").read_text())
    assert pin is not None

    ctx = build_context(Settings(data_dir=tmp_path / "data"), {})
    try:
        for _ in range(ctx.settings.login_max_failures):
            _refusal(ctx, reference, _wrong(pin.group(1).replace(" ", "")))
        listed = json.loads(run("list", "--locked", "--json"))["data"]
        assert [r["reference_number"] for r in listed] == [reference]
        assert json.loads(run("list", "--state", "confirmed", "--json"))["data"] == []
        assert "Log-in with" in run("unlock", reference) and json.loads(run("list", "--locked", "--json"))["data"] == []
        out = run("reissue-pin", reference, "--envelope", str(tmp_path / "new.html"))
        assert "The old PIN no longer works" in out and (tmp_path / "new.html").stat().st_mode & 0o777 == 0o600
        new_pin = re.search(r'class="pin">([0-9 ]+)<', (tmp_path / "new.html").read_text())
        assert new_pin is not None and new_pin.group(1) != pin.group(1)
        assert "exists" in run("reissue-pin", reference, "--envelope", str(tmp_path / "new.html"), code=1)
        assert _log_in(ctx, reference, new_pin.group(1)) == added["data"]["application_id"]
        assert [e.actor for e in _events(ctx, "application.refused")] == ["operator:dora"]
        assert [e.actor for e in _events(ctx, "application.pin_reissued")] == ["operator:dora"]
    finally:
        ctx.close()
