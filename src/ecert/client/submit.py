"""The whole portal journey (guide section C) through the CA's API, driven by a small UI interface.

``submit_request`` does the steps in order — log in, confirm the application, domain control
validation, CSR, show the certificate, accept or reject, download, complete — and asks the ``ui`` for
every decision, so the CLI prompts while tests answer from a script.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from ecert.client.api import ApiClient
from ecert.client.complete import Completion, complete_request
from ecert.client.errors import ClientError, StillPending
from ecert.client.store import LocalStore, PendingEntry, atomic_write
from ecert.core.errors import Conflict, PolicyViolation

__all__ = ["DcvOptions", "SubmitUI", "write_fileauth", "submit_request"]


# Application states in which the subscriber has already confirmed the details (guide section C step 3).
_CONFIRMED_STATES = frozenset(
    {"confirmed", "dcv_pending", "dcv_passed", "validated", "csr_submitted", "issued", "accepted"}
)


class SubmitUI(Protocol):
    """Everything ``submit_request`` needs from a person."""

    def show_application(self, app: dict[str, Any]) -> None: ...
    def choose_chinese(self, app: dict[str, Any]) -> bool: ...
    def show_dcv(self, started: dict[str, Any]) -> None: ...
    def wait_for_dns(self, started: dict[str, Any]) -> None: ...
    def ask_email_code(self) -> str: ...
    def progress(self, message: str) -> None: ...
    def accept_certificate(self, summary: dict[str, Any]) -> str | None:
        """Return None to accept, or a reason to reject."""
        ...


@dataclass(frozen=True)
class DcvOptions:
    """How to prove control: the method, and where or how to publish the proof."""

    method: str | None = None  # None: first method the CA offers, preferring http_file with a webroot
    webroot: Path | None = None
    webroots: Mapping[str, Path] = field(default_factory=dict)  # name -> its own web root
    dns_hook: Path | None = None
    email_local_part: str | None = None
    poll_seconds: float = 2.0
    max_wait_seconds: float = 120.0


def write_fileauth(
    webroot: Path | None, started: dict[str, Any], per_domain: Mapping[str, Path] | None = None
) -> list[Path]:
    """Write ``.well-known/pki-validation/<file>`` under each name's web root (BR 3.2.2.4.18).

    ``per_domain`` maps a name to its own web root; the others use ``webroot``. The CA gives one Random
    Value per application for this method (the same file for every name, given per name or once at the
    top of the answer), so one web root serving every name gets the file once. A CA that gives names
    different files cannot share a web root between them (the last write would win): refused before
    anything is written.
    """
    groups: dict[Path, list[dict[str, Any]]] = {}
    for d in _with_shared_file(started):
        root = (per_domain or {}).get(str(d.get("domain"))) or webroot
        if root is None:
            raise ClientError(f"no web root for {d.get('domain')}; add --webroot {d.get('domain')}=DIR")
        groups.setdefault(root, []).append(d)
    plan: list[tuple[Path, bytes]] = []
    for root, domains in groups.items():
        contents = {d.get("file_content") for d in domains}
        if len(contents) != 1 or None in contents:
            names = ", ".join(str(d.get("domain")) for d in domains)
            raise ClientError(
                f"{names} share the web root {root} but the CA gave each its own validation file; "
                "give each name its own with --webroot NAME=DIR"
            )
        content = str(contents.pop()).encode()
        for name in sorted({d.get("file_name") or "fileauth.txt" for d in domains}):
            if "/" in name or "\\" in name or name.startswith("."):
                raise ClientError(f"the CA asked for an unsafe file name {name!r}")
            plan.append((root / ".well-known" / "pki-validation" / name, content))
    for path, content in plan:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, content, mode=0o644, force=True)
    return [path for path, _ in plan]


def _with_shared_file(started: dict[str, Any]) -> list[dict[str, Any]]:
    """Each name's file entry, filling in the application-wide file name and content when given once."""
    shared = {k: started[k] for k in ("file_name", "file_content") if started.get(k) is not None}
    return [{**shared, **{k: v for k, v in d.items() if v is not None}} for d in started.get("domains", [])]


def _run_hook(hook: Path, started: dict[str, Any]) -> None:
    """Run the DNS hook once per record: ``HOOK add TXT_NAME TXT_VALUE``."""
    for d in started.get("domains", []):
        result = subprocess.run(
            [str(hook), "add", str(d.get("txt_name")), str(d.get("txt_value"))],  # noqa: S603
            capture_output=True,
            timeout=120,
        )
        if result.returncode != 0:
            raise ClientError(
                f"the DNS hook failed for {d.get('domain')}: {result.stderr.decode(errors='replace').strip()[-200:]}"
            )


def _pick_method(methods: list[dict[str, Any]], opts: DcvOptions) -> str:
    offered: list[str] = [m["method"] for m in methods]
    if opts.method:
        if opts.method not in offered:
            raise PolicyViolation(f"the CA does not offer {opts.method} for this application (offers {offered})")
        return opts.method
    for wanted, ok in (
        ("http_file", opts.webroot is not None or bool(opts.webroots)),
        ("dns_txt", True),
        ("email", True),
    ):
        if ok and wanted in offered:
            return wanted
    if not offered:
        raise ClientError("the CA offers no validation method for this application")
    return offered[0]


def submit_request(
    api: ApiClient,
    store: LocalStore,
    pending: PendingEntry,
    *,
    reference_number: str,
    pin: str,
    ui: SubmitUI,
    dcv: DcvOptions,
    now: Callable[[], datetime],
    sleep: Callable[[float], None] | None = None,
    server_name: str | None = None,
) -> Completion:
    """Run the portal journey for ``pending``; raises on refusal, StillPending if DCV does not pass in time.

    Each step is its own function, in the order of the guide's section C: log in and confirm, prove
    domain control, submit the CSR and accept, download and complete.
    """
    app = _log_in_and_confirm(api, pending, reference_number, pin, ui, server_name)
    if not app.get("is_government"):
        _prove_domain_control(api, ui, dcv, sleep or time.sleep)
    _submit_and_accept(api, pending, ui)
    return _download_and_complete(api, store, pending, ui, now)


def _log_in_and_confirm(
    api: ApiClient, pending: PendingEntry, reference_number: str, pin: str, ui: SubmitUI, server_name: str | None
) -> dict[str, Any]:
    """Steps 1-3: log in, show the application, confirm its details unless an earlier run did."""
    names = list(pending.meta.get("names") or [])
    login_name = server_name or str(pending.meta.get("common_name") or (names[0] if names else ""))
    ui.progress("Logging in")
    api.login(login_name, reference_number, pin)
    app = api.application()
    ui.show_application(app)
    if app.get("state") not in _CONFIRMED_STATES:
        try:
            app = api.confirm(use_chinese=ui.choose_chinese(app))
        except Conflict:  # confirmed in an earlier run: carry on
            app = api.application()
    return app


def _prove_domain_control(api: ApiClient, ui: SubmitUI, dcv: DcvOptions, sleep: Callable[[float], None]) -> None:
    """Step 4: start the chosen method, publish the proof, then ask the CA to check until it passes."""
    method = _pick_method(api.dcv_methods(), dcv)
    started = api.dcv_start(method, dcv.email_local_part)
    ui.show_dcv(started)
    email_code = _publish_proof(method, started, ui, dcv)
    _wait_for_dcv(api, ui, dcv, email_code, sleep)


def _publish_proof(method: str, started: dict[str, Any], ui: SubmitUI, dcv: DcvOptions) -> str | None:
    """Put the proof where the CA will look (web root, DNS hook or the person); the e-mailed code, if any."""
    if method == "http_file":
        if dcv.webroot is None and not dcv.webroots:
            raise ClientError("the website-file method needs --webroot DIR")
        for path in write_fileauth(dcv.webroot, started, dcv.webroots):
            ui.progress(f"Wrote {path}")
    elif method == "dns_txt":
        if dcv.dns_hook is not None:
            _run_hook(dcv.dns_hook, started)
        else:
            ui.wait_for_dns(started)
    elif method == "email":
        return ui.ask_email_code()
    return None


def _wait_for_dcv(
    api: ApiClient, ui: SubmitUI, dcv: DcvOptions, email_code: str | None, sleep: Callable[[float], None]
) -> None:
    """Ask the CA to check every ``poll_seconds`` until it passes; StillPending after ``max_wait_seconds``."""
    waited = 0.0
    while True:
        ui.progress("Checking domain control")
        result = api.dcv_check(email_code)
        if result.get("passed"):
            return
        if waited >= dcv.max_wait_seconds:
            failing = "; ".join(
                f"{d['domain']}: {d.get('reason')}" for d in result.get("domains", []) if not d.get("passed")
            )
            raise StillPending(f"domain control not confirmed yet ({failing}); run submit again later")
        sleep(dcv.poll_seconds)
        waited += dcv.poll_seconds


def _submit_and_accept(api: ApiClient, pending: PendingEntry, ui: SubmitUI) -> None:
    """Steps 5-6: submit the CSR, show the certificate, accept it or reject it with the person's reason."""
    ui.progress("Submitting the CSR")
    summary = api.submit_csr(pending.csr_pem.decode())
    reason = ui.accept_certificate(summary)
    if reason is not None:
        api.reject_certificate(reason)
        raise ClientError(f"certificate rejected: {reason}; the pending request is kept")
    api.accept()


def _download_and_complete(
    api: ApiClient, store: LocalStore, pending: PendingEntry, ui: SubmitUI, now: Callable[[], datetime]
) -> Completion:
    """Step 7: download the .p7b and the full chain beside the request, then complete from either."""
    ui.progress("Downloading")
    p7b = api.download("p7b")
    fullchain = api.download("fullchain")
    atomic_write(pending.path / "certificate.p7b", p7b, force=True)
    atomic_write(pending.path / "fullchain.pem", fullchain, force=True)
    try:
        return complete_request(store, p7b, now=now(), source="the downloaded .p7b")
    except ClientError:
        return complete_request(store, fullchain, now=now(), source="the downloaded full chain")
