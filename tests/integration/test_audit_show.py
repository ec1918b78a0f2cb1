"""`ecert-ca audit show`: an operator or an auditor reads the log back, narrowed, newest first, a page at a time.

Events are written through the store's one appender (as every service writes them) into a demo instance,
then read by the real command in a process of its own on the same data directory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ecert.core.errors import EcertError
from ecert.services.audit_log import read_events
from ecert.services.context import Context
from ecert.store import audit
from ecert.store.audit_search import EventQuery, events
from ecert.web.app import create_app

from .foundation_fixtures import PASSPHRASE_ENV

VENV_BIN = Path(sys.executable).parent


def _record(ctx: Context, *rows: tuple[str, str, str | None, dict[str, object]]) -> None:
    with ctx.transaction() as session:
        for actor, event, subject, details in rows:
            audit.append(session, actor=actor, event=event, subject=subject, details=details, now=ctx.clock())


def _show(ctx: Context, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **PASSPHRASE_ENV, "ECERT_DATA_DIR": str(ctx.settings.data_dir), "NO_COLOR": "1"}
    env.pop("ECERT_DATABASE_URL", None)
    done = subprocess.run(
        [str(VENV_BIN / "ecert-ca"), "audit", "show", *args], capture_output=True, text=True, env=env, timeout=60
    )
    if check:
        assert done.returncode == 0, done.stdout + done.stderr
    return done


def _shown(ctx: Context, *args: str) -> list[dict[str, object]]:
    return list(json.loads(_show(ctx, *args, "--json").stdout)["data"])


@pytest.fixture
def logged(sqlite_ctx: Context) -> Context:
    _record(
        sqlite_ctx,
        ("operator:cli", "application.registered", "100000001", {"server_name": "www.example.com"}),
        ("acme:7", "acme.order.created", "www.example.com", {"order_id": 1}),
        ("operator:cli", "application.refused", "bad name", {"reason": "a space"}),
        ("acme:7", "acme.order.finalizing", "1", {"order_id": 1}),
        ("subscriber", "cert.downloaded", "0abc", {"format": "pem"}),
    )
    return sqlite_ctx


def test_the_newest_events_come_first_and_a_prefix_narrows_to_one_kind(logged: Context) -> None:
    shown = _shown(logged, "--event", "acme.")
    assert [e["event"] for e in shown] == ["acme.order.finalizing", "acme.order.created"]
    assert shown[0]["id"] > shown[1]["id"] and shown[0]["actor"] == "acme:7" and shown[0]["details"] == {"order_id": 1}
    assert [e["event"] for e in _shown(logged, "--event", "cert.downloaded")] == ["cert.downloaded"]
    assert _shown(logged, "--event", "cert.download") == [], "a name without the final dot is matched whole"


def test_subject_and_actor_narrow_together(logged: Context) -> None:
    assert [e["event"] for e in _shown(logged, "--subject", "100000001")] == ["application.registered"]
    shown = _shown(logged, "--actor", "operator:cli", "--event", "application.")
    assert [e["subject"] for e in shown] == ["bad name", "100000001"]


def test_pages_go_back_by_id_and_the_text_says_how(logged: Context) -> None:
    first = _show(logged, "--limit", "2").stdout.splitlines()
    assert "cert.downloaded" in first[0] and "acme.order.finalizing" in first[1]
    hint = first[-1]
    assert hint.startswith("(more may be older: add --before ")
    before = hint.removeprefix("(more may be older: add --before ").rstrip(")")
    older = _shown(logged, "--limit", "2", "--before", before)
    assert [e["event"] for e in older] == ["application.refused", "acme.order.created"]


def test_what_came_from_outside_cannot_drive_the_terminal(logged: Context) -> None:
    """A subject is what someone sent (a name, an identifier): it is shown escaped, never as raw control
    characters or a right-to-left override that would rewrite the operator's screen."""
    _record(logged, ("acme:8", "acme.request.refused", "\x1b[2J\x1b]0;owned\x07evil\u202e", {"path": "\x1b[31m"}))
    text = _show(logged, "--limit", "1").stdout
    assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text
    assert "\\x1b[2J" in text and "\\u202e" in text


@pytest.mark.parametrize("limit", ["0", "1001", "many"])
def test_a_page_outside_its_bounds_is_refused_with_a_clear_error(logged: Context, limit: str) -> None:
    done = _show(logged, "--limit", limit, check=False)
    assert done.returncode == 2 and "--limit" in done.stderr


def test_the_store_prefix_is_literal_on_either_database(any_db_ctx: Context) -> None:
    """``%`` and ``_`` in a prefix are characters, not LIKE wildcards."""
    _record(
        any_db_ctx,
        ("system", "x_y.one", None, {}),
        ("system", "xzy.two", None, {}),
        ("system", "x%.three", None, {}),
    )
    with any_db_ctx.read() as session:
        assert [e.event for e in events(session, EventQuery(10, event="x_y."))] == ["x_y.one"]
        assert [e.event for e in events(session, EventQuery(10, event="x%."))] == ["x%.three"]


OPERATOR = {"Authorization": "Bearer audit-test-token"}


def _api(ctx: Context) -> TestClient:
    env = {"ECERT_JOBS": "off", "ECERT_OPERATOR_TOKEN": "audit-test-token", "ECERT_SESSION_SECRET": "s" * 32}
    return TestClient(create_app(ctx.settings, env, context=ctx))


def test_the_operator_api_reads_the_same_log_behind_its_token(logged: Context) -> None:
    api = _api(logged)
    assert api.get("/api/v1/operator/audit-events").status_code == 401
    shown = api.get("/api/v1/operator/audit-events", params={"event": "acme.", "limit": 1}, headers=OPERATOR)
    assert shown.status_code == 200
    [newest] = shown.json()
    assert newest["event"] == "acme.order.finalizing" and newest["details"] == {"order_id": 1}
    older = api.get(
        "/api/v1/operator/audit-events", params={"event": "acme.", "before": newest["id"]}, headers=OPERATOR
    )
    assert [e["event"] for e in older.json()] == ["acme.order.created"]
    by = api.get("/api/v1/operator/audit-events", params={"by": "subscriber"}, headers=OPERATOR)
    assert [e["event"] for e in by.json()] == ["cert.downloaded"]


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 1001}, {"since": "2026-12-07T10:00:00"}, {"before": 0}])
def test_the_operator_api_refuses_a_query_outside_its_bounds(logged: Context, params: dict[str, object]) -> None:
    """A time without its zone is refused rather than guessed."""
    refused = _api(logged).get("/api/v1/operator/audit-events", params=params, headers=OPERATOR)
    assert refused.status_code in (400, 422) and refused.headers["content-type"] == "application/problem+json"


def test_a_nul_in_a_filter_is_a_clear_refusal_on_either_database(any_db_ctx: Context) -> None:
    """PostgreSQL refuses NUL in a text parameter: that was a 500 waiting for the first fuzzer."""
    with pytest.raises(EcertError, match="NUL"):
        read_events(any_db_ctx, EventQuery(10, subject="a\x00b"))
    refused = _api(any_db_ctx).get("/api/v1/operator/audit-events", params={"by": "\x00"}, headers=OPERATOR)
    assert refused.status_code == 400 and "NUL" in refused.json()["detail"]
