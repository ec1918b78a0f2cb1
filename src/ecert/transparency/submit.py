"""Ask several logs at once for SCTs, keep only verified ones, fall back to further logs until the policy is met.

Parallel, so CT costs about the slowest chosen log's latency rather than the sum; the CA never trusts a log:
an SCT whose log ID or signature is wrong is discarded and another log is asked instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ..core.ct import (
    POISON_OID,
    CtLog,
    EntryType,
    LogList,
    SctFromLog,
    issuer_key_hash,
    parse_log_list,
    policy_met,
    precert_signed_entry,
    required_sct_count,
    tbs_without_extension,
    usable_logs,
    verify_sct,
)
from ..core.errors import ConfigError, EcertError
from ..settings import Settings
from .client import LogClient, RetryPolicy, new_http_client

__all__ = ["CtSubmitter", "LogResult", "Submission", "submitter_from_settings"]


@dataclass(frozen=True)
class LogResult:
    """What one log did with one submission (shown by `ecert-ca ct logs`)."""

    log: CtLog
    ok: bool
    error: str | None
    seconds: float


@dataclass(frozen=True)
class Submission:
    """Verified SCTs and every log's result; ``required`` is the policy count for this certificate."""

    scts: tuple[SctFromLog, ...]
    results: tuple[LogResult, ...]
    required: int
    candidates: int

    @property
    def met(self) -> bool:
        return policy_met(self.scts, self.required)


def _round_robin(logs: Sequence[CtLog]) -> list[CtLog]:
    """Interleave operators, so the first logs asked already come from distinct operators."""
    by_operator: dict[str, list[CtLog]] = {}
    for log in logs:
        by_operator.setdefault(log.operator, []).append(log)
    queues = list(by_operator.values())
    ordered: list[CtLog] = []
    while any(queues):
        for queue in queues:
            if queue:
                ordered.append(queue.pop(0))
    return ordered


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


class _Round:
    """The bookkeeping of one submission: what is running, what came back, what is left to try."""

    def __init__(self, candidates: list[CtLog], required: int) -> None:
        self.waiting = candidates
        self.required = required
        self.running: dict[Future[SctFromLog], CtLog] = {}
        self.found: list[SctFromLog] = []
        self.results: list[LogResult] = []

    def needs_more(self) -> bool:
        """Launch another log while the logs running or done could not meet the policy even if all succeed."""
        hoped = [f.log for f in self.found] + list(self.running.values())
        return len(hoped) < self.required or len({log.operator for log in hoped}) < 2

    def next_log(self) -> CtLog | None:
        if not self.waiting:
            return None
        operators = {f.log.operator for f in self.found} | {log.operator for log in self.running.values()}
        if len(operators) == 1:  # prefer a new operator when only one is represented so far
            for i, log in enumerate(self.waiting):
                if log.operator not in operators:
                    return self.waiting.pop(i)
        return self.waiting.pop(0)


class CtSubmitter:
    """The issuance pipeline's door to the logs: one per process, passed down in the context."""

    def __init__(
        self,
        log_list: LogList,
        client: LogClient,
        *,
        max_workers: int = 16,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.log_list = log_list
        self._client = client
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="ct-submit")
        self._clock = clock

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def submit_precertificate(
        self,
        precertificate: x509.Certificate,
        chain: Sequence[x509.Certificate],
        not_before: datetime,
        not_after: datetime,
    ) -> Submission:
        """Collect verified SCTs for ``precertificate`` (``chain``: its issuer first, up to the root).

        Returns as soon as the policy is met; when every usable log was tried without meeting it, returns
        the shortfall (``met`` is False) and the caller refuses to finish the certificate.
        """
        candidates = _round_robin(usable_logs(self.log_list, not_after))
        required = required_sct_count(not_before, not_after)
        issuer_spki = (
            chain[0]
            .public_key()
            .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        )
        entry = precert_signed_entry(
            issuer_key_hash(issuer_spki), tbs_without_extension(precertificate.tbs_certificate_bytes, POISON_OID)
        )
        chain_der = [_der(precertificate), *(_der(c) for c in chain)]
        state = _Round(list(candidates), required)
        self._run(state, lambda log: self._one(log, chain_der, entry))
        return Submission(
            scts=tuple(state.found), results=tuple(state.results), required=required, candidates=len(candidates)
        )

    def _run(self, state: _Round, ask: Callable[[CtLog], SctFromLog]) -> None:
        started: dict[Future[SctFromLog], float] = {}
        while True:
            while state.needs_more() and (log := state.next_log()) is not None:
                future = self._pool.submit(ask, log)
                state.running[future] = log
                started[future] = self._clock()
            if not state.running or policy_met(state.found, state.required):
                return
            done, _ = wait(list(state.running), return_when=FIRST_COMPLETED)
            for future in done:
                self._settle(state, future, self._clock() - started.pop(future))

    @staticmethod
    def _settle(state: _Round, future: Future[SctFromLog], seconds: float) -> None:
        log = state.running.pop(future)
        try:
            found = future.result()
        except EcertError as exc:
            state.results.append(LogResult(log=log, ok=False, error=str(exc), seconds=seconds))
            return
        except Exception as exc:  # noqa: BLE001 - one log's surprise must not end the others' submissions
            state.results.append(LogResult(log=log, ok=False, error=f"{type(exc).__name__}: {exc}", seconds=seconds))
            return
        state.found.append(found)
        state.results.append(LogResult(log=log, ok=True, error=None, seconds=seconds))

    def _one(self, log: CtLog, chain_der: list[bytes], entry: bytes) -> SctFromLog:
        """Ask one log and verify its SCT against the key and log ID the log list names (RFC 6962 3.2)."""
        sct = self._client.add_pre_chain(log, chain_der)
        verify_sct(sct, log_key_der=log.key_der, entry_type=EntryType.PRECERT, signed_entry=entry)
        return SctFromLog(sct=sct, log=log)


def load_log_list(path: Path) -> LogList:
    try:
        return parse_log_list(path.read_bytes())
    except OSError as exc:
        raise ConfigError(f"cannot read the CT log list {path}: {exc.strerror}", value=str(path)) from None


def submitter_from_settings(settings: Settings) -> CtSubmitter | None:
    """The submitter the settings ask for; None when CT is switched off (the demo)."""
    if not settings.ct_enabled:
        return None
    if settings.ct_log_list is None:
        raise ConfigError("CT is on but no log list is configured: set ECERT_CT_LOG_LIST", value=None)
    retry = RetryPolicy(timeout=settings.ct_timeout_seconds, attempts=settings.ct_attempts)
    return CtSubmitter(load_log_list(settings.ct_log_list), LogClient(new_http_client(retry.timeout), retry))
