"""Property-based fuzzing of the published OpenAPI (schemathesis): no request may produce a server error."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings

from ecert.services import applications as apps
from ecert.services.context import Context
from ecert.web.app import create_app
from tests.integration.ca_fixtures import DEMO_ENV, build_demo_ctx, hold_namespace
from tests.integration.dcv_fixtures import KnotDns
from tests.integration.test_applications import application_input

OPERATOR_TOKEN = "schemathesis-operator-token"


@pytest.fixture(scope="module")
def fuzz_ctx(tmp_path_factory: pytest.TempPathFactory, knot_dns: KnotDns) -> Iterator[Context]:
    ctx = build_demo_ctx(
        Path(tmp_path_factory.mktemp("fuzz")),
        smtp_port=9,  # discard port: mail fails fast
        dns_resolvers=(knot_dns.resolver_addr,),
        allow_private_addresses=True,
    )
    hold_namespace(ctx, knot_dns)  # so the fuzzed CSR endpoint reaches issuance without a DCV step
    yield ctx
    ctx.close()


@pytest.fixture(scope="module")
def fuzz_app(fuzz_ctx: Context) -> FastAPI:
    return create_app(
        fuzz_ctx.settings,
        {**DEMO_ENV, "ECERT_OPERATOR_TOKEN": OPERATOR_TOKEN, "ECERT_SESSION_SECRET": "f" * 48},
        context=fuzz_ctx,
    )


@pytest.fixture(scope="module")
def session_token(fuzz_ctx: Context) -> str:
    reg = apps.register_application(fuzz_ctx, application_input("www.example.com", is_government=True), actor="t")
    return apps.open_session(fuzz_ctx, reg.application_id).token


def test_no_server_errors(fuzz_app: FastAPI, session_token: str) -> None:
    """Every /api/v1 operation, 15 generated requests each (with valid credentials, so handlers run)."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzz_app).include(path_regex=r"^/api/v1/")
    failures: list[str] = []
    statuses: list[int] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15

    def make_run(operation, headers: dict[str, str]):  # type: ignore[no-untyped-def]
        @given(case=operation.as_strategy())
        @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def run(case) -> None:  # type: ignore[no-untyped-def]
            response = case.call(headers=headers)
            statuses.append(response.status_code)
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:300]}")

        return run

    for operation in operations:
        token = OPERATOR_TOKEN if operation.path.startswith("/api/v1/operator") else session_token
        make_run(operation, {"Authorization": f"Bearer {token}"})()
    assert failures == []
    assert len(statuses) >= 100 and any(code < 300 for code in statuses)
