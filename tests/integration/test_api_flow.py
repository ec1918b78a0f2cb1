"""The REST API end to end (operator registers, subscriber goes through DNS DCV to a .p7b) and its refusals."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from cryptography.hazmat.primitives.serialization import pkcs7
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from ecert.services.context import Context
from ecert.store import audit
from ecert.store.models import AuditEvent, Certificate
from ecert.web.app import create_app
from tests.integration.ca_fixtures import DEMO_ENV, hold_namespace
from tests.integration.dcv_fixtures import HttpFileServer, KnotDns, SmtpSink
from tests.integration.test_applications import make_csr

OPERATOR_TOKEN = "operator-test-token-0123456789"
ENV = {**DEMO_ENV, "ECERT_OPERATOR_TOKEN": OPERATOR_TOKEN, "ECERT_SESSION_SECRET": "s" * 48}
OP = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}


def client_for(ctx: Context) -> TestClient:
    return TestClient(create_app(ctx.settings, ENV, context=ctx), raise_server_exceptions=False)


@pytest.fixture
def api_ctx(make_demo_ctx: Callable[..., Context], knot_dns: KnotDns, smtp_sink: SmtpSink) -> Context:
    return make_demo_ctx(
        dns_resolvers=(knot_dns.resolver_addr,),
        allow_private_addresses=True,
        smtp_port=smtp_sink.port,
        smtp_port_for_dcv=smtp_sink.port,
    )


def register(client: TestClient, host: str, **extra: object) -> dict[str, object]:
    body = {
        "server_name": host,
        "cert_type": "server",
        "org_name_en": "Example Company Limited",
        "reg_doc_type": "br",
        "reg_doc_number": "12345678",
        "subscription_years": 1,
        "rep_email": "webmaster@example.com",
        **extra,
    }
    r = client.post("/api/v1/operator/applications", json=body, headers=OP)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def login(client: TestClient, host: str, reg: dict[str, object]) -> dict[str, str]:
    r = client.post(
        "/api/v1/sessions", json={"server_name": host, "reference_number": reg["reference_number"], "pin": reg["pin"]}
    )
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def test_api_journey_dns_to_p7b(api_ctx: Context, knot_dns: KnotDns, smtp_sink: SmtpSink) -> None:
    host = f"api{uuid.uuid4().hex[:8]}.example.com"
    client = client_for(api_ctx)
    reg = register(client, host)
    assert "@media print" in str(reg["envelope_html"]) and smtp_sink.messages
    auth = login(client, host, reg)
    assert client.get("/api/v1/application", headers=auth).json()["state"] == "approved"
    assert client.post("/api/v1/application/confirm", json={"use_chinese": False}, headers=auth).status_code == 200
    methods = client.get("/api/v1/dcv/methods", headers=auth).json()
    assert {"http_file", "dns_txt"} <= {m["method"] for m in methods}
    started = client.post("/api/v1/dcv/start", json={"method": "dns_txt"}, headers=auth).json()
    for d in started["domains"]:
        knot_dns.add_txt(d["txt_name"], d["txt_value"])
    checked = client.post("/api/v1/dcv/check", json={}, headers=auth).json()
    assert checked["passed"] and checked["domains"][0]["passed"]
    r = client.post("/api/v1/csr", json={"csr": make_csr([host])}, headers=auth)
    assert r.status_code == 201, r.text
    summary = r.json()
    assert summary["names"] == [host] and summary["state"] == "issued" and summary["validity_days"] > 0
    assert client.post("/api/v1/certificate/accept", headers=auth).json()["state"] == "accepted"
    p7b = client.get("/api/v1/certificate/download", params={"format": "p7b"}, headers=auth)
    assert p7b.status_code == 200 and len(pkcs7.load_der_pkcs7_certificates(p7b.content)) == 2
    hits = client.get("/api/v1/search", params={"by": "server_name", "q": host}).json()
    assert [h["serial_hex"] for h in hits] == [summary["serial_hex"]]
    pem = client.get(f"/api/v1/certificates/{summary['serial_hex']}/download", params={"format": "pem"})
    assert pem.status_code == 200 and pem.content.startswith(b"-----BEGIN CERTIFICATE-----")
    # Accept after accept (and reject after accept) is a conflict, as a problem document.
    again = client.post("/api/v1/certificate/reject", json={"reason": "x"}, headers=auth)
    assert again.status_code == 409 and again.headers["content-type"] == "application/problem+json"


def _held_session(client: TestClient, knot: KnotDns) -> dict[str, str]:
    """A session whose names are under an operator-held validation, so it may go straight to its CSR."""
    hold_namespace(client.app.state.ctx, knot)  # type: ignore[attr-defined]
    reg = register(client, "www.example.com", is_government=True)
    auth = login(client, "www.example.com", reg)
    assert client.post("/api/v1/application/confirm", json={"use_chinese": False}, headers=auth).status_code == 200
    return auth


def test_accept_after_reject_is_409(api_ctx: Context, knot_dns: KnotDns) -> None:
    client = client_for(api_ctx)
    auth = _held_session(client, knot_dns)
    assert client.post("/api/v1/csr", json={"csr": make_csr(["www.example.com"])}, headers=auth).status_code == 201
    assert client.post("/api/v1/certificate/reject", json={"reason": "wrong"}, headers=auth).status_code == 200
    r = client.post("/api/v1/certificate/accept", headers=auth)
    assert r.status_code == 409 and r.json()["type"] == "urn:ecert:problem:conflict"


def test_wrong_pin_many_times_locks_out(demo_ctx: Context) -> None:
    client = client_for(demo_ctx)
    reg = register(client, "www.example.com")
    wrong = {
        "server_name": "www.example.com",
        "reference_number": reg["reference_number"],
        "pin": "0000 0000 0000 0000" if reg["pin"] != "0" * 16 else "1" * 16,
    }
    codes = [client.post("/api/v1/sessions", json=wrong).status_code for _ in range(6)]
    assert codes == [401, 401, 401, 401, 429, 429]
    unknown = client.post("/api/v1/sessions", json={**wrong, "reference_number": "123123123"})
    first = client.post("/api/v1/sessions", json={**wrong, "reference_number": "321321321"})
    assert unknown.json()["detail"] == first.json()["detail"]
    with demo_ctx.sessions() as s:
        assert "login.locked" in s.scalars(select(AuditEvent.event)).all()


@pytest.mark.parametrize("query", ["' OR 1=1--", "%", "_", "\\", "www%", "1; DROP TABLE certificates"])
def test_search_injection_matches_literally(api_ctx: Context, knot_dns: KnotDns, query: str) -> None:
    client = client_for(api_ctx)
    auth = _held_session(client, knot_dns)
    client.post("/api/v1/csr", json={"csr": make_csr(["www.example.com"])}, headers=auth)
    client.post("/api/v1/certificate/accept", headers=auth)
    for by in ("server_name", "serial", "reference"):
        r = client.get("/api/v1/search", params={"by": by, "q": query})
        assert r.status_code == 200 and r.json() == []


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/certificates/../../keys/x/download",
        "/api/v1/certificates/%2e%2e%2fkeys%2fx/download",
        "/api/v1/certificates/..%2F..%2Fkeys%2Fdemo-root-ca-1.key/download",
        "/api/v1/certificates/%00/download",
        "/api/v1/certificates/ffff/download?format=../../x",
    ],
)
def test_download_traversal_is_refused(demo_ctx: Context, path: str) -> None:
    r = client_for(demo_ctx).get(path)
    assert r.status_code in (404, 422) and b"BEGIN" not in r.content
    assert r.headers["content-type"] == "application/problem+json"


def test_oversized_csr_is_413_and_nothing_changes(api_ctx: Context, knot_dns: KnotDns) -> None:
    client = client_for(api_ctx)
    auth = _held_session(client, knot_dns)
    r = client.post("/api/v1/csr", json={"csr": "A" * 70_000}, headers=auth)
    assert r.status_code == 413 and r.json()["type"] == "urn:ecert:problem:csr-too-large"
    assert client.get("/api/v1/application", headers=auth).json()["state"] == "validated"
    with api_ctx.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Certificate)) == 0


@pytest.mark.parametrize(("headers", "status"), [({}, 403), ({"Authorization": "Bearer nope"}, 403)])
def test_operator_api_refused_without_token_configured(demo_ctx: Context, headers: dict[str, str], status: int) -> None:
    client = TestClient(create_app(demo_ctx.settings, DEMO_ENV, context=demo_ctx))
    assert client.post("/api/v1/operator/applications", json={}, headers=headers).status_code == status


@pytest.mark.parametrize(
    ("path", "method"), [("/api/v1/application", "get"), ("/api/v1/certificate", "get"), ("/api/v1/dcv/methods", "get")]
)
def test_session_required(demo_ctx: Context, path: str, method: str) -> None:
    r = getattr(client_for(demo_ctx), method)(path, headers={"Authorization": "Bearer not-a-session"})
    assert r.status_code == 401 and r.json()["status"] == 401


def test_bad_csr_problem_names_the_rule(api_ctx: Context, knot_dns: KnotDns) -> None:
    client = client_for(api_ctx)
    auth = _held_session(client, knot_dns)
    r = client.post("/api/v1/csr", json={"csr": make_csr(["www.example.com", "evil.example.net"])}, headers=auth)
    body = r.json()
    assert r.status_code == 400 and "evil.example.net" in body["detail"] and body["rule"]
    assert "Traceback" not in r.text


# --- DCV method switching through the API (issue 4 audit, item 1) ---------------------------------------


@pytest.fixture
def web_api_ctx(
    make_demo_ctx: Callable[..., Context], knot_dns: KnotDns, smtp_sink: SmtpSink, http_file_server: HttpFileServer
) -> Context:
    return make_demo_ctx(
        dns_resolvers=(knot_dns.resolver_addr,),
        allow_private_addresses=True,
        smtp_port=smtp_sink.port,
        smtp_port_for_dcv=smtp_sink.port,
        http_port=http_file_server.http_port,
        https_port=http_file_server.https_port,
    )


def _api_publish(method: str, d: dict[str, str], knot: KnotDns, web: HttpFileServer) -> None:
    if method == "dns_txt":
        knot.add_txt(d["txt_name"], d["txt_value"])
    else:
        knot.set_records(d["domain"], "A", ["127.0.0.1"])
        web.serve_file(d["domain"], d["file_content"])


@pytest.mark.parametrize(
    "order", [("dns_txt", "http_file", "dns_txt"), ("http_file", "dns_txt", "http_file"), ("http_file", "dns_txt")]
)
def test_api_check_runs_the_method_last_started(
    web_api_ctx: Context, knot_dns: KnotDns, http_file_server: HttpFileServer, order: tuple[str, ...]
) -> None:
    host = f"sw{uuid.uuid4().hex[:8]}.example.com"
    client = client_for(web_api_ctx)
    auth = login(client, host, register(client, host))
    client.post("/api/v1/application/confirm", json={"use_chinese": False}, headers=auth)
    for method in order:
        started = client.post("/api/v1/dcv/start", json={"method": method}, headers=auth)
        assert started.status_code == 200, started.text
    _api_publish(order[-1], started.json()["domains"][0], knot_dns, http_file_server)
    checked = client.post("/api/v1/dcv/check", json={}, headers=auth).json()
    assert checked["passed"] and checked["domains"][0]["method"] == order[-1], checked


def test_api_check_may_name_the_method(web_api_ctx: Context, knot_dns: KnotDns) -> None:
    host = f"sw{uuid.uuid4().hex[:8]}.example.com"
    client = client_for(web_api_ctx)
    auth = login(client, host, register(client, host))
    client.post("/api/v1/application/confirm", json={"use_chinese": False}, headers=auth)
    dns = client.post("/api/v1/dcv/start", json={"method": "dns_txt"}, headers=auth).json()["domains"][0]
    client.post("/api/v1/dcv/start", json={"method": "http_file"}, headers=auth)
    knot_dns.add_txt(dns["txt_name"], dns["txt_value"])
    checked = client.post("/api/v1/dcv/check", json={"method": "dns_txt"}, headers=auth).json()
    assert checked["passed"] and checked["domains"][0]["method"] == "dns_txt"


def test_api_email_to_a_parent_adn(web_api_ctx: Context, smtp_sink: SmtpSink) -> None:
    host = f"www.{uuid.uuid4().hex[:8]}.example.com"
    client = client_for(web_api_ctx)
    auth = login(client, host, register(client, host))
    client.post("/api/v1/application/confirm", json={"use_chinese": False}, headers=auth)
    r = client.post(
        "/api/v1/dcv/start",
        json={"method": "email", "email_local_part": "hostmaster", "email_domain": "example.com"},
        headers=auth,
    )
    assert r.status_code == 200 and r.json()["domains"][0]["email_address"] == "hostmaster@example.com"
    code = smtp_sink.messages[-1]["content"].split("Validation Code:")[1].split()[0]
    checked = client.post("/api/v1/dcv/check", json={"email_code": code}, headers=auth).json()
    assert checked["passed"], checked
    bad = client.post(
        "/api/v1/dcv/start", json={"method": "email", "email_local_part": "admin", "email_domain": "com"}, headers=auth
    )
    assert bad.status_code == 400 and bad.headers["content-type"] == "application/problem+json"


def test_download_before_accept_is_409_and_audited_after(api_ctx: Context, knot_dns: KnotDns) -> None:
    client = client_for(api_ctx)
    auth = _held_session(client, knot_dns)
    assert client.post("/api/v1/csr", json={"csr": make_csr(["www.example.com"])}, headers=auth).status_code == 201
    early = client.get("/api/v1/certificate/download", params={"format": "pem"}, headers=auth)
    assert early.status_code == 409 and early.headers["content-type"] == "application/problem+json"
    assert "accept" in early.json()["detail"] and b"BEGIN CERTIFICATE" not in early.content
    client.post("/api/v1/certificate/accept", headers=auth)
    assert client.get("/api/v1/certificate/download", params={"format": "der"}, headers=auth).status_code == 200
    with api_ctx.sessions() as s:
        channels = [
            e.details["channel"]
            for e in s.scalars(select(AuditEvent).where(AuditEvent.event == "cert.downloaded")).all()
        ]
    assert channels == ["api"]


# --- error answers are problem documents or pages; bodies are capped as they stream (item 5) -------------


def _asgi_post(app: object, path: str, chunks: int, chunk: bytes = b"x" * 65536) -> tuple[int, bytes, int]:
    """POST a chunked body straight through ASGI; (status, content-type, chunks the app pulled)."""
    import asyncio

    pulled = 0
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        nonlocal pulled
        pulled += 1
        return {"type": "http.request", "body": chunk, "more_body": pulled < chunks}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"testserver"),
            (b"content-type", b"application/json"),
            (b"transfer-encoding", b"chunked"),
        ],
        "client": ("127.0.0.1", 5000),
        "server": ("testserver", 80),
    }
    asyncio.run(app(scope, receive, send))  # type: ignore[operator]
    start = next(m for m in sent if m["type"] == "http.response.start")
    ctype = dict(start["headers"]).get(b"content-type", b"")  # type: ignore[arg-type]
    return int(start["status"]), ctype, pulled  # type: ignore[call-overload]


def test_a_20_mb_chunked_post_is_refused_after_the_cap_not_read_in_full(demo_ctx: Context) -> None:
    status, ctype, pulled = _asgi_post(client_for(demo_ctx).app, "/api/v1/sessions", chunks=320)
    assert (status, ctype) == (413, b"application/problem+json")
    assert pulled <= 2  # 64 KiB per chunk: the count passed the cap on the second chunk and reading stopped


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/api/v1/sessions", {}),
        ("/api/v1/operator/applications", OP),
        ("/api/v1/dcv/check", {"Authorization": "Bearer x"}),
    ],
)
def test_api_bodies_over_64_kib_are_413_problems(demo_ctx: Context, path: str, headers: dict[str, str]) -> None:
    r = client_for(demo_ctx).post(
        path, content=b"{" + b" " * 70_000 + b"}", headers={**headers, "content-type": "application/json"}
    )
    assert r.status_code == 413 and r.json()["type"] == "urn:ecert:problem:too-large"


@pytest.mark.parametrize(
    ("path", "accept", "ctype"),
    [
        ("/nonexistent", "text/html,application/xhtml+xml", "text/html; charset=utf-8"),
        ("/nonexistent", "*/*", "application/problem+json"),
        ("/api/v1/nonexistent", "text/html", "application/problem+json"),
    ],
)
def test_unknown_paths_get_a_page_or_a_problem(demo_ctx: Context, path: str, accept: str, ctype: str) -> None:
    r = client_for(demo_ctx).get(path, headers={"Accept": accept})
    assert r.status_code == 404 and r.headers["content-type"] == ctype
    assert ("<h1>" in r.text) if ctype.startswith("text/html") else (r.json()["status"] == 404)


def _accepted_over_api(client: TestClient, knot_dns: KnotDns, host: str) -> tuple[dict[str, str], str]:
    auth = login(client, host, register(client, host))
    client.post("/api/v1/application/confirm", json={"use_chinese": False}, headers=auth)
    started = client.post("/api/v1/dcv/start", json={"method": "dns_txt"}, headers=auth).json()
    for d in started["domains"]:
        knot_dns.add_txt(d["txt_name"], d["txt_value"])
    assert client.post("/api/v1/dcv/check", json={}, headers=auth).json()["passed"]
    first = client.post("/api/v1/csr", json={"csr": make_csr([host])}, headers=auth).json()
    assert client.post("/api/v1/certificate/accept", headers=auth).json()["state"] == "accepted"
    return auth, str(first["serial_hex"])


def test_api_resubmission_is_refused_and_replacement_is_deliberate(api_ctx: Context, knot_dns: KnotDns) -> None:
    host = f"rep{uuid.uuid4().hex[:8]}.example.com"
    client = client_for(api_ctx)
    auth, first = _accepted_over_api(client, knot_dns, host)
    again = client.post("/api/v1/csr", json={"csr": make_csr([host])}, headers=auth)
    assert again.status_code == 409 and "Replace certificate" in again.json()["detail"]
    replaced = client.post(
        "/api/v1/certificate/replace", json={"csr": make_csr([host]), "revoke_current": True}, headers=auth
    )
    assert replaced.status_code == 201, replaced.text
    assert replaced.json()["replaces_serial"] == first and replaced.json()["revoke_replaced"] is True
    assert client.post("/api/v1/certificate/accept", headers=auth).status_code == 200
    with api_ctx.sessions() as s:
        old = s.scalar(select(Certificate).where(Certificate.serial_hex == first))
        assert old is not None and old.status == "revoked" and old.revocation_reason == "superseded"


def test_operator_api_issues_only_with_evidence(api_ctx: Context, knot_dns: KnotDns) -> None:
    from ecert.core.profiles import SubjectData
    from ecert.services.registration import record_vetting

    client = client_for(api_ctx)
    vetting = record_vetting(
        api_ctx, SubjectData(organization="Operator Vetted Ltd"), source="BR 87654321", actor="test"
    )
    host = f"op{uuid.uuid4().hex[:8]}.example.net"
    body = {"csr": make_csr([host]), "profile": "server", "names": [host], "vetting_id": vetting}
    refused = client.post("/api/v1/operator/certificates", json=body, headers=OP)
    assert refused.status_code in (400, 422) and "BR 3.2.2.4" in refused.text
    with api_ctx.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Certificate)) == 0
        assert "issuance.refused" in s.scalars(select(AuditEvent.event)).all()
    hold_namespace(api_ctx, knot_dns, "example.net")
    issued = client.post("/api/v1/operator/certificates", json=body, headers=OP)
    assert issued.status_code == 201, issued.text
    assert issued.json()["names"] == [host] and "operator" in issued.json()["evidence"][host]


def test_concurrent_downloads_each_return_once_logged(api_ctx: Context, knot_dns: KnotDns) -> None:
    """16 downloads at once: every one that returned a certificate is in the audit chain (they share its
    commits, written by one writer thread), and the chain verifies."""
    client = client_for(api_ctx)
    auth = _held_session(client, knot_dns)
    assert client.post("/api/v1/csr", json={"csr": make_csr(["www.example.com"])}, headers=auth).status_code == 201
    client.post("/api/v1/certificate/accept", headers=auth)

    def fetch(_: int) -> int:
        return client.get("/api/v1/certificate/download", params={"format": "pem"}, headers=auth).status_code

    with ThreadPoolExecutor(max_workers=16) as pool:
        statuses = list(pool.map(fetch, range(16)))
    assert statuses == [200] * 16
    with api_ctx.sessions() as s:
        logged = s.scalars(select(AuditEvent).where(AuditEvent.event == "cert.downloaded")).all()
        assert audit.verify_chain(s).ok
    assert len(logged) == 16


def test_a_download_that_cannot_be_logged_hands_nothing_out(
    api_ctx: Context, knot_dns: KnotDns, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = client_for(api_ctx)
    auth = _held_session(client, knot_dns)
    assert client.post("/api/v1/csr", json={"csr": make_csr(["www.example.com"])}, headers=auth).status_code == 201
    client.post("/api/v1/certificate/accept", headers=auth)

    def refuse(session: object, entries: object) -> None:
        raise OperationalError("INSERT INTO audit_log", {}, Exception("disk full"))

    monkeypatch.setattr(audit, "append_many", refuse)
    answer = client.get("/api/v1/certificate/download", params={"format": "pem"}, headers=auth)
    assert answer.status_code == 503 and b"BEGIN CERTIFICATE" not in answer.content
