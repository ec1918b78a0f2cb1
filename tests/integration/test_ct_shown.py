"""Certificate Transparency shown to people (issue 12 point 5).

Subscriber side (no database): `ecert verify FILE` and `ecert check https://HOST` read the served certificate's
embedded SCTs, which the tests' own RFC 6962 logs on 127.0.0.1 returned from add-pre-chain, verify each
against its log's key from a log_list.json v3, and say whether Chrome's and Apple's policies are met.
CA side: the portal's certificate page (English and Traditional Chinese) and `ecert-ca cert show` list the
certificate's SCTs (log, operator, time), and say that CT is off when there are none.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from typer.testing import CliRunner

from ecert.cli.certs import cert_app
from ecert.core import ct
from ecert.services.context import Context
from ecert.signer.precert import poisoned, with_sct_list
from ecert.store import certificates as cert_store
from ecert.store import ct as ct_store
from tests.ct_log.fixtures import write_log_list
from tests.ct_log.pki import MiniCa
from tests.ct_log.server import Faults, TestLog
from tests.integration.ca_fixtures import DEMO_ENV
from tests.integration.dcv_fixtures import KnotDns
from tests.integration.test_applications import make_csr
from tests.integration.test_client_check import tls_server
from tests.integration.test_client_cli import HOST, run
from tests.integration.test_portal_pages import _to_csr_step, csrf_of, portal_client, portal_context
from tests.unit.test_client_pki import TestPKI

StartLog = Callable[..., TestLog]


def _der(cert: x509.Certificate) -> str:
    return base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()


def add_pre_chain(log: TestLog, precert: x509.Certificate, issuer: x509.Certificate) -> ct.SignedCertificateTimestamp:
    """The SCT the log returns for ``precert`` (RFC 6962 4.1), taken as is: a faulty log's bad SCT too."""
    answer = httpx.post(f"{log.url}ct/v1/add-pre-chain", json={"chain": [_der(precert), _der(issuer)]}, timeout=5)
    answer.raise_for_status()
    return ct.SignedCertificateTimestamp.from_json(answer.json())


def _leaf_builder(pki: TestPKI, key: ec.EllipticCurvePrivateKey, days: int) -> x509.CertificateBuilder:
    start = datetime.now(UTC) - timedelta(hours=1)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)]))
        .issuer_name(pki.sub.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(HOST)]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(pki.sub_key.public_key()), critical=False)
    )


def logged_certificate(pki: TestPKI, key: ec.EllipticCurvePrivateKey, logs: list[TestLog], days: int = 90):  # type: ignore[no-untyped-def]
    """A precertificate sent to each of ``logs`` and the final certificate embedding what they answered."""
    builder = _leaf_builder(pki, key, days)
    precert = poisoned(builder).sign(pki.sub_key, hashes.SHA256())
    scts = [add_pre_chain(log, precert, pki.sub) for log in logs]
    return with_sct_list(builder, scts).sign(pki.sub_key, hashes.SHA256())


@pytest.fixture
def subscriber(tmp_path: Path) -> tuple[TestPKI, Path, ec.EllipticCurvePrivateKey]:
    """A test PKI whose root the subscriber's store trusts, and the server's key."""
    pki = TestPKI(start=datetime.now(UTC))
    store = tmp_path / "store"
    (tmp_path / "root.pem").write_bytes(pki.pem(pki.root))
    assert run(store, "ca", "install", str(tmp_path / "root.pem")).exit_code == 0
    return pki, store, ec.generate_private_key(ec.SECP256R1())


def _verify(store: Path, chain: Path, log_list: Path | None, *extra: str):  # type: ignore[no-untyped-def]
    ct_args = ["--ct-log-list", str(log_list)] if log_list else []
    return run(store, "verify", str(chain), "--hostname", HOST, *ct_args, *extra)


# case -> (logs that sign: (name, operator, faults), logs listed (names), lifetime, Chrome met, Apple met, words)
CASES = {
    "policy met": ([("a1", "A", None), ("b1", "B", None)], ["a1", "b1"], 90, True, True, "2 valid SCT(s)"),
    "too few SCTs": ([("a1", "A", None)], ["a1", "b1"], 90, False, False, "too few SCTs"),
    "same operator": (
        [("a1", "A", None), ("a2", "A", None)],
        ["a1", "a2", "b1"],
        90,
        False,
        False,
        "one log operator only",
    ),
    "bad signature": (
        [("a1", "A", None), ("b1", "B", Faults(bad_signature=True))],
        ["a1", "b1"],
        90,
        False,
        False,
        "SCT from b1 (B, usable), ",
    ),
    "unknown log": ([("a1", "A", None), ("x1", "X", None)], ["a1", "b1"], 90, False, False, "unknown log"),
    "199 days needs 3": (
        [("a1", "A", None), ("a2", "A", None), ("b1", "B", None)],
        ["a1", "a2", "b1"],
        199,
        True,
        True,
        "3 valid SCT(s)",
    ),
}


@pytest.mark.parametrize(("signers", "listed", "days", "chrome", "apple", "words"), CASES.values(), ids=CASES.keys())
def test_ecert_verify_reports_both_policies(
    tmp_path: Path,
    ct_logs: StartLog,
    subscriber: tuple[TestPKI, Path, ec.EllipticCurvePrivateKey],
    signers: list[tuple[str, str, Faults | None]],
    listed: list[str],
    days: int,
    chrome: bool,
    apple: bool,
    words: str,
) -> None:
    pki, store, key = subscriber
    started = {name: ct_logs(name, operator, faults) for name, operator, faults in signers}
    for name in listed:
        started.setdefault(name, ct_logs(name, name[0].upper()))
    cert = logged_certificate(pki, key, [started[name] for name, _, _ in signers], days)
    chain = tmp_path / "chain.pem"
    chain.write_bytes(pki.pem(cert, pki.sub))
    log_list = write_log_list(tmp_path / "log_list.json", [started[n] for n in listed])

    text = _verify(store, chain, log_list)
    assert text.exit_code == 0, text.output  # CT informs; only --require-ct makes it fail
    assert f"Chrome CT policy: {'met' if chrome else 'not met'} (" in text.output
    assert f"Apple CT policy: {'met' if apple else 'not met'} (" in text.output
    assert words in text.output

    doc = json.loads(_verify(store, chain, log_list, "--json").stdout)["ct"]
    assert (doc["chrome"]["met"], doc["apple"]["met"], doc["met"]) == (chrome, apple, chrome and apple)
    assert len(doc["scts"]) == len(signers)
    required = _verify(store, chain, log_list, "--require-ct")
    assert required.exit_code == (0 if chrome and apple else 4), required.output


def test_a_bad_sct_and_an_unknown_log_are_reported_and_not_counted(
    tmp_path: Path, ct_logs: StartLog, subscriber: tuple[TestPKI, Path, ec.EllipticCurvePrivateKey]
) -> None:
    pki, store, key = subscriber
    good, bad, stranger = ct_logs("a1", "A"), ct_logs("b1", "B", Faults(bad_signature=True)), ct_logs("x1", "X")
    cert = logged_certificate(pki, key, [good, bad, stranger])
    chain = tmp_path / "chain.pem"
    chain.write_bytes(pki.pem(cert, pki.sub))
    log_list = write_log_list(tmp_path / "log_list.json", [good, bad])
    doc = json.loads(_verify(store, chain, log_list, "--json").stdout)["ct"]
    by_log = {s["log"]: s for s in doc["scts"]}
    assert by_log["a1"]["status"] == "valid" and by_log["a1"]["counts"]
    assert by_log["b1"]["status"] == "invalid" and not by_log["b1"]["counts"]
    assert "does not verify" in by_log["b1"]["detail"]
    assert (
        by_log[None]["status"] == "unknown log" and by_log[None]["log_id"] == base64.b64encode(stranger.log_id).decode()
    )
    assert "Chrome CT policy: not met (too few SCTs: 1 valid" in _verify(store, chain, log_list).output


def test_without_a_log_list_ct_is_not_checked(
    tmp_path: Path, ct_logs: StartLog, subscriber: tuple[TestPKI, Path, ec.EllipticCurvePrivateKey]
) -> None:
    pki, store, key = subscriber
    cert = logged_certificate(pki, key, [ct_logs("a1", "A"), ct_logs("b1", "B")])
    chain = tmp_path / "chain.pem"
    chain.write_bytes(pki.pem(cert, pki.sub))
    result = _verify(store, chain, None)
    assert result.exit_code == 0 and "CT not checked: no log list given" in result.output
    assert json.loads(_verify(store, chain, None, "--json").stdout)["ct"]["checked"] is False
    usage = _verify(store, chain, None, "--require-ct")
    assert usage.exit_code == 2 and "--require-ct needs --ct-log-list" in usage.output


def test_ecert_check_judges_the_served_certificate(
    tmp_path: Path, ct_logs: StartLog, subscriber: tuple[TestPKI, Path, ec.EllipticCurvePrivateKey]
) -> None:
    pki, store, key = subscriber
    a1, a2, b1 = ct_logs("a1", "A"), ct_logs("a2", "A"), ct_logs("b1", "B")
    good = logged_certificate(pki, key, [a1, b1])
    one_operator = logged_certificate(pki, key, [a1, a2])
    log_list = write_log_list(tmp_path / "log_list.json", [a1, a2, b1])
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    for cert, met in ((good, True), (one_operator, False)):
        (tmp_path / "chain.pem").write_bytes(pki.pem(cert, pki.sub))
        with tls_server(tmp_path / "chain.pem", tmp_path / "key.pem") as port:
            url = f"https://127.0.0.1:{port}"
            args = ("check", url, "--servername", HOST, "--timeout", "5", "--ct-log-list", str(log_list))
            text = run(store, *args)
            doc = json.loads(run(store, "--json", *args).stdout)
            required = run(store, *args, "--require-ct")
        assert text.exit_code == 0, text.output
        verdict = "met (2 valid SCT(s)" if met else "not met (one log operator only"
        assert f"Chrome CT policy: {verdict}" in text.output
        assert doc["verified"] is True and doc["ct"]["chrome"]["met"] is met and doc["ct"]["apple"]["met"] is met
        assert required.exit_code == (0 if met else 4)


# --- the CA side: portal page and `ecert-ca cert show` -----------------------------------------------------


@pytest.fixture
def portal_ctx(make_demo_ctx: Callable[..., Context], knot_dns: KnotDns) -> Context:
    return portal_context(make_demo_ctx, knot_dns)


def _record_scts(ctx: Context, certificate_id: int, logs: list[TestLog], log_list: Path) -> list[ct.SctFromLog]:
    """Store SCTs that the test logs returned, for the certificate: what the pipeline records with CT on."""
    ca = MiniCa.make()
    precert = ca.precert(ca.tbs())
    known = ct.parse_log_list(log_list.read_text())
    found = [ct.SctFromLog(add_pre_chain(log, precert, ca.cert), known.by_id(log.log_id)) for log in logs]  # type: ignore[arg-type]
    now = ctx.clock()
    with ctx.transaction() as session:
        row = cert_store.certificate_by_id(session, certificate_id)
        assert row is not None and row.der is not None
        precert_id = ct_store.add_precertificate(
            session, ca_id=row.ca_id, serial_hex=row.serial_hex, der=row.der, tbs_sha256="0" * 64, now=now
        )
        ct_store.add_scts(session, precert_id=precert_id, certificate_id=certificate_id, scts=found, now=now)
    return found


def _cert_show(ctx: Context, serial: str, *args: str):  # type: ignore[no-untyped-def]
    env = {**DEMO_ENV, "ECERT_DATA_DIR": str(ctx.settings.data_dir), "COLUMNS": "250", "NO_COLOR": "1"}
    return CliRunner().invoke(cert_app, ["show", serial, *args], env=env)


def test_the_certificate_page_and_cert_show_list_the_scts(
    tmp_path: Path, portal_ctx: Context, ct_logs: StartLog
) -> None:
    from ecert.services import certificates

    logs = [ct_logs("Test Log Argon", "Operator A"), ct_logs("Test Log Xenon", "日誌營運者 B")]
    log_list = write_log_list(tmp_path / "log_list.json", logs)
    with portal_client(portal_ctx) as client:
        host, reg = _to_csr_step(portal_ctx, client)
        form = client.get("/portal/csr")
        page = client.post("/portal/csr", data={"csrf_token": csrf_of(form.text), "csr_text": make_csr([host])}).text
        # CT is off on the demo CA: no SCT table, and a sentence saying so, in both languages.
        assert 'id="scts"' not in page and "Certificate Transparency is off on this CA" in page
        assert "本核證機關並未啟用證書透明度" in client.get("/portal/certificate", params={"lang": "zh_HK"}).text
        serial = re.search(r'<code id="serial">([0-9a-f ]+)</code>', page).group(1).replace(" ", "")  # type: ignore[union-attr]
        shown = _cert_show(portal_ctx, serial)
        assert shown.exit_code == 0, shown.output
        assert re.search(r"scts\s+│ none \(Certificate Transparency is off\)", shown.output)

        cert = certificates.get_certificate(portal_ctx, reg.application_id)
        assert cert is not None and int(cert.serial_hex, 16) == int(serial, 16)
        found = _record_scts(portal_ctx, cert.certificate_id, logs, log_list)

        for lang, caption, operator_heading in (
            ("en", "Certificate Transparency: this certificate was recorded", "Log operator"),
            ("zh_HK", "證書透明度：此證書已記錄於以下公開日誌", "日誌營運者"),
        ):
            html = client.get("/portal/certificate", params={"lang": lang}).text
            assert caption in html and operator_heading in html
            rows = re.findall(r'<tr class="sct"><td>([^<]+)</td><td>([^<]+)</td><td><time datetime="([^"]+)">', html)
            assert [(n, o) for n, o, _ in rows] == [
                ("Test Log Argon", "Operator A"),
                ("Test Log Xenon", "日誌營運者 B"),
            ]
            stamps = {datetime.fromisoformat(t) for _, _, t in rows}
            assert stamps == {f.sct.time for f in found}
            assert "Certificate Transparency is off" not in html

    shown = _cert_show(portal_ctx, serial)
    assert "Test Log Argon (Operator A)" in shown.output and "Test Log Xenon (日誌營運者 B)" in shown.output
    data = json.loads(_cert_show(portal_ctx, serial, "--json").stdout)["data"]
    assert [(s["log"], s["operator"]) for s in data["scts"]] == [
        ("Test Log Argon", "Operator A"),
        ("Test Log Xenon", "日誌營運者 B"),
    ]
    assert all(s["time"] for s in data["scts"])


def _openssl_statuses(port: int, root: Path, ctlogfile: Path) -> list[str]:
    """What OpenSSL (no code of ours) says of each embedded SCT: ``SCT validation status: valid|invalid|...``."""
    out = subprocess.run(
        [
            "openssl",
            "s_client",
            "-connect",
            f"127.0.0.1:{port}",
            "-servername",
            HOST,
            "-CAfile",
            str(root),
            "-ct",
            "-ctlogfile",
            str(ctlogfile),
        ],
        input=b"",
        capture_output=True,
        timeout=30,
        check=False,
    )
    return re.findall(r"SCT validation status: ([a-z ]+)", out.stdout.decode())


def test_openssl_agrees_with_each_sct_verdict(
    tmp_path: Path, ct_logs: StartLog, subscriber: tuple[TestPKI, Path, ec.EllipticCurvePrivateKey]
) -> None:
    pki, store, key = subscriber
    # OpenSSL dates the check at the handshake's whole second: SCTs a minute old, as real ones are.
    minute_ago: dict[str, Any] = {"clock": lambda: time.time() - 60}
    good, bad = ct_logs("a1", "A", **minute_ago), ct_logs("b1", "B", Faults(bad_signature=True), **minute_ago)
    stranger = ct_logs("x1", "X", **minute_ago)
    cert = logged_certificate(pki, key, [good, bad, stranger])
    (tmp_path / "chain.pem").write_bytes(pki.pem(cert, pki.sub))
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    log_list = write_log_list(tmp_path / "log_list.json", [good, bad])
    ctlogfile = tmp_path / "ct_log_list.cnf"  # OpenSSL's CTLOG_STORE format: the same two logs
    ctlogfile.write_text(
        "enabled_logs = a1,b1\n"
        + "".join(
            f"[{log.name}]\ndescription = {log.name}\nkey = {base64.b64encode(log.key_der).decode()}\n"
            for log in (good, bad)
        )
    )
    with tls_server(tmp_path / "chain.pem", tmp_path / "key.pem") as port:
        ours = json.loads(
            run(
                store,
                "--json",
                "check",
                f"https://127.0.0.1:{port}",
                "--servername",
                HOST,
                "--timeout",
                "5",
                "--ct-log-list",
                str(log_list),
            ).stdout
        )["ct"]["scts"]
        theirs = _openssl_statuses(port, tmp_path / "root.pem", ctlogfile)
    assert [s["status"] for s in ours] == ["valid", "invalid", "unknown log"]
    assert sorted(theirs) == ["invalid", "unknown log", "valid"]  # OpenSSL prints them in its own order
