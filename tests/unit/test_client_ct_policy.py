"""What `ecert verify` and `ecert check` say about a certificate's embedded SCTs, for Chrome's and Apple's policies.

No network: the "logs" here are keys that sign SCTs exactly as an RFC 6962 log does, over the precertificate
entry of a certificate built with cryptography. The integration test (test_ct_shown.py) uses real test logs.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from tests.ct_log.pki import NOW, MiniCa
from tests.ct_log.server import log_list_json

from ecert.client.ct_policy import (
    NO_LOG_LIST,
    SctStatus,
    apple_lifetime_days,
    check_ct,
    embedded_scts,
    load_log_list,
)
from ecert.client.errors import ClientError
from ecert.core import ct

CHECKED_AT = NOW + timedelta(hours=1)


@dataclass
class Log:
    """A log's key and list entry; ``sign`` makes the SCT that log would return for a precertificate."""

    name: str
    operator: str
    state: str = "usable"
    since: str = "2020-01-01T00:00:00Z"

    def __post_init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.der = self.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def entry(self) -> dict[str, object]:
        return {
            "description": self.name,
            "log_id": base64.b64encode(ct.log_id_of(self.der)).decode(),
            "key": base64.b64encode(self.der).decode(),
            "url": f"https://{self.name}.invalid/",
            "mmd": 86400,
            "state": {self.state: {"timestamp": self.since}},
        }

    def sign(self, precert: x509.Certificate, issuer: x509.Certificate, *, at: datetime = NOW, tamper: bool = False):  # type: ignore[no-untyped-def]
        spki = issuer.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        entry = ct.precert_signed_entry(
            ct.issuer_key_hash(spki), ct.tbs_without_extension(precert.tbs_certificate_bytes, ct.POISON_OID)
        )
        ts = int(at.timestamp() * 1000)
        unsigned = ct.SignedCertificateTimestamp(ct.log_id_of(self.der), ts, b"", 4, 3, b"")
        sig = self.key.sign(ct.sct_signature_input(unsigned, ct.EntryType.PRECERT, entry), ec.ECDSA(hashes.SHA256()))
        if tamper:
            sig = self.key.sign(b"something else", ec.ECDSA(hashes.SHA256()))
        return ct.SignedCertificateTimestamp(ct.log_id_of(self.der), ts, b"", 4, 3, sig)


def _log_list(tmp_path: Path, logs: list[Log]) -> Path:
    path = tmp_path / "log_list.json"
    path.write_text(log_list_json([(log.operator, log.entry()) for log in logs]))
    return path


def _certificate(ca: MiniCa, signers: list[Log], *, days: int = 90, tampered: tuple[str, ...] = ()) -> x509.Certificate:
    builder = ca.tbs(days=days)
    precert = ca.precert(builder)
    scts = [s.sign(precert, ca.cert, tamper=s.name in tampered) for s in signers]
    return ca.final(builder, scts) if scts else builder.sign(ca.key, hashes.SHA256())


A1, A2, B1, B2, C1 = "a1", "a2", "b1", "b2", "c1"


def _logs() -> dict[str, Log]:
    return {
        A1: Log(A1, "Operator A"),
        A2: Log(A2, "Operator A"),
        B1: Log(B1, "Operator B"),
        B2: Log(B2, "Operator B"),
        C1: Log(C1, "Operator C"),
    }


# case -> (SCTs from, listed logs, lifetime days, tampered, Chrome met, Apple met, words in Chrome's reason)
CASES = {
    "two operators, 90 days": ([A1, B1], [A1, A2, B1], 90, (), True, True, "2 valid SCT(s)"),
    "too few SCTs": ([A1], [A1, B1], 90, (), False, False, "too few SCTs"),
    "two SCTs from one operator": ([A1, A2], [A1, A2, B1], 90, (), False, False, "one log operator only"),
    "bad signature is not counted": ([A1, B1], [A1, B1], 90, (B1,), False, False, "too few SCTs: 1 valid"),
    "unknown log is not counted": ([A1, B1], [A1, A2], 90, (), False, False, "too few SCTs: 1 valid"),
    "199 days needs three": ([A1, B1], [A1, B1], 199, (), False, False, "too few SCTs"),
    "199 days with three": ([A1, A2, B1], [A1, A2, B1], 199, (), True, True, "3 valid SCT(s)"),
    # Apple counts notBefore..notAfter inclusive, so exactly 180 days is 181 for Apple: 3 SCTs; Chrome wants 2.
    "180 days: Chrome 2, Apple 3": ([A1, B1], [A1, B1], 180, (), True, False, "2 valid SCT(s)"),
    "three operators, 199 days": ([A1, B1, C1], [A1, B1, C1], 199, (), True, True, "3 operator(s)"),
}


@pytest.mark.parametrize(
    ("signed_by", "listed", "days", "tampered", "chrome", "apple", "why"), CASES.values(), ids=CASES.keys()
)
def test_policy_verdicts(
    tmp_path: Path,
    signed_by: list[str],
    listed: list[str],
    days: int,
    tampered: tuple[str, ...],
    chrome: bool,
    apple: bool,
    why: str,
) -> None:
    ca, logs = MiniCa.make(), _logs()
    cert = _certificate(ca, [logs[n] for n in signed_by], days=days, tampered=tampered)
    log_list = load_log_list(_log_list(tmp_path, [logs[n] for n in listed]))
    report = check_ct(cert, ca.cert, log_list, now=CHECKED_AT)
    assert report.checked and len(report.scts) == len(signed_by)
    assert report.chrome is not None and report.apple is not None
    assert (report.chrome.met, report.apple.met) == (chrome, apple), report.lines()
    assert why in report.chrome.why
    assert report.met is (chrome and apple)
    lines = report.lines()
    assert lines[-2].startswith(f"Chrome CT policy: {'met' if chrome else 'not met'} (")
    assert lines[-1].startswith(f"Apple CT policy: {'met' if apple else 'not met'} (")


def test_each_sct_is_reported_with_its_log_and_why_it_does_not_count(tmp_path: Path) -> None:
    ca, logs = MiniCa.make(), _logs()
    cert = _certificate(ca, [logs[A1], logs[B1], logs[C1]], tampered=(B1,))
    report = check_ct(cert, ca.cert, load_log_list(_log_list(tmp_path, [logs[A1], logs[B1]])), now=CHECKED_AT)
    by_name = {s.log_name: s for s in report.scts}
    assert by_name["a1"].status is SctStatus.VALID and by_name["a1"].operator == "Operator A"
    assert by_name["b1"].status is SctStatus.BAD_SIGNATURE and not by_name["b1"].counts
    assert "does not verify" in (by_name["b1"].detail or "")
    unknown = by_name[None]
    assert unknown.status is SctStatus.UNKNOWN_LOG and unknown.log_id in report.lines()[2]
    doc = json.loads(json.dumps(report.to_json()))
    assert [s["status"] for s in doc["scts"]] == ["valid", "invalid", "unknown log"]
    assert doc["chrome"]["met"] is False and doc["met"] is False


@pytest.mark.parametrize(
    ("state", "since", "status"),
    [
        ("qualified", "2020-01-01T00:00:00Z", SctStatus.VALID),
        ("readonly", "2020-01-01T00:00:00Z", SctStatus.VALID),
        ("retired", "2030-01-01T00:00:00Z", SctStatus.VALID),  # retired after the SCT: still counts
        ("retired", "2026-01-01T00:00:00Z", SctStatus.LOG_NOT_ACCEPTED),  # retired before it
        ("pending", "2020-01-01T00:00:00Z", SctStatus.LOG_NOT_ACCEPTED),
        ("rejected", "2020-01-01T00:00:00Z", SctStatus.LOG_NOT_ACCEPTED),
    ],
)
def test_only_logs_accepted_at_sct_time_count(tmp_path: Path, state: str, since: str, status: SctStatus) -> None:
    ca = MiniCa.make()
    log, other = Log("x", "Operator X", state=state, since=since), Log("y", "Operator Y")
    cert = _certificate(ca, [log, other])
    report = check_ct(cert, ca.cert, load_log_list(_log_list(tmp_path, [log, other])), now=CHECKED_AT)
    assert report.scts[0].status is status
    assert report.chrome is not None and report.chrome.met is (status is SctStatus.VALID)


def test_every_sct_from_retired_logs_fails_both(tmp_path: Path) -> None:
    ca = MiniCa.make()
    logs = [
        Log("x", "X", state="retired", since="2030-01-01T00:00:00Z"),
        Log("y", "Y", "retired", "2030-01-01T00:00:00Z"),
    ]
    report = check_ct(_certificate(ca, logs), ca.cert, load_log_list(_log_list(tmp_path, logs)), now=CHECKED_AT)
    assert report.chrome is not None and not report.chrome.met and "retired" in report.chrome.why
    assert report.apple is not None and not report.apple.met and "currently approved" in report.apple.why


def test_an_sct_dated_after_the_check_does_not_count(tmp_path: Path) -> None:
    ca, logs = MiniCa.make(), _logs()
    builder = ca.tbs()
    precert = ca.precert(builder)
    cert = ca.final(
        builder, [logs[A1].sign(precert, ca.cert, at=NOW + timedelta(days=2)), logs[B1].sign(precert, ca.cert)]
    )
    report = check_ct(cert, ca.cert, load_log_list(_log_list(tmp_path, [logs[A1], logs[B1]])), now=CHECKED_AT)
    assert report.scts[0].status is SctStatus.FUTURE


def test_without_a_log_list_nothing_is_checked() -> None:
    ca, logs = MiniCa.make(), _logs()
    report = check_ct(_certificate(ca, [logs[A1], logs[B1]]), ca.cert, None, now=CHECKED_AT)
    assert not report.checked and report.lines() == [NO_LOG_LIST] and not report.met
    assert report.to_json()["chrome"] is None


def test_a_certificate_without_scts_meets_neither(tmp_path: Path) -> None:
    ca, logs = MiniCa.make(), _logs()
    report = check_ct(_certificate(ca, []), ca.cert, load_log_list(_log_list(tmp_path, [logs[A1]])), now=CHECKED_AT)
    assert embedded_scts(_certificate(ca, [])) == ()
    assert report.lines()[0] == "the certificate carries no embedded SCT"
    assert report.chrome is not None and not report.chrome.met


def test_without_the_issuer_scts_are_unverifiable_and_not_counted(tmp_path: Path) -> None:
    ca, logs = MiniCa.make(), _logs()
    cert = _certificate(ca, [logs[A1], logs[B1]])
    report = check_ct(cert, None, load_log_list(_log_list(tmp_path, [logs[A1], logs[B1]])), now=CHECKED_AT)
    assert {s.status for s in report.scts} == {SctStatus.UNVERIFIABLE}
    assert report.chrome is not None and not report.chrome.met


def test_a_file_that_is_not_a_log_list_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"logs": []}')
    with pytest.raises(ClientError, match="not a usable CT log list"):
        load_log_list(bad)
    with pytest.raises(ClientError, match="cannot read the CT log list"):
        load_log_list(tmp_path / "missing.json")


@pytest.mark.parametrize(
    ("length", "days"),
    [(timedelta(days=180) - timedelta(seconds=1), 180), (timedelta(days=180), 181), (timedelta(days=90), 91)],
)
def test_apple_counts_the_lifetime_inclusively(length: timedelta, days: int) -> None:
    assert apple_lifetime_days(NOW, NOW + length) == days
