"""No GET changes state (issue 10 point 4): every GET route of the app, at every step of an application's life.

The routes are enumerated from ``app.routes`` (portal, REST API, operator API, public pages, repository, CRL
and OCSP), so a new GET route is walked without editing this test. Each is requested with a logged-in
portal session, an API session token or the operator token, and the whole database (every table, the audit
log included: row counts and a hash of the contents) must be the same before and after.
"""

from __future__ import annotations

import base64
import hashlib
import re
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from fastapi.testclient import TestClient
from sqlalchemy import inspect, text
from starlette.routing import Mount

from ecert.services import applications as apps
from ecert.services.context import Context
from ecert.web.app import create_app
from tests.integration.ca_fixtures import DEMO_ENV
from tests.integration.dcv_fixtures import KnotDns
from tests.integration.test_applications import application_input, make_csr

OPERATOR_TOKEN = "operator-token-for-the-get-walk"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
# GETs outside the DCV code that are known to write, each with the issue point that owns it. The walk fails
# when one of these stops writing too (so the list only shrinks), and on any writer not listed here.
KNOWN_WRITERS: dict[str, str] = {
    "/portal/download/{fmt}": "downloads are audited in the security chain (issue 11, download row: lead's choice)",
    "/api/v1/certificate/download": "downloads are audited in the security chain (issue 11, download row)",
    "/api/v1/certificates/{serial}/download": "public downloads are audited (issue 11, download row)",
    "/search/download/{serial_hex}/{fmt}": "public downloads are audited (issue 11, download row)",
}


def get_routes(routes: list[Any], prefix: str = "") -> Iterator[str]:
    """Every GET path template of the app, through included routers; static mounts are files, not routes."""
    for route in routes:
        if type(route).__name__ == "_IncludedRouter":  # FastAPI's lazily included router
            yield from get_routes(route.original_router.routes, prefix + route.include_context.prefix)
        elif isinstance(route, Mount):
            continue
        elif "GET" in (getattr(route, "methods", None) or ()):
            yield prefix + route.path


def snapshot(ctx: Context) -> dict[str, tuple[int, str]]:
    """Per table: (row count, SHA-256 of every row in a stable order)."""
    out: dict[str, tuple[int, str]] = {}
    with ctx.engine.connect() as conn:
        for table in sorted(inspect(conn).get_table_names()):
            rows = sorted(repr(tuple(r)) for r in conn.execute(text(f'SELECT * FROM "{table}"')))
            out[table] = (len(rows), hashlib.sha256("\n".join(rows).encode()).hexdigest())
    return out


def _changed(before: dict[str, tuple[int, str]], after: dict[str, tuple[int, str]]) -> list[str]:
    return [
        f"{t} ({before.get(t, (0, ''))[0]} -> {after.get(t, (0, ''))[0]} rows)"
        for t in sorted(set(before) | set(after))
        if before.get(t) != after.get(t)
    ]


class Walk:
    """An application taken through its life by the portal, with the sessions and values the GETs need."""

    def __init__(self, ctx: Context, client: TestClient, knot: KnotDns) -> None:
        self.ctx, self.client, self.knot = ctx, client, knot
        self.host = f"g{uuid.uuid4().hex[:10]}.example.net"  # no operator-held validation: DCV is needed
        self.reg = apps.register_application(ctx, application_input(self.host), actor="operator:test")
        self.api_token = ""
        self.values: dict[str, list[str]] = {
            "reference": [self.reg.reference_number],
            "serial": ["00"],
            "serial_hex": ["00"],
            "fmt": ["pem", "der", "p7b", "fullchain"],
            "kind": ["application", "certificate"],
            "encoded": ["MA=="],
        }

    def csrf(self, path: str) -> str:
        found = CSRF.search(self.client.get(path).text)
        assert found, f"{path} has no CSRF token"
        return found.group(1)

    def post(self, path: str, **data: str) -> Any:
        return self.client.post(path, data={"csrf_token": self.csrf(path), **data})

    def log_in(self) -> None:
        pin = " ".join(self.reg.pin[i : i + 4] for i in range(0, 16, 4))
        form = {"server_name": self.host, "reference_number": self.reg.reference_number, "pin": pin}
        done = self.client.post(
            "/portal/login", data={"csrf_token": self.csrf("/portal/login"), **form}, follow_redirects=False
        )
        assert done.status_code == 303, done.text[-2000:]
        api = self.client.post(
            "/api/v1/sessions",
            json={"server_name": self.host, "pin": self.reg.pin, "reference_number": self.reg.reference_number},
        )
        assert api.status_code == 201, api.text
        self.api_token = api.json()["token"]

    def learn_published_files(self) -> None:
        index = self.client.get("/repository/index.json").json()
        urls = [str(v) for v in _strings(index) if v.startswith(("http://", "https://", "/"))]
        paths = [urlsplit(u).path for u in urls]
        self.values["filename"] = sorted({p.rsplit("/", 1)[1] for p in paths if "/repository/ca/" in p})[:3]
        crls = sorted({p.rsplit("/", 1)[1] for p in paths if p.startswith("/crl/")})
        self.values.setdefault("filename", []).extend(crls[:2])

    def learn_certificate(self) -> None:
        """The serial and an OCSP request for the certificate, read from the database (before any download)."""
        from ecert.store.models import CA, Certificate

        with self.ctx.read() as s:
            row = s.query(Certificate).filter(Certificate.application_id == self.reg.application_id).one()
            leaf = x509.load_der_x509_certificate(bytes(row.der or b""))
            issuer = x509.load_der_x509_certificate(bytes(s.get(CA, row.ca_id).cert_der))  # type: ignore[union-attr]
        self.values["serial"] = self.values["serial_hex"] = [f"{leaf.serial_number:x}"]
        request = ocsp.OCSPRequestBuilder().add_certificate(leaf, issuer, hashes.SHA1()).build()
        self.values["encoded"] = [quote(base64.b64encode(request.public_bytes(serialization.Encoding.DER)).decode())]

    def urls(self, template: str) -> list[str]:
        """The template with each path parameter filled from what this application has (every combination)."""
        found = [template]
        for name in re.findall(r"{(\w+)(?::\w+)?}", template):
            param = re.compile("{" + name + r"(?::\w+)?}")
            found = [param.sub(v, u, count=1) for u in found for v in self.values.get(name, ["x"])]
        return [u + _QUERIES.get(template, "") for u in found]

    def headers(self, url: str) -> dict[str, str]:
        if url.startswith("/api/v1/operator/"):
            return {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
        if url.startswith("/api/v1/"):
            return {"Authorization": f"Bearer {self.api_token}"}
        return {}


_QUERIES = {
    "/search": "?by=server_name&q=example.net",
    "/api/v1/search": "?by=server_name&q=example.net",
    "/api/v1/certificate/download": "?format=pem",
    "/portal/dcv/fileauth.txt": "",
}


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


@pytest.fixture
def walk(make_demo_ctx: Callable[..., Context], knot_dns: KnotDns, db_url: str) -> Iterator[Walk]:
    ctx = make_demo_ctx(
        database_url=db_url, dns_resolvers=(knot_dns.resolver_addr,), allow_private_addresses=True, smtp_port=9
    )
    env = {**DEMO_ENV, "ECERT_OPERATOR_TOKEN": OPERATOR_TOKEN, "ECERT_ACME_EAB_SECRET": "get-walk-acme-secret"}
    with TestClient(create_app(ctx.settings, env, context=ctx)) as client:
        w = Walk(ctx, client, knot_dns)
        w.learn_published_files()
        yield w


def walk_every_get(w: Walk, step: str) -> list[str]:
    """GET every route once (clock frozen, so only a request's own writes could show); the ones that wrote."""
    routes = sorted(set(get_routes(w.client.app.routes)))  # type: ignore[attr-defined]
    assert "/portal/dcv" in routes and "/api/v1/dcv/methods" in routes
    real_clock = w.ctx.clock
    frozen: datetime = real_clock()
    w.ctx.clock = lambda: frozen
    writers: list[str] = []
    try:
        for template in routes:
            for url in w.urls(template):
                before = snapshot(w.ctx)
                response = w.client.get(url, headers=w.headers(url), follow_redirects=False)
                assert response.status_code < 500, f"{step}: GET {url} -> {response.status_code}"
                changed = _changed(before, snapshot(w.ctx))
                if changed:
                    writers.append(f"{step}: GET {url} ({template}) changed {', '.join(changed)}")
    finally:
        w.ctx.clock = real_clock
    return writers


def _state(w: Walk) -> str:
    return str(apps.get_application(w.ctx, w.reg.application_id).state)


def test_no_get_route_changes_the_database_at_any_step(walk: Walk) -> None:
    w = walk
    w.log_in()
    writers = walk_every_get(w, "approved")
    assert w.post("/portal/confirm", action="confirm").url.path == "/portal/dcv" and _state(w) == "confirmed"
    writers += walk_every_get(w, "confirmed")
    w.post("/portal/dcv", action="start", method="http_file")
    writers += walk_every_get(w, "website file started")
    page = w.post("/portal/dcv", action="start", method="dns").text
    writers += walk_every_get(w, "dns started")
    value = re.search(r'<code class="txt-value"[^>]*>([^<]+)</code>', page)
    assert value, page[-2000:]
    w.knot.add_txt(w.host, value.group(1))
    checked = w.post("/portal/dcv", action="check", method="dns")
    assert "Your control over every domain name has been confirmed" in checked.text and _state(w) == "validated"
    writers += walk_every_get(w, "validated")
    issued = w.post("/portal/csr", csr_text=make_csr([w.host]))
    assert issued.url.path == "/portal/certificate" and _state(w) == "issued", issued.text[-2000:]
    w.learn_certificate()
    writers += walk_every_get(w, "issued")
    assert w.post("/portal/certificate").url.path == "/portal/download" and _state(w) == "accepted"
    writers += walk_every_get(w, "accepted")
    unexpected = [x for x in writers if not any(f"({t})" in x for t in KNOWN_WRITERS)]
    assert unexpected == [], "\n".join(unexpected)
    still = {t for t in KNOWN_WRITERS if any(f"({t})" in x for x in writers)}
    assert still == set(KNOWN_WRITERS), f"no longer writes: remove from KNOWN_WRITERS {set(KNOWN_WRITERS) - still}"
