"""DCV state against the real DNS server: it survives a restart, and a code older than 30 days is refused."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from ecert.services import applications as apps
from ecert.services import enrolment
from ecert.services.context import build_context
from tests.integration.ca_fixtures import DEMO_ENV, build_demo_ctx, demo_settings
from tests.integration.dcv_fixtures import KnotDns
from tests.integration.test_applications import application_input


def _settings(knot: KnotDns) -> dict[str, object]:
    return {"dns_resolvers": (knot.resolver_addr,), "allow_private_addresses": True, "smtp_port": 9}


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "ca"


def _confirmed(ctx, host: str) -> int:  # type: ignore[no-untyped-def]
    reg = apps.register_application(ctx, application_input(host), actor="operator:test")
    apps.confirm_application(ctx, reg.application_id, use_chinese=False, actor="s")
    return reg.application_id


def test_a_started_validation_survives_a_restart(data_dir: Path, knot_dns: KnotDns) -> None:
    host = f"r{uuid.uuid4().hex[:10]}.example.com"
    first = build_demo_ctx(data_dir, **_settings(knot_dns))
    app_id = _confirmed(first, host)
    [challenge] = enrolment.dcv_start(first, app_id, method="dns")
    first.close()
    # A new process: a new context on the same data directory and database.
    second = build_context(demo_settings(data_dir, **_settings(knot_dns)), DEMO_ENV)
    try:
        [again] = enrolment.dcv_start(second, app_id, method="dns")
        assert again.code == challenge.code  # the same Validation Code, not a new one
        knot_dns.add_txt(again.txt_name, again.txt_value)
        outcome = enrolment.dcv_check(second, app_id)
        assert outcome.passed and outcome.state == "validated"
    finally:
        second.close()


def test_a_code_older_than_30_days_is_refused_and_a_new_one_is_given(data_dir: Path, knot_dns: KnotDns) -> None:
    host = f"x{uuid.uuid4().hex[:10]}.example.com"
    ctx = build_demo_ctx(data_dir, **_settings(knot_dns))
    try:
        app_id = _confirmed(ctx, host)
        [old] = enrolment.dcv_start(ctx, app_id, method="dns")
        knot_dns.add_txt(old.txt_name, old.txt_value)  # published, but checked too late
        started = ctx.clock()
        ctx.clock = lambda: started + timedelta(days=31)
        outcome = enrolment.dcv_check(ctx, app_id)
        assert not outcome.passed and "30 days" in outcome.results[0].reason
        [fresh] = enrolment.dcv_start(ctx, app_id, method="dns")
        assert fresh.code != old.code
        knot_dns.add_txt(fresh.txt_name, fresh.txt_value)
        assert enrolment.dcv_check(ctx, app_id).passed
    finally:
        ctx.close()
