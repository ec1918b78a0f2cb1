"""One website, several names (issue 10 point 9): the website-file method has one code per application.

A real web server on loopback serves one web root for every Host (what a site answering for both
``shop`` and ``www.shop`` does); Knot points both names at it. One ``fileauth.txt`` must validate both.
Also: the DCV GET pages and ``GET /api/v1/dcv/methods`` never move an application, even one that became
exempt after it was confirmed; the POST does.
"""

from __future__ import annotations

import functools
import http.server
import re
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ecert.core import dcv_rules
from ecert.core.application import AppState
from ecert.services import applications as apps
from ecert.services import enrolment
from ecert.services.context import Context
from ecert.web.app import create_app
from tests.integration.ca_fixtures import DEMO_ENV, hold_namespace
from tests.integration.dcv_fixtures import KnotDns, free_port
from tests.integration.test_applications import application_input

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def webroot(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """``python -m http.server`` in-process: one directory for every Host, on 127.0.0.1 only."""
    root = tmp_path / "www"
    (root / ".well-known" / "pki-validation").mkdir(parents=True)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None  # type: ignore[attr-defined, method-assign]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def site_ctx(make_demo_ctx: Callable[..., Context], knot_dns: KnotDns, webroot: tuple[Path, int]) -> Context:
    return make_demo_ctx(
        dns_resolvers=(knot_dns.resolver_addr,),
        allow_private_addresses=True,
        smtp_port=9,
        http_port=webroot[1],
        https_port=free_port(),
    )


def _two_names(ctx: Context, knot: KnotDns) -> tuple[int, list[str]]:
    shop = f"shop{uuid.uuid4().hex[:8]}.example.net"
    names = [shop, f"www.{shop}"]
    for name in names:
        knot.set_records(name, "A", ["127.0.0.1"])
    reg = apps.register_application(
        ctx, application_input(shop, cert_type="multi", additional_names=names[1:]), actor="operator:test"
    )
    apps.confirm_application(ctx, reg.application_id, use_chinese=False, actor="subscriber")
    return reg.application_id, names


def test_one_file_validates_every_name_of_a_website(
    site_ctx: Context,
    knot_dns: KnotDns,
    webroot: tuple[Path, int],
) -> None:
    app_id, names = _two_names(site_ctx, knot_dns)
    views = enrolment.dcv_start(site_ctx, app_id, method="http_file")
    assert [v.domain for v in views] == names
    assert len({v.file_content for v in views}) == 1  # one Random Value for the request (BR 3.2.2.4.18)
    content = str(views[0].file_content)
    assert len(content) == 32  # 24 bytes = 192 bits, URL-safe base64
    assert enrolment.validation_file(site_ctx, app_id) == enrolment.validation_file(site_ctx, app_id, names[1])
    (webroot[0] / ".well-known" / "pki-validation" / "fileauth.txt").write_text(content)
    outcome = enrolment.dcv_check(site_ctx, app_id)
    assert outcome.passed, outcome.results
    assert outcome.state == AppState.VALIDATED.value and [r.domain for r in outcome.results] == names


def test_the_shared_code_is_kept_for_30_days_and_then_replaced(site_ctx: Context, knot_dns: KnotDns) -> None:
    app_id, _ = _two_names(site_ctx, knot_dns)
    first = {v.code for v in enrolment.dcv_start(site_ctx, app_id, method="http_file")}
    enrolment.dcv_start(site_ctx, app_id, method="dns")  # DNS keeps a code per name
    again = {v.code for v in enrolment.dcv_start(site_ctx, app_id, method="http_file")}
    assert first == again and len(first) == 1
    start = site_ctx.clock()
    site_ctx.clock = lambda: start + dcv_rules.CODE_VALIDITY + timedelta(minutes=1)
    fresh = {v.code for v in enrolment.dcv_start(site_ctx, app_id, method="http_file")}
    assert len(fresh) == 1 and fresh != first


def test_dns_codes_stay_per_name(site_ctx: Context, knot_dns: KnotDns) -> None:
    app_id, names = _two_names(site_ctx, knot_dns)
    views = enrolment.dcv_start(site_ctx, app_id, method="dns")
    assert len({v.txt_value for v in views}) == len(names)


def test_the_portal_says_one_file_serves_every_name(site_ctx: Context, knot_dns: KnotDns) -> None:
    shop = f"shop{uuid.uuid4().hex[:8]}.example.net"
    reg = apps.register_application(
        site_ctx, application_input(shop, cert_type="multi", additional_names=[f"www.{shop}"]), actor="operator:test"
    )
    with TestClient(create_app(site_ctx.settings, DEMO_ENV, context=site_ctx)) as client:
        _log_in(client, shop, reg)
        page = client.get("/portal/confirm")
        client.post("/portal/confirm", data={"csrf_token": _csrf(page.text), "action": "confirm"})
        page = client.get("/portal/dcv", params={"lang": "en"})
        shown = client.post(
            "/portal/dcv", data={"csrf_token": _csrf(page.text), "action": "start", "method": "http_file"}
        )
        assert shown.url.path == "/portal/dcv" and 'id="dcv-http"' in shown.text
        assert "The same file serves every domain name" in shown.text
        assert shown.text.count('class="fileauth"') == 1  # one download, not one per name
        served = client.get("/portal/dcv/fileauth.txt")
        assert served.status_code == 200 and served.text == enrolment.validation_file(site_ctx, reg.application_id)


def _csrf(html: str) -> str:
    found = CSRF.search(html)
    assert found
    return found.group(1)


def _log_in(client: TestClient, host: str, reg: apps.RegisteredApplication) -> None:
    page = client.get("/portal/login")
    pin = " ".join(reg.pin[i : i + 4] for i in range(0, 16, 4))
    client.post(
        "/portal/login",
        data={
            "csrf_token": _csrf(page.text),
            "server_name": host,
            "reference_number": reg.reference_number,
            "pin": pin,
        },
    )


def test_gets_never_move_an_application_that_became_exempt(site_ctx: Context, knot_dns: KnotDns) -> None:
    host = f"late{uuid.uuid4().hex[:8]}.example.org"
    reg = apps.register_application(site_ctx, application_input(host), actor="operator:test")
    apps.confirm_application(site_ctx, reg.application_id, use_chinese=False, actor="subscriber")
    hold_namespace(site_ctx, knot_dns, "example.org")  # the operator validates the parent afterwards
    with TestClient(create_app(site_ctx.settings, DEMO_ENV, context=site_ctx)) as client:
        _log_in(client, host, reg)
        token = client.post(
            "/api/v1/sessions", json={"server_name": host, "reference_number": reg.reference_number, "pin": reg.pin}
        ).json()["token"]
        assert client.get("/api/v1/dcv/methods", headers={"Authorization": f"Bearer {token}"}).json() == []
        page = client.get("/portal/dcv", params={"lang": "en"})
        assert page.status_code == 200 and 'id="dcv-exempt"' in page.text
        assert apps.get_application(site_ctx, reg.application_id).state == AppState.CONFIRMED.value
        done = client.post("/portal/dcv", data={"csrf_token": _csrf(page.text), "action": "check"})
        assert "Your control over every domain name has been confirmed" in done.text
    assert apps.get_application(site_ctx, reg.application_id).state == AppState.VALIDATED.value
