"""`ecert request submit` against a scripted CA API (httpx MockTransport): refusals and polling in one command.

The journey against the real CA (uvicorn, Knot DNS, a web root, an SMTP sink) is in test_client_real_ca.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs7

import ecert.cli.subscriber as cli
from tests.integration.test_client_cli import HOST, run
from tests.unit.test_client_pki import TestPKI


class FakeCA:
    """Answers the /api/v1 contract; records every request body so tests can look for the PIN."""

    def __init__(self, pki: TestPKI, *, dcv_passes_after: int = 1) -> None:
        self.pki, self.bodies, self.checks, self.passes_after = pki, [], 0, dcv_passes_after
        self.cert: x509.Certificate | None = None
        self.accepted = False
        self.deps = cli.ClientDeps()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path, body = request.url.path, (json.loads(request.content) if request.content else {})
        self.bodies.append((path, body))
        if path != "/api/v1/sessions" and request.headers.get("authorization") != "Bearer tok":
            return httpx.Response(401, json={"type": "about:blank", "title": "Unauthorized", "status": 401})
        route = self._routes().get(path)
        if route is None:
            return httpx.Response(404, json={"title": "Not Found", "status": 404})
        return route(request, body)

    def _routes(self) -> dict[str, Callable[[httpx.Request, dict[str, Any]], httpx.Response]]:
        return {
            "/api/v1/sessions": self._sessions,
            "/api/v1/application": self._application,
            "/api/v1/application/confirm": self._confirm,
            "/api/v1/dcv/methods": self._dcv_methods,
            "/api/v1/dcv/start": self._dcv_start,
            "/api/v1/dcv/check": self._dcv_check,
            "/api/v1/csr": self._csr,
            "/api/v1/certificate/accept": self._accept,
            "/api/v1/certificate/download": self._download,
        }

    def _sessions(self, request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        if body.get("pin") != "123456":
            return httpx.Response(
                401,
                json={
                    "type": "urn:x:login",
                    "title": "Login failed",
                    "status": 401,
                    "detail": "reference number or PIN is wrong",
                },
            )
        return httpx.Response(201, json={"token": "tok", "expires_at": "2030-01-01T00:00:00Z"})

    def _application(self, request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        return httpx.Response(
            200,
            json={
                "reference_number": "0003294413",
                "server_name": HOST,
                "additional_names": [],
                "org_name_en": "Test Ltd",
                "state": "submitted",
                "is_government": False,
            },
        )

    def _confirm(self, request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        return httpx.Response(200, json={"state": "confirmed", "is_government": False})

    def _dcv_methods(self, request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        return httpx.Response(
            200,
            json=[
                {"method": "http_file", "label": "Website", "warning": None},
                {"method": "dns_txt", "label": "DNS", "warning": None},
            ],
        )

    def _dcv_start(self, request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        return httpx.Response(
            200,
            json={
                "method": body["method"],
                "domains": [
                    {
                        "domain": HOST,
                        "code": "rv-abc",
                        "file_name": "fileauth.txt",
                        "file_content": "rv-abc",
                        "file_url": f"http://{HOST}/.well-known/pki-validation/fileauth.txt",
                    }
                ],
            },
        )

    def _dcv_check(self, request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        self.checks += 1
        ok = self.checks >= self.passes_after
        return httpx.Response(
            200,
            json={
                "passed": ok,
                "domains": [{"domain": HOST, "passed": ok, "reason": None if ok else "file not found"}],
            },
        )

    def _csr(self, request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        csr = x509.load_pem_x509_csr(body["csr"].encode())
        self.cert = self.pki.issue(csr, [HOST])
        return httpx.Response(
            200,
            json={
                "serial_hex": format(self.cert.serial_number, "x"),
                "serial_spaced": "01 02",
                "issuer": "Test e-Cert SSL CA 3 - 17",
                "not_before": "x",
                "not_after": "y",
                "validity_days": 199,
                "names": [HOST],
                "type": "DV",
                "state": "issued",
            },
        )

    def _accept(self, request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        self.accepted = True
        return httpx.Response(204)

    def _download(self, request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        assert self.cert is not None and self.accepted
        if request.url.params["format"] == "p7b":
            return httpx.Response(
                200,
                content=pkcs7.serialize_certificates([self.cert, self.pki.sub], serialization.Encoding.DER),
            )
        return httpx.Response(200, content=self.pki.pem(self.cert, self.pki.sub))


@pytest.fixture
def fake(monkeypatch) -> FakeCA:
    ca = FakeCA(TestPKI(start=datetime.now(UTC)), dcv_passes_after=2)
    ca.deps = cli.ClientDeps(transport=httpx.MockTransport(ca))  # the same seam main() uses
    monkeypatch.setattr("ecert.cli.client_shared.stdin_is_terminal", lambda: True)  # CliRunner's input types the PIN
    monkeypatch.setattr("ecert.client.submit.time.sleep", lambda s: None)
    return ca


def test_submit_runs_the_journey_with_webroot_and_completes(tmp_path: Path, fake: FakeCA) -> None:
    store, webroot = tmp_path / "s", tmp_path / "www"
    assert run(store, "request", "new", "web", "--name", HOST, "--key-type", "p256", "--no-encrypt").exit_code == 0
    r = run(
        store,
        "request",
        "submit",
        "web",
        "--reference",
        "0003294413",
        "--ca-url",
        "http://ca.test",
        "--webroot",
        str(webroot),
        "--yes",
        obj=fake.deps,
        input="123456\n",
    )
    assert r.exit_code == 0, r.output
    assert (webroot / ".well-known/pki-validation/fileauth.txt").read_text() == "rv-abc"
    assert (store / "live/web/cert.pem").exists() and not (store / "pending/web").exists()
    assert fake.checks == 2  # polled until DCV passed
    assert "123456" not in r.output  # the PIN is never echoed
    assert not any("123456" in p.read_text(errors="ignore") for p in store.rglob("*") if p.is_file())


def test_submit_with_wrong_pin_fails_with_the_ca_problem_detail(tmp_path: Path, fake: FakeCA) -> None:
    store = tmp_path / "s"
    run(store, "request", "new", "web", "--name", HOST, "--key-type", "p256", "--no-encrypt")
    r = run(
        store,
        "request",
        "submit",
        "web",
        "--reference",
        "1",
        "--ca-url",
        "http://ca.test",
        "--webroot",
        str(tmp_path / "w"),
        "--yes",
        obj=fake.deps,
        input="000000\n",
    )
    assert r.exit_code == 1
    assert "PIN is wrong" in r.output
    assert (store / "pending/web").exists()


def test_submit_that_never_passes_dcv_exits_3(tmp_path: Path, fake: FakeCA) -> None:
    fake.passes_after = 10**6
    store = tmp_path / "s"
    run(store, "request", "new", "web", "--name", HOST, "--key-type", "p256", "--no-encrypt")
    r = run(
        store,
        "request",
        "submit",
        "web",
        "--reference",
        "1",
        "--ca-url",
        "http://ca.test",
        "--webroot",
        str(tmp_path / "w"),
        "--max-wait",
        "4",
        "--yes",
        obj=fake.deps,
        input="123456\n",
    )
    assert r.exit_code == 3
    assert "file not found" in r.output


def _started(*domains: tuple[str, str]) -> dict:
    return {
        "method": "http_file",
        "domains": [{"domain": d, "file_name": "fileauth.txt", "file_content": c} for d, c in domains],
    }


def test_fileauth_goes_under_each_names_own_web_root(tmp_path: Path) -> None:
    from ecert.client.submit import write_fileauth

    a, b = tmp_path / "a", tmp_path / "b"
    written = write_fileauth(a, _started(("www.example.com", "rv-1"), ("example.com", "rv-2")), {"example.com": b})
    assert sorted(written) == sorted(
        [a / ".well-known/pki-validation/fileauth.txt", b / ".well-known/pki-validation/fileauth.txt"]
    )
    assert (a / ".well-known/pki-validation/fileauth.txt").read_text() == "rv-1"
    assert (b / ".well-known/pki-validation/fileauth.txt").read_text() == "rv-2"


@pytest.mark.parametrize(
    ("started", "per_domain", "message"),
    [
        (_started(("www.example.com", "rv-1"), ("example.com", "rv-2")), {}, "share the web root"),
        (_started(("www.example.com", "rv-1")), None, "no web root for www.example.com"),
    ],
    ids=["two-codes-one-root", "no-root"],
)
def test_fileauth_refusals_write_nothing(tmp_path: Path, started: dict, per_domain, message: str) -> None:
    from ecert.client.errors import ClientError
    from ecert.client.submit import write_fileauth

    root = tmp_path / "www" if per_domain is not None else None
    with pytest.raises(ClientError, match=message):
        write_fileauth(root, started, per_domain)
    assert not any(tmp_path.rglob("fileauth.txt"))


@pytest.mark.parametrize(
    "started",
    [
        _started(("www.shop.hk", "rv-app"), ("shop.hk", "rv-app")),
        {"method": "http_file", "file_name": "fileauth.txt", "file_content": "rv-app",
         "domains": [{"domain": "www.shop.hk"}, {"domain": "shop.hk"}]},
    ],
    ids=["per-name-same-code", "one-code-for-the-application"],
)  # fmt: skip
def test_one_webroot_serves_every_name_with_one_file(tmp_path: Path, started: dict) -> None:
    """Issue 10 point 9: one code per application, so `--webroot DIR` writes one file for every name."""
    from ecert.client.submit import write_fileauth

    www = tmp_path / "www"
    assert write_fileauth(www, started) == [www / ".well-known/pki-validation/fileauth.txt"]
    assert (www / ".well-known/pki-validation/fileauth.txt").read_text() == "rv-app"
    assert [p.name for p in www.rglob("*") if p.is_file()] == ["fileauth.txt"]


def test_webroot_for_one_name_still_goes_to_that_name(tmp_path: Path) -> None:
    from ecert.client.submit import write_fileauth

    a, b = tmp_path / "a", tmp_path / "b"
    started = {"method": "http_file", "file_name": "fileauth.txt", "file_content": "rv-app",
               "domains": [{"domain": "www.shop.hk"}, {"domain": "shop.hk"}]}  # fmt: skip
    written = write_fileauth(a, started, {"shop.hk": b})
    assert sorted(written) == sorted([a / ".well-known/pki-validation/fileauth.txt",
                                      b / ".well-known/pki-validation/fileauth.txt"])  # fmt: skip
    assert (b / ".well-known/pki-validation/fileauth.txt").read_text() == "rv-app"
