"""BR 5.4.1 refusals reach the audit chain (issue 10 point 6): forged or missing CSRF tokens, oversized bodies."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from ecert.services import jobs, refusals
from ecert.services.context import Context
from ecert.store.models import AuditEvent
from ecert.web.app import create_app
from tests.integration.ca_fixtures import DEMO_ENV

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def client(demo_ctx: Context) -> Iterator[TestClient]:
    with TestClient(create_app(demo_ctx.settings, {**DEMO_ENV, "ECERT_JOBS": "off"}, context=demo_ctx)) as c:
        yield c


def _events(ctx: Context, event: str) -> list[AuditEvent]:
    with ctx.read() as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.event == event).order_by(AuditEvent.id)))


def test_a_post_without_a_token_is_audited(demo_ctx: Context, client: TestClient) -> None:
    client.get("/portal/login")
    answer = client.post("/portal/login", data={"reference_number": "A1", "pin": "1234 5678 9012 3456"})
    assert answer.status_code == 403
    [event] = _events(demo_ctx, "csrf.refused")
    assert event.subject == "/portal/login"
    assert event.details == {"method": "POST", "why": "missing"}
    assert event.actor == "client:testclient"
    assert "1234" not in str(event.details)  # what was posted is not logged


def test_a_forged_token_is_audited_and_the_token_is_not_kept(demo_ctx: Context, client: TestClient) -> None:
    client.get("/portal/login")
    forged = "forged-token-value.abc.def"
    assert client.post("/portal/login", data={"csrf_token": forged}).status_code == 403
    [event] = _events(demo_ctx, "csrf.refused")
    assert event.details["why"] == "forged"
    assert forged not in str(event.details)


def test_an_oversized_body_is_audited(demo_ctx: Context, client: TestClient) -> None:
    answer = client.post("/api/v1/sessions", content=b"x" * (70 * 1024), headers={"content-type": "application/json"})
    assert answer.status_code == 413
    [event] = _events(demo_ctx, "request.too_large")
    assert event.subject == "/api/v1/sessions"
    assert event.details == {"method": "POST", "limit": 64 * 1024, "declared_length": 70 * 1024}


def test_a_chunked_oversized_body_is_audited_too(demo_ctx: Context, client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(80):
            yield b"y" * 1024

    assert (
        client.post("/api/v1/sessions", content=chunks(), headers={"content-type": "application/json"}).status_code
        == 413
    )
    [event] = _events(demo_ctx, "request.too_large")
    assert event.details["declared_length"] is None


# --- a flood that stops is still counted in the chain -------------------------------------------------


def _flood(ctx: Context, actor: str, times: int) -> None:
    for _ in range(times):
        refusals.record_refusal(ctx, event="acme.request.refused", actor=actor, subject="/acme/new-order", details={})


def test_a_flood_that_stops_is_counted_once_its_window_ends(demo_ctx: Context) -> None:
    start = demo_ctx.clock()
    demo_ctx.clock = lambda: start
    _flood(demo_ctx, "client:192.0.2.7", 25)
    assert len(_events(demo_ctx, "acme.request.refused")) == 10
    assert refusals.write_left_out(demo_ctx) == 0  # the window is still open: more may come
    demo_ctx.clock = lambda: start + timedelta(minutes=1, seconds=1)
    assert refusals.write_left_out(demo_ctx) == 15
    [row] = _events(demo_ctx, refusals.LEFT_OUT_EVENT)
    assert (row.actor, row.subject) == ("client:192.0.2.7", "acme.request.refused")
    assert row.details == {"left_out": 15, "window_start": start.isoformat()}
    _flood(demo_ctx, "client:192.0.2.7", 1)  # the count is written once, not again with the next refusal
    assert "refusals_left_out_before" not in _events(demo_ctx, "acme.request.refused")[-1].details
    assert refusals.write_left_out(demo_ctx) == 0


def test_the_periodic_jobs_write_the_count(demo_ctx: Context) -> None:
    start = demo_ctx.clock()
    demo_ctx.clock = lambda: start
    _flood(demo_ctx, "client:192.0.2.8", 13)
    demo_ctx.clock = lambda: start + timedelta(minutes=2)
    assert not jobs.run_once(demo_ctx).errors
    [row] = _events(demo_ctx, refusals.LEFT_OUT_EVENT)
    assert row.details["left_out"] == 3


def test_a_stopping_service_writes_every_open_count(demo_ctx: Context) -> None:
    with TestClient(create_app(demo_ctx.settings, {**DEMO_ENV, "ECERT_JOBS": "off"}, context=demo_ctx)):
        _flood(demo_ctx, "client:192.0.2.9", 12)
        assert _events(demo_ctx, refusals.LEFT_OUT_EVENT) == []
    [row] = _events(demo_ctx, refusals.LEFT_OUT_EVENT)
    assert row.details["left_out"] == 2


def test_counts_of_more_sources_than_are_kept_are_folded_not_lost(
    demo_ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(refusals, "_KEYS_KEPT", 3)
    for source in range(3):
        _flood(demo_ctx, f"client:192.0.2.{source}", 12)  # 2 left out each
    _flood(demo_ctx, "client:192.0.2.200", 1)  # a fourth source: the three are folded into one count
    assert refusals.write_left_out(demo_ctx, every_window=True) == 6
    [row] = _events(demo_ctx, refusals.LEFT_OUT_EVENT)
    assert (row.actor, row.subject, row.details["left_out"]) == ("many sources", "refusals", 6)
