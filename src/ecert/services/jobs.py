"""The status jobs: one pass that keeps CRLs, the ARL and OCSP responses fresh, and a thread that repeats it.

A pass is safe on several workers against one database: each publisher takes the issuer's lock and
re-checks whether its work is still due, so one worker signs and the others skip (publication.py).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from . import acme_challenges, audit_checkpoints, incidents, issuance, notices, publication, refusals, revocation
from .context import Context

__all__ = ["DEFAULT_INTERVAL_SECONDS", "JobReport", "Scheduler", "run_once", "submit"]

_log = logging.getLogger("ecert.jobs")

DEFAULT_INTERVAL_SECONDS = 60.0


@dataclass(frozen=True)
class JobReport:
    """What one pass did; ``errors`` name the step and CA that failed (the pass goes on past them)."""

    ca_revocations: tuple[str, ...] = ()
    crls: tuple[str, ...] = ()
    arl: bool = False
    ocsp_signed: dict[str, int] = field(default_factory=dict)
    errors: tuple[str, ...] = ()
    expiry_notices: tuple[str, ...] = ()  # serial@days sent this pass
    incident_revocations: tuple[str, ...] = ()  # serials revoked at an incident's deadline

    @property
    def ok(self) -> bool:
        return not self.errors


def run_once(ctx: Context) -> JobReport:
    """Settle abandoned issuances, apply due CA revocations, regenerate due CRLs and the ARL, renew
    responders, refresh due OCSP; revoke at incidents' deadlines and send subscriber mail that is due.

    Each step reports its failure in ``errors`` and the pass goes on, so one broken CA stalls nothing else.
    """
    errors: list[str] = []
    applied, arl = _hierarchy_jobs(ctx, errors)
    crls, signed = _issuer_jobs(ctx, errors)
    _refusals_left_out(ctx, errors)
    _audit_checkpoint(ctx, errors)
    sent, incident_revoked = _operator_jobs(ctx, errors)
    return JobReport(tuple(applied), tuple(crls), arl, signed, tuple(errors), sent, incident_revoked)


def _hierarchy_jobs(ctx: Context, errors: list[str]) -> tuple[list[str], bool]:
    """Abandoned issuances settled, scheduled CA revocations applied, the ARL signed if due."""
    applied: list[str] = []
    arl = False
    try:
        settled = issuance.settle_abandoned(ctx)
        if settled:
            _log.warning("settled %d abandoned issuance(s): %s", len(settled), ", ".join(settled))
    except Exception as exc:  # noqa: BLE001 - report and carry on with the other steps
        _log.exception("settling abandoned issuances failed")
        errors.append(f"abandoned-issuances: {type(exc).__name__}: {exc}")
    try:
        applied = revocation.apply_due_ca_revocations(ctx)
    except Exception as exc:  # noqa: BLE001 - report and carry on with the other steps
        _log.exception("applying scheduled CA revocations failed")
        errors.append(f"ca-revocations: {type(exc).__name__}: {exc}")
    try:
        arl = publication.publish_arl(ctx, only_if_due=True, wait=False) is not None
    except Exception as exc:  # noqa: BLE001
        _log.exception("ARL publication failed")
        errors.append(f"arl: {type(exc).__name__}: {exc}")
    return applied, arl


def _issuer_jobs(ctx: Context, errors: list[str]) -> tuple[list[str], dict[str, int]]:
    """For each issuing CA: its CRL if due, then its due OCSP responses (labels published, counts signed)."""
    crls: list[str] = []
    signed: dict[str, int] = {}
    for label in publication.issuing_cas(ctx):
        try:
            if publication.publish_crl(ctx, label, only_if_due=True, wait=False) is not None:
                crls.append(label)
        except Exception as exc:  # noqa: BLE001
            _log.exception("CRL publication for %s failed", label)
            errors.append(f"crl {label}: {type(exc).__name__}: {exc}")
        try:
            count = publication.refresh_ocsp(ctx, label, wait=False)
            if count > 0:
                signed[label] = count
        except Exception as exc:  # noqa: BLE001
            _log.exception("OCSP refresh for %s failed", label)
            errors.append(f"ocsp {label}: {type(exc).__name__}: {exc}")
    return crls, signed


def _refusals_left_out(ctx: Context, errors: list[str]) -> None:
    try:  # what the thinning of a refusal flood left out, counted in the chain once its window ends
        refusals.write_left_out(ctx)
    except Exception as exc:  # noqa: BLE001
        _log.exception("writing the count of refusals left out failed")
        errors.append(f"refusals-left-out: {type(exc).__name__}: {exc}")


def _audit_checkpoint(ctx: Context, errors: list[str]) -> None:
    try:  # BR 5.4.4: a signed checkpoint of the audit chain, kept outside the database
        audit_checkpoints.write_checkpoint(ctx)
    except Exception as exc:  # noqa: BLE001
        _log.exception("audit checkpoint failed")
        errors.append(f"audit-checkpoint: {type(exc).__name__}: {exc}")


def _operator_jobs(ctx: Context, errors: list[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Incidents (revocations due at a deadline, progress, subscriber mail), then expiry notices."""
    revoked: list[str] = []
    sent: tuple[str, ...] = ()
    try:
        revoked = incidents.revoke_due(ctx)
        incidents.track_open(ctx)
    except Exception as exc:  # noqa: BLE001 - report and carry on with the other steps
        _log.exception("incident jobs failed")
        errors.append(f"incidents: {type(exc).__name__}: {exc}")
    try:
        sent = notices.send_due_notices(ctx).sent
    except Exception as exc:  # noqa: BLE001
        _log.exception("expiry notices failed")
        errors.append(f"expiry-notices: {type(exc).__name__}: {exc}")
    try:  # RFC 8555 7.5.1: challenges whose worker stopped are validated again
        acme_challenges.retake_stale(ctx)
    except Exception as exc:  # noqa: BLE001
        _log.exception("ACME challenge retake failed")
        errors.append(f"acme-challenges: {type(exc).__name__}: {exc}")
    return sent, tuple(revoked)


_background: ThreadPoolExecutor | None = None
_background_lock = threading.Lock()


def submit(job: Callable[..., Any], *args: Any) -> Future[Any]:
    """Run ``job`` on this process's background workers (ACME validations: never inside a request).

    The pool is made on first use, not at import; a job that fails is logged, and work it left half-done
    in the database is picked up again by :func:`run_once` (e.g. ``acme_challenges.retake_stale``).
    """
    global _background
    with _background_lock:
        if _background is None:
            _background = ThreadPoolExecutor(max_workers=8, thread_name_prefix="ecert-job")
    future = _background.submit(job, *args)
    future.add_done_callback(_log_failure)
    return future


def _log_failure(future: Future[Any]) -> None:
    exc = future.exception()
    if exc is not None:
        _log.error("background job failed: %s: %s", type(exc).__name__, exc, exc_info=exc)


class Scheduler:
    """A daemon thread running :func:`run_once` every ``interval`` seconds until stopped.

    The first pass waits one interval, so a web process that starts and stops quickly (tests) never
    signs anything behind a test's back.
    """

    def __init__(self, ctx: Context, interval: float = DEFAULT_INTERVAL_SECONDS) -> None:
        self._ctx = ctx
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.passes = 0

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name="ecert-status-jobs", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                report = run_once(self._ctx)
                if report.errors:
                    _log.warning("status jobs: %s", "; ".join(report.errors))
            except Exception:  # noqa: BLE001 - a failing pass must not kill the thread
                _log.exception("status job pass failed")
            self.passes += 1
