"""SCTs from real (test) RFC 6962 logs on loopback: parallel submission, verification, fallback, refusals."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509

from ecert.core import ct
from ecert.core.errors import TransparencyFailed
from ecert.transparency import CtSubmitter, LogClient, RetryPolicy, Submission
from ecert.transparency.client import new_http_client
from ecert.transparency.submit import load_log_list
from tests.ct_log.fixtures import write_log_list
from tests.ct_log.pki import NOW, MiniCa
from tests.ct_log.server import Faults, TestLog

StartLog = Callable[..., TestLog]


def _submitter(tmp_path: Path, logs: list[TestLog], retry: RetryPolicy | None = None, **kw: object) -> CtSubmitter:
    retry = retry or RetryPolicy(timeout=2.0, attempts=2, backoff=0.05)
    path = write_log_list(tmp_path / "log_list.json", logs, **kw)
    return CtSubmitter(load_log_list(path), LogClient(new_http_client(retry.timeout), retry))


def _submit(sub: CtSubmitter, days: int = 90) -> tuple[Submission, MiniCa, x509.CertificateBuilder]:
    ca = MiniCa.make()
    builder = ca.tbs(days=days)
    precert = ca.precert(builder)
    result = sub.submit_precertificate(precert, [ca.cert], NOW, NOW + timedelta(days=days))
    return result, ca, builder


def test_two_operators_give_verified_scts_that_embed(tmp_path: Path, ct_logs: StartLog) -> None:
    logs = [ct_logs("a1", "A"), ct_logs("a2", "A"), ct_logs("b1", "B")]
    result, ca, builder = _submit(_submitter(tmp_path, logs))
    assert result.met and result.required == 2
    assert {f.log.operator for f in result.scts} == {"A", "B"}
    final = ca.final(builder, [f.sct for f in result.scts])
    embedded = final.extensions.get_extension_for_class(x509.PrecertificateSignedCertificateTimestamps).value
    assert sorted(s.log_id for s in embedded) == sorted(f.sct.log_id for f in result.scts)
    # Every log that answered has the precertificate in its tree.
    for found in result.scts:
        log = next(log for log in logs if log.log_id == found.log.log_id)
        assert log.sth()["tree_size"] == 1


def test_a_longer_lifetime_needs_three(tmp_path: Path, ct_logs: StartLog) -> None:
    logs = [ct_logs("a1", "A"), ct_logs("a2", "A"), ct_logs("b1", "B")]
    result, _, _ = _submit(_submitter(tmp_path, logs), days=199)
    assert result.met and result.required == 3 and len(result.scts) == 3


def test_one_log_down_another_is_asked(tmp_path: Path, ct_logs: StartLog) -> None:
    logs = [ct_logs("a1", "A"), ct_logs("b1", "B"), ct_logs("b2", "B")]
    sub = _submitter(tmp_path, logs)
    logs[0].stop()  # listed, but nothing answers
    logs[1].stop()
    result, _, _ = _submit(sub)
    assert not result.met  # only one operator left
    failed = {r.log.description: r.error for r in result.results if not r.ok}
    assert set(failed) == {"a1", "b1"} and "ConnectError" in (failed["a1"] or "")


def test_down_log_falls_back_to_a_further_log(tmp_path: Path, ct_logs: StartLog) -> None:
    logs = [ct_logs("a1", "A"), ct_logs("b1", "B"), ct_logs("a2", "A")]
    sub = _submitter(tmp_path, logs)
    logs[0].stop()
    result, _, _ = _submit(sub)
    assert result.met
    assert sorted(f.log.description for f in result.scts) == ["a2", "b1"]


@pytest.mark.parametrize(
    ("faults", "error"),
    [
        (Faults(bad_signature=True), "does not verify"),
        (Faults(wrong_log_id=True), "another log ID"),
        (Faults(status=500), "HTTP 500 after 2 attempt(s)"),
        (Faults(delay=1.5), "no answer within 0.5 s"),
    ],
)
def test_a_faulty_log_is_discarded_and_another_used(
    tmp_path: Path, ct_logs: StartLog, faults: Faults, error: str
) -> None:
    logs = [ct_logs("bad", "A", faults), ct_logs("b1", "B"), ct_logs("a2", "A")]
    result, _, _ = _submit(_submitter(tmp_path, logs, RetryPolicy(timeout=0.5, attempts=2, backoff=0.05)))
    assert result.met
    assert sorted(f.log.description for f in result.scts) == ["a2", "b1"]
    bad = next(r for r in result.results if r.log.description == "bad")
    assert not bad.ok and error in (bad.error or "")


def test_too_few_logs_is_a_shortfall(tmp_path: Path, ct_logs: StartLog) -> None:
    result, _, _ = _submit(_submitter(tmp_path, [ct_logs("a1", "A")]))
    assert not result.met and len(result.scts) == 1 and result.candidates == 1
    with pytest.raises(TransparencyFailed, match="the policy needs 2 from at least 2 operators"):
        ct.check_sct_policy(result.scts, NOW, NOW + timedelta(days=90))


def test_a_log_past_its_temporal_interval_is_never_asked(tmp_path: Path, ct_logs: StartLog) -> None:
    logs = [ct_logs("old-a", "A"), ct_logs("old-b", "B")]
    sub = _submitter(tmp_path, logs, start="2020-01-01T00:00:00Z", end="2026-06-01T00:00:00Z")
    result, _, _ = _submit(sub)
    assert result.candidates == 0 and not result.met
    assert all(log.submissions == 0 for log in logs)
