"""BR 5.4.1 refusals reach the audit chain (issue 10 point 6): forged or missing CSRF tokens, oversized bodies."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

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
