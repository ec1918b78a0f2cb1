"""Certificate Transparency as a browser would judge it: the served certificate's embedded SCTs against a log list.

The subscriber wants to know, before Chrome or Safari tell their users, whether a certificate carries enough
valid Signed Certificate Timestamps. Nothing here trusts the certificate's own claims: each embedded SCT is
verified against the key of the log it names (``core.ct.verify_sct``) over the precertificate entry rebuilt
from the certificate (RFC 6962 3.2: the TBS without the SCT list, and the issuer's key hash). An SCT that does
not verify, names a log the list does not know, or comes from a log the browsers no longer accept is reported
with its reason and not counted. Then two policies are applied to the SCTs that count, each on its own line:

* Chrome (GoogleChrome/CertificateTransparency ``ct_policy.md``, embedded SCTs): SCTs from at least 2 distinct
  logs for a lifetime of at most 180 days, 3 above; from at least 2 distinct log operators; a log counts if it is
  qualified, usable or read-only now, or retired after the SCT was issued; at least one from a log that is not
  retired.
* Apple (support.apple.com/103214, embedded SCTs): lifetime counted as RFC 5280 does (notBefore through notAfter
  inclusive, any part of a day a whole day); 180 days or less: 2 SCTs from distinct logs, at most 1 per operator
  counts; 181 to 398 days: 3, at most 2 per operator count; above 398 days never met. Logs count as for Chrome
  (currently or once approved); at least one from a currently approved log.

SCTs delivered in the TLS handshake or a stapled OCSP response are not looked at: ecert's certificates embed
theirs, and that is what the CA can be held to.
"""

from __future__ import annotations

import base64
import enum
import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtensionOID

from ecert.client.errors import ClientError
from ecert.core import ct
from ecert.core.errors import EcertError

__all__ = [
    "NO_LOG_LIST",
    "ClientLogList",
    "CtReport",
    "PolicyResult",
    "SctFinding",
    "SctStatus",
    "apple_policy",
    "check_ct",
    "chrome_policy",
    "embedded_scts",
    "load_log_list",
    "not_checked",
]

NO_LOG_LIST = "CT not checked: no log list given"

# Log states (log_list.json v3) whose SCTs count whatever their time; "retired" counts only SCTs issued before it.
_APPROVED = frozenset({"qualified", "usable", "readonly"})
_RETIRED = "retired"


class SctStatus(enum.StrEnum):
    """What became of one embedded SCT."""

    VALID = "valid"
    BAD_SIGNATURE = "invalid"  # the log's key does not verify it, or it names another log ID
    UNKNOWN_LOG = "unknown log"  # the log list has no log with this ID
    LOG_NOT_ACCEPTED = "log not accepted"  # pending, rejected, or retired before the SCT
    UNVERIFIABLE = "unverifiable"  # no issuer certificate to rebuild what the log signed
    FUTURE = "in the future"  # the timestamp is after the time of check


@dataclass(frozen=True)
class ClientLogList:
    """A log list as the client reads it: the logs, and when each entered its current state."""

    logs: ct.LogList
    state_since: dict[bytes, datetime | None]
    source: str

    def find(self, log_id: bytes) -> ct.CtLog | None:
        return self.logs.by_id(log_id)


@dataclass(frozen=True)
class SctFinding:
    """One embedded SCT: its log (if known), its time, and whether it counts towards the policies."""

    log_id: str
    log_name: str | None
    operator: str | None
    log_state: str | None
    time: datetime
    status: SctStatus
    detail: str | None = None

    @property
    def counts(self) -> bool:
        return self.status is SctStatus.VALID

    def line(self) -> str:
        """``SCT from LOG (OPERATOR, STATE), TIME UTC: VERDICT``; an unknown log by its base64 ID."""
        who = f"{self.log_name} ({self.operator}, {self.log_state})" if self.log_name else f"log ID {self.log_id}"
        verdict = self.status.value + (f": {self.detail}" if self.detail else "")
        return f"SCT from {who}, {self.time:%Y-%m-%d %H:%M:%S} UTC: {verdict}"

    def to_json(self) -> dict[str, Any]:
        return {
            "log_id": self.log_id,
            "log": self.log_name,
            "operator": self.operator,
            "log_state": self.log_state,
            "time": self.time.isoformat(),
            "status": self.status.value,
            "detail": self.detail,
            "counts": self.counts,
        }


@dataclass(frozen=True)
class PolicyResult:
    """One browser's verdict, in the words the report prints."""

    policy: str
    met: bool
    why: str

    def line(self) -> str:
        return f"{self.policy}: {'met' if self.met else 'not met'} ({self.why})"

    def to_json(self) -> dict[str, Any]:
        return {"met": self.met, "why": self.why}


@dataclass(frozen=True)
class CtReport:
    """Everything ``ecert verify`` and ``ecert check`` say about Certificate Transparency."""

    checked: bool
    note: str | None = None
    log_list: str | None = None
    scts: tuple[SctFinding, ...] = ()
    chrome: PolicyResult | None = None
    apple: PolicyResult | None = None

    @property
    def met(self) -> bool:
        """Both policies met; False when nothing was checked (``--require-ct`` treats that as a failure)."""
        return self.checked and all(p is not None and p.met for p in (self.chrome, self.apple))

    def lines(self) -> list[str]:
        if not self.checked:
            return [self.note or NO_LOG_LIST]
        found = [s.line() for s in self.scts] or ["the certificate carries no embedded SCT"]
        return [*found, *(p.line() for p in (self.chrome, self.apple) if p is not None)]

    def to_json(self) -> dict[str, Any]:
        return {
            "checked": self.checked,
            "note": self.note,
            "log_list": self.log_list,
            "scts": [s.to_json() for s in self.scts],
            "chrome": self.chrome.to_json() if self.chrome else None,
            "apple": self.apple.to_json() if self.apple else None,
            "met": self.met,
        }


def not_checked(note: str = NO_LOG_LIST) -> CtReport:
    return CtReport(checked=False, note=note)


# --- the log list ------------------------------------------------------------------------------------------


def _state_since(text: str) -> dict[bytes, datetime | None]:
    """When each log entered its current state (the ``timestamp`` inside ``state``), by log ID."""
    since: dict[bytes, datetime | None] = {}
    for operator in json.loads(text)["operators"]:
        for log in operator.get("logs", ()):
            state = next(iter((log.get("state") or {}).values()), None) or {}
            stamp = state.get("timestamp")
            when = datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone(UTC) if stamp else None
            since[base64.b64decode(log["log_id"])] = when
    return since


def load_log_list(path: Path) -> ClientLogList:
    """Read Chrome's ``log_list.json`` v3; a file that is not one is refused with the reason."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ClientError(f"cannot read the CT log list {path}: {exc}") from exc
    try:
        logs = ct.parse_log_list(text)
        since = _state_since(text)
    except EcertError as exc:
        raise ClientError(f"{path} is not a usable CT log list: {exc}") from exc
    except (KeyError, TypeError, ValueError) as exc:
        raise ClientError(f"{path} is not a usable CT log list (log_list.json v3): {exc}") from exc
    return ClientLogList(logs=logs, state_since=since, source=str(path))


# --- the SCTs a certificate carries ------------------------------------------------------------------------


def embedded_scts(cert: x509.Certificate) -> tuple[ct.SignedCertificateTimestamp, ...]:
    """The SCTs in the certificate's SCT list extension (RFC 6962 3.3); none if it has no such extension."""
    try:
        ext = cert.extensions.get_extension_for_oid(ExtensionOID.PRECERT_SIGNED_CERTIFICATE_TIMESTAMPS)
    except x509.ExtensionNotFound:
        return ()
    value = ext.value
    raw = value.value if isinstance(value, x509.UnrecognizedExtension) else value.public_bytes()
    try:
        return ct.sct_list_from_extension_value(raw)
    except (EcertError, ValueError) as exc:
        raise ClientError(f"the certificate's SCT list cannot be read: {exc}") from exc


def _signed_entry(leaf: x509.Certificate, issuer: x509.Certificate) -> bytes:
    """What a log signed for the precertificate of ``leaf`` (RFC 6962 3.2): issuer key hash and the TBS
    without the SCT list, which is the precertificate's TBS without its poison."""
    spki = issuer.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    tbs = ct.tbs_without_extension(leaf.tbs_certificate_bytes, ct.SCT_LIST_OID)
    return ct.precert_signed_entry(ct.issuer_key_hash(spki), tbs)


def _log_accepts(log: ct.CtLog, since: datetime | None, sct_time: datetime) -> str | None:
    """Why the browsers would not count an SCT of ``log`` issued at ``sct_time``; None when they would.

    Chrome ct_policy.md and Apple 103214: qualified, usable and read-only logs count ("currently approved");
    a retired log counts for SCTs issued before its retirement ("once approved"); pending and rejected never.
    """
    if log.state in _APPROVED:
        return None
    if log.state == _RETIRED and since is not None and sct_time < since:
        return None
    if log.state == _RETIRED:
        return f"the log retired on {since:%Y-%m-%d}, before this SCT" if since else "the log is retired"
    return f"the log is {log.state}"


def _judge(
    sct: ct.SignedCertificateTimestamp, signed_entry: bytes | None, logs: ClientLogList, now: datetime
) -> SctFinding:
    log = logs.find(sct.log_id)
    log_id = base64.b64encode(sct.log_id).decode()
    if log is None:
        return SctFinding(log_id, None, None, None, sct.time, SctStatus.UNKNOWN_LOG)
    status, detail = _verdict(sct, log, signed_entry, logs.state_since.get(log.log_id), now)
    return SctFinding(log_id, log.description, log.operator, log.state, sct.time, status, detail)


def _verdict(
    sct: ct.SignedCertificateTimestamp, log: ct.CtLog, signed_entry: bytes | None, since: datetime | None, now: datetime
) -> tuple[SctStatus, str | None]:
    """Checks in the order a browser makes them: signature (RFC 6962 3.2), time, the log's state."""
    if signed_entry is None:
        return SctStatus.UNVERIFIABLE, "the issuing CA certificate is unknown"
    try:
        ct.verify_sct(sct, log_key_der=log.key_der, entry_type=ct.EntryType.PRECERT, signed_entry=signed_entry)
    except EcertError as exc:
        return SctStatus.BAD_SIGNATURE, exc.message
    if sct.time > now:
        return SctStatus.FUTURE, "a log never dates an SCT ahead"
    refused = _log_accepts(log, since, sct.time)
    if refused is not None:
        return SctStatus.LOG_NOT_ACCEPTED, refused
    return SctStatus.VALID, None


# --- the two policies --------------------------------------------------------------------------------------


def _currently_approved(found: Sequence[SctFinding]) -> bool:
    return any(f.log_state in _APPROVED for f in found)


def chrome_policy(found: Sequence[SctFinding], not_before: datetime, not_after: datetime) -> PolicyResult:
    """Chrome ct_policy.md (embedded SCTs): 2 distinct logs up to 180 days of lifetime, 3 above; 2 operators;
    one log not retired."""
    counted = [f for f in found if f.counts]
    # Chrome: lifetime is notAfter - notBefore; "<= 180 days" needs 2 SCTs, more needs 3.
    required = 2 if not_after - not_before <= timedelta(days=180) else 3
    logs, operators = {f.log_id for f in counted}, {f.operator for f in counted}
    why = (
        f"{len(logs)} valid SCT(s) from distinct logs, {len(operators)} operator(s); "
        f"needs {required} logs and 2 operators"
    )
    if len(logs) < required:
        return PolicyResult("Chrome CT policy", False, f"too few SCTs: {why}")
    if len(operators) < 2:
        return PolicyResult("Chrome CT policy", False, f"one log operator only: {why}")
    if not _currently_approved(counted):
        return PolicyResult("Chrome CT policy", False, f"every SCT is from a retired log: {why}")
    return PolicyResult("Chrome CT policy", True, why)


def apple_lifetime_days(not_before: datetime, not_after: datetime) -> int:
    """Apple 103214 / RFC 5280 4.1.2.5: notBefore through notAfter inclusive, a started day counts whole."""
    seconds = (not_after - not_before).total_seconds() + 1
    return math.ceil(seconds / 86400)


def apple_policy(found: Sequence[SctFinding], not_before: datetime, not_after: datetime) -> PolicyResult:
    """Apple 103214 (embedded SCTs): by lifetime, SCTs from distinct logs with a cap per operator."""
    days = apple_lifetime_days(not_before, not_after)
    if days > 398:
        return PolicyResult("Apple CT policy", False, f"a lifetime of {days} days is above Apple's 398")
    # Apple 103214 table: <= 180 days: 2 SCTs, at most 1 per operator; 181-398 days: 3, at most 2 per operator.
    required, per_operator = (2, 1) if days <= 180 else (3, 2)
    counted = list({f.log_id: f for f in found if f.counts}.values())  # distinct logs
    per = Counter(f.operator for f in counted)
    usable = sum(min(n, per_operator) for n in per.values())
    why = (
        f"{usable} SCT(s) count from {len(counted)} valid, {len(per)} operator(s); "
        f"{days} days needs {required}, at most {per_operator} per operator"
    )
    if usable < required:
        return PolicyResult("Apple CT policy", False, f"too few SCTs: {why}")
    if not _currently_approved(counted):
        return PolicyResult("Apple CT policy", False, f"no SCT from a currently approved log: {why}")
    return PolicyResult("Apple CT policy", True, why)


def check_ct(
    leaf: x509.Certificate, issuer: x509.Certificate | None, logs: ClientLogList | None, *, now: datetime
) -> CtReport:
    """Verify each embedded SCT against ``logs`` and apply both policies; ``logs`` None: not checked."""
    if logs is None:
        return not_checked()
    scts = embedded_scts(leaf)
    entry = _signed_entry(leaf, issuer) if issuer is not None and scts else None
    found = tuple(_judge(sct, entry, logs, now) for sct in scts)
    not_before, not_after = leaf.not_valid_before_utc, leaf.not_valid_after_utc
    return CtReport(
        checked=True,
        log_list=logs.source,
        scts=found,
        chrome=chrome_policy(found, not_before, not_after),
        apple=apple_policy(found, not_before, not_after),
    )
