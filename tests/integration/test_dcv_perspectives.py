"""Multi-perspective issuance corroboration (BR 3.2.2.9) with perspectives on loopback ports.

Honest perspectives run the real checks (`ecert-ca perspective serve`'s app); others are down, lie
that everything passed, lie that everything failed, or hold the wrong secret.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import httpx
import pytest

from ecert.cli.perspective import build_app
from ecert.core.dcv_rules import new_validation_code
from ecert.validation.perspectives import CHECK_PATH, create_perspective_app, sign
from ecert.validation.validator import Validator
from tests.integration.dcv_fixtures import dcv_settings, free_port, start_asgi

SECRET = b"test-perspective-secret"


@pytest.fixture(scope="module")
def fleet(knot_dns):
    settings = dcv_settings(knot_dns.resolver_addr)
    apps = {f"honest{i}": build_app(SECRET, settings, name=f"honest{i}") for i in range(5)}
    apps["liar_pass"] = create_perspective_app(lambda p: {"passed": True, "permitted": True, "reason": "sure"}, SECRET)
    apps["liar_fail"] = create_perspective_app(lambda p: {"passed": False, "permitted": False, "reason": "no"}, SECRET)
    apps["wrong_secret"] = build_app(b"another-secret", settings)
    running = {name: start_asgi(app) for name, app in apps.items()}
    urls = {name: r.url for name, r in running.items()}
    urls["down"] = f"http://127.0.0.1:{free_port()}"
    yield urls
    for r in running.values():  # ask all to exit first, then wait: stopping one by one is slow
        r.server.should_exit = True
    for r in running.values():
        r.stop()


# BR 3.2.2.9 asks for five remote perspectives from 2026-12-15; the quorum tests run on a day after that.
FIVE_PERSPECTIVE_DAY = datetime(2026, 12, 20, 12, 0, tzinfo=UTC)


def _validator(knot, fleet, *names):
    settings = dcv_settings(knot.resolver_addr, perspective_urls=tuple(fleet[n] for n in names))
    return Validator(settings, perspective_secret=SECRET, perspective_timeout=3.0, clock=lambda: FIVE_PERSPECTIVE_DAY)


HONEST = ("honest0", "honest1", "honest2", "honest3", "honest4")


@pytest.mark.parametrize(
    ("perspectives", "passed"),
    [
        (HONEST, True),
        (HONEST[:4] + ("down",), True),  # 1 of 5 may fail to corroborate
        (HONEST[:4] + ("liar_fail",), True),
        (HONEST[:4] + ("wrong_secret",), True),
        (HONEST[:3] + ("down", "liar_fail"), False),  # 2 of 5 is too many
        (HONEST[:3] + ("wrong_secret", "down"), False),
        (HONEST[:4], False),  # fewer remote perspectives than BR 3.2.2.9 requires from 2026-12-15
    ],
)
def test_dns_validation_quorum(knot_dns, fleet, perspectives, passed):
    code = new_validation_code()
    name = f"mpic-{abs(hash(perspectives)) % 10**8}.example.com"
    knot_dns.add_txt(name, code)
    result = _validator(knot_dns, fleet, *perspectives).check("dns", name, code)
    assert result.passed is passed, result.reason
    mpic = result.evidence["mpic"]
    assert len(mpic["perspectives"]) == len(perspectives), "each perspective's answer is recorded"
    assert mpic["rule"] == "BR 3.2.2.9"


def test_a_lying_perspective_cannot_turn_a_failure_into_a_pass(knot_dns, fleet):
    validator = _validator(knot_dns, fleet, "liar_pass", "liar_pass", "liar_pass", "liar_pass", "liar_pass")
    result = validator.check("dns", "absent-record.example.com", new_validation_code())
    assert not result.passed


def test_down_perspective_is_recorded_with_its_error(knot_dns, fleet):
    code = new_validation_code()
    knot_dns.add_txt("mpic-down.example.com", code)
    result = _validator(knot_dns, fleet, *HONEST[:4], "down").check("dns", "mpic-down.example.com", code)
    down = [p for p in result.evidence["mpic"]["perspectives"] if p["url"] == fleet["down"]]
    assert down and "error" in down[0]
    honest = [p for p in result.evidence["mpic"]["perspectives"] if p["url"] == fleet["honest0"]]
    assert honest[0]["answer"]["passed"] is True


@pytest.mark.parametrize(
    ("perspectives", "permitted"),
    [(HONEST[:4] + ("liar_fail",), True), (HONEST[:3] + ("liar_fail", "down"), False)],
)
def test_caa_quorum(knot_dns, fleet, perspectives, permitted):
    knot_dns.set_records("mpic-caa.example.com", "CAA", ['0 issue "ecert.example.hk"'])
    [decision] = _validator(knot_dns, fleet, *perspectives).check_caa(["mpic-caa.example.com"])
    assert decision.permitted is permitted, decision.reason


def test_caa_forbidden_at_primary_stays_forbidden(knot_dns, fleet):
    knot_dns.set_records("mpic-caa-deny.example.com", "CAA", ['0 issue ";"'])
    validator = _validator(knot_dns, fleet, *(["liar_pass"] * 5))
    [decision] = validator.check_caa(["mpic-caa-deny.example.com"])
    assert not decision.permitted


@pytest.mark.parametrize(
    ("age", "secret", "status"),
    [(0, SECRET, 200), (120, SECRET, 401), (-120, SECRET, 401), (0, b"wrong", 401)],
    ids=["fresh", "stale", "future", "bad-mac"],
)
def test_perspective_requests_are_authenticated(fleet, age, secret, status):
    body = json.dumps({"kind": "caa", "name": "example.com"}).encode()
    ts = int(time.time()) - age
    response = httpx.post(
        fleet["honest0"] + CHECK_PATH,
        content=body,
        timeout=5,
        headers={"X-Ecert-Timestamp": str(ts), "X-Ecert-Signature": sign(secret, ts, body)},
    )
    assert response.status_code == status


def test_perspective_serve_command_runs_and_refuses_unsigned_requests(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    port = free_port()
    exe = Path(sys.executable).with_name("ecert-ca")
    env = {**os.environ, "ECERT_PERSPECTIVE_SECRET": "cli-secret", "ECERT_DATA_DIR": str(tmp_path)}
    proc = subprocess.Popen(
        [str(exe), "perspective", "serve", "--port", str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 30
        answer = None
        while time.monotonic() < deadline and answer is None:
            try:
                answer = httpx.post(f"http://127.0.0.1:{port}{CHECK_PATH}", content=b"{}", timeout=2)
            except httpx.TransportError:
                time.sleep(0.2)
        assert answer is not None and answer.status_code in (401, 403)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
