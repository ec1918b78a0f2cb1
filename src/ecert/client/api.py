"""A small client for the CA's REST API (/api/v1): bearer token in, RFC 9457 problems out as errors.

The transport is injected (an ``httpx.MockTransport`` in tests); the PIN passes through ``login`` only
and is never kept on the object.
"""

from __future__ import annotations

from typing import Any

import httpx

from ecert.client.errors import ClientError, StillPending
from ecert.core.errors import Conflict, EcertError, Forbidden, NotFound, RateLimited, Unauthorized

__all__ = ["ApiClient", "ApiProblem"]


class ApiProblem(EcertError):
    """The CA refused a request; ``type`` and ``status`` are copied from its problem document."""

    code = "api"

    def __init__(self, message: str, *, type_: str, status: int) -> None:
        super().__init__(message)
        self.type = type_
        self.status = status


_BY_STATUS: dict[int, type[EcertError]] = {
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    429: RateLimited,
}


class ApiClient:
    """One session with the CA's API for one application."""

    def __init__(self, base_url: str, *, transport: httpx.BaseTransport | None = None, timeout: float = 30.0) -> None:
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            transport=transport,
            timeout=timeout,
            trust_env=False,
            follow_redirects=False,
        )
        self._token: str | None = None

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing ------------------------------------------------------------------------------
    def _request(self, method: str, path: str, json: Any = None, params: Any = None) -> httpx.Response:
        headers = {"Accept": "application/json, application/problem+json"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        try:
            resp = self._http.request(method, f"/api/v1{path}", json=json, params=params, headers=headers)
        except httpx.HTTPError as exc:
            raise ClientError(f"cannot reach the CA at {self._http.base_url}: {exc}") from exc
        if resp.status_code >= 400:
            raise self._problem(resp)
        return resp

    @staticmethod
    def _problem(resp: httpx.Response) -> EcertError:
        """RFC 9457: show title and detail; map well-known statuses onto our error family."""
        try:
            body = resp.json()
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        title = body.get("title") or resp.reason_phrase or "error"
        detail = body.get("detail")
        message = f"the CA said: {title}" + (f" — {detail}" if detail else "") + f" (HTTP {resp.status_code})"
        cls = _BY_STATUS.get(resp.status_code)
        if cls is not None:
            return cls(message)
        return ApiProblem(message, type_=str(body.get("type", "about:blank")), status=resp.status_code)

    def _json(self, method: str, path: str, json: Any = None) -> Any:
        resp = self._request(method, path, json=json)
        return resp.json() if resp.content else None

    # -- the journey ---------------------------------------------------------------------------
    def login(self, server_name: str, reference_number: str, pin: str) -> None:
        """Open a session; the PIN goes into this one request body and is not kept."""
        data = self._json(
            "POST",
            "/sessions",
            {"server_name": server_name, "reference_number": reference_number, "pin": pin},
        )
        self._token = str(data["token"])

    def application(self) -> dict[str, Any]:
        return dict(self._json("GET", "/application"))

    def confirm(self, *, use_chinese: bool) -> dict[str, Any]:
        return dict(self._json("POST", "/application/confirm", {"use_chinese": use_chinese}))

    def reject_application(self, reason: str) -> None:
        self._json("POST", "/application/reject", {"reason": reason})

    def dcv_methods(self) -> list[dict[str, Any]]:
        return list(self._json("GET", "/dcv/methods"))

    def dcv_start(self, method: str, email_local_part: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"method": method}
        if email_local_part:
            body["email_local_part"] = email_local_part
        return dict(self._json("POST", "/dcv/start", body))

    def dcv_check(self, email_code: str | None = None) -> dict[str, Any]:
        body = {"email_code": email_code} if email_code else {}
        return dict(self._json("POST", "/dcv/check", body))

    def submit_csr(self, csr_pem: str) -> dict[str, Any]:
        return dict(self._json("POST", "/csr", {"csr": csr_pem}))

    def certificate(self) -> dict[str, Any]:
        return dict(self._json("GET", "/certificate"))

    def accept(self) -> None:
        self._json("POST", "/certificate/accept")

    def reject_certificate(self, reason: str) -> None:
        self._json("POST", "/certificate/reject", {"reason": reason})

    def download(self, fmt: str) -> bytes:
        if fmt not in ("pem", "der", "p7b", "fullchain"):
            raise ClientError(f"unknown download format {fmt!r}")
        resp = self._request("GET", "/certificate/download", params={"format": fmt})
        if not resp.content:
            raise StillPending("the CA has no certificate to download yet")
        return resp.content
