"""`ecert-ca` as an operator uses it: init, list, issue, show, audit verify; clear errors and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.integration.dcv_fixtures import KnotDns

VENV_BIN = Path(sys.executable).parent  # where this interpreter's console scripts are installed
RESOLVER: dict[str, str] = {}


@pytest.fixture(autouse=True)
def _caa_resolver(knot_dns: KnotDns) -> None:
    """`cert issue` looks CAA up (BR 3.2.2.8): point the CLI at the loopback Knot server."""
    RESOLVER["addr"] = knot_dns.resolver_addr


def _run(tmp_path: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    # No ECERT_BASE_URL: the defaults must give certificates the linter accepts.
    env = {
        "PATH": "/usr/bin:/bin",
        "ECERT_DATA_DIR": str(tmp_path / "data"),
        "ECERT_KEY_PASSPHRASE": "cli-test-passphrase",
        "NO_COLOR": "1",
        "ECERT_DNS_RESOLVERS": RESOLVER["addr"],
    }
    result = subprocess.run([str(VENV_BIN / "ecert-ca"), *args], capture_output=True, text=True, env=env, timeout=120)
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def _csr(tmp_path: Path, *names: str, ou: str | None = None) -> Path:
    key = ec.generate_private_key(ec.SECP256R1())
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, names[0])]
    if ou:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ou))
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name(attrs))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
        .sign(key, __import__("cryptography.hazmat.primitives.hashes", fromlist=["SHA256"]).SHA256())
    )
    path = tmp_path / "req.csr"
    path.write_bytes(csr.public_bytes(serialization.Encoding.PEM))
    return path


def _issue(
    tmp_path: Path, csr: Path, name: str, *extra: str, vetting: str | None = None, check: bool = False
) -> subprocess.CompletedProcess[str]:
    """`ecert-ca cert issue` for one server name with the server profile, as an operator types it."""
    chosen = ("--vetting", vetting) if vetting is not None else ()
    return _run(
        tmp_path,
        "cert",
        "issue",
        "--csr",
        str(csr),
        "--profile",
        "server",
        "--name",
        name,
        *chosen,
        *extra,
        check=check,
    )


@pytest.fixture
def initialised(tmp_path: Path) -> Path:
    _run(tmp_path, "init", "--demo")
    return tmp_path


def _vetting(tmp_path: Path, org: str = "Example Limited") -> str:
    """The operator records an organisation it vetted (BR 3.2.2.1); direct issuance names it."""
    out = _run(
        tmp_path, "vetting", "add", "--org", org, "--source", "BR extract 12345678 checked by A. Chan", "--json"
    ).stdout
    return str(json.loads(out)["data"]["id"])


def _operator_validates(tmp_path: Path, knot: KnotDns, domain: str) -> None:
    """The operator shows control of ``domain`` by DNS (`ecert-ca dcv start|check`), against the real Knot."""
    started = json.loads(_run(tmp_path, "dcv", "start", domain, "--json").stdout)["data"]
    knot.add_txt(started["txt_hosts"][0], started["txt_value"])
    _run(tmp_path, "dcv", "check", domain)


@pytest.fixture
def validated(initialised: Path, knot_dns: KnotDns) -> tuple[Path, str]:
    """A demo CA whose operator holds a validation of example.com and vetted "Example Limited"."""
    _operator_validates(initialised, knot_dns, "example.com")
    return initialised, _vetting(initialised)


def test_init_lists_the_demo_hierarchy_as_json(initialised: Path) -> None:
    out = json.loads(_run(initialised, "ca", "list", "--json").stdout)
    assert out["schema"] == 1
    assert {ca["role"] for ca in out["data"]} == {"root", "ov", "ev", "external-root", "cross"}


def test_issue_show_and_audit_verify(validated: tuple[Path, str]) -> None:
    initialised, vetting = validated
    csr = _csr(initialised, "www.example.com", ou="IT Department")
    issued = json.loads(_issue(initialised, csr, "WWW.Example.COM", "--json", vetting=vetting, check=True).stdout)
    assert issued["data"]["names"] == ["www.example.com"]
    assert any("OU" in note for note in issued["data"]["ignored_from_csr"])
    shown = json.loads(_run(initialised, "cert", "show", issued["data"]["serial"], "--json").stdout)
    assert shown["data"]["status"] == "accepted"  # the operator hands it over: no Accept step
    # The auditor's sample: the certificate leads back to the validation and the vetting it relied on.
    evidence = shown["data"]["evidence"]
    assert evidence["domains"]["www.example.com"]["source"] == "operator"
    assert evidence["domains"]["www.example.com"]["domain"] == "example.com"
    assert evidence["organisation"] == {**evidence["organisation"], "kind": "vetting", "ref": int(vetting)}
    assert shown["data"]["channel"] == "operator-cli"
    assert "intact" in _run(initialised, "audit", "verify").stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--profile", "server", "--name", "www.other.com"), "not in the application"),
        (("--profile", "nonsense", "--name", "www.example.com"), "unknown profile"),
        (("--profile", "server", "--name", "localhost"), "localhost"),
    ],
)
def test_issue_refusals_are_one_line_with_non_zero_exit(
    validated: tuple[Path, str], args: tuple[str, ...], message: str
) -> None:
    initialised, vetting = validated
    csr = _csr(initialised, "www.example.com")
    result = _run(initialised, "cert", "issue", "--csr", str(csr), "--vetting", vetting, *args, check=False)
    assert result.returncode != 0
    assert message in result.stderr and result.stderr.startswith("error: ")
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_no_issuance_without_recorded_domain_validation(initialised: Path) -> None:
    """Issue 10 point 1: a vetted organisation is not enough; every name needs DCV evidence (BR 3.2.2.4)."""
    vetting = _vetting(initialised, "Someone Else Ltd")
    csr = _csr(initialised, "www.never-demo.hk")
    refused = _issue(initialised, csr, "www.never-demo.hk", vetting=vetting)
    assert refused.returncode == 1 and "www.never-demo.hk" in refused.stderr and "BR 3.2.2.4" in refused.stderr
    listed = _run(initialised, "audit", "verify").stdout
    assert "intact" in listed
    events = _audit_events(initialised)
    assert any(e["event"] == "issuance.refused" and e["details"]["channel"] == "operator-cli" for e in events)


def test_no_issuance_without_a_vetted_organisation(initialised: Path, knot_dns: KnotDns) -> None:
    _operator_validates(initialised, knot_dns, "example.com")
    csr = _csr(initialised, "www.example.com")
    refused = _issue(initialised, csr, "www.example.com")
    assert refused.returncode == 1 and "vetted organisation" in refused.stderr
    unknown = _issue(initialised, csr, "www.example.com", vetting="999")
    assert unknown.returncode == 1 and "no organisation vetting number 999" in unknown.stderr


def test_a_ca_key_is_never_a_subscriber_key(validated: tuple[Path, str]) -> None:
    """Issue 10 point 2 (BR 6.1.1.3): a CSR carrying the public key of any CA of this instance is refused."""
    initialised, vetting = validated
    keys = sorted((initialised / "data" / "keys").glob("*.key"))
    assert keys, "the demo hierarchy's key files"
    passphrase = b"cli-test-passphrase"
    for key_file in keys:
        key = serialization.load_pem_private_key(key_file.read_bytes(), passphrase)
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "www.example.com")]))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("www.example.com")]), critical=False)
            .sign(key, __import__("cryptography.hazmat.primitives.hashes", fromlist=["SHA256"]).SHA256())
        )
        path = initialised / "ca-key.csr"
        path.write_bytes(csr.public_bytes(serialization.Encoding.PEM))
        refused = _issue(initialised, path, "www.example.com", vetting=vetting)
        assert refused.returncode == 1, key_file.name
        assert "belongs to the CA certificate" in refused.stderr and "BR 6.1.1.3" in refused.stderr


def _audit_events(tmp_path: Path) -> list[dict[str, object]]:
    import sqlite3

    db = sqlite3.connect(tmp_path / "data" / "ecert.db")
    try:
        rows = db.execute("SELECT event, details FROM audit_log ORDER BY id").fetchall()
    finally:
        db.close()
    return [{"event": event, "details": json.loads(details)} for event, details in rows]


def test_missing_passphrase_is_a_clear_error(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "ECERT_DATA_DIR": str(tmp_path / "data"), "NO_COLOR": "1"}
    result = subprocess.run([str(VENV_BIN / "ecert-ca"), "init"], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 1 and "no passphrase" in result.stderr


def test_rollover_then_list_shows_retired_and_new(initialised: Path) -> None:
    _run(initialised, "ca", "rollover", "ov")
    rows = {ca["label"]: ca for ca in json.loads(_run(initialised, "ca", "list", "--json").stdout)["data"]}
    assert rows["demo-ov-ca-1"]["status"] == "retired" and rows["demo-ov-ca-2"]["status"] == "active"


def test_offline_ceremony_through_the_cli(initialised: Path) -> None:
    req = initialised / "ov3.csr"
    cert = initialised / "ov3.pem"
    _run(
        initialised,
        "ca",
        "request",
        "ov",
        "--label",
        "ov-offline-3",
        "--common-name",
        "ecert DEMO OV CA 3",
        "--out",
        str(req),
    )
    _run(initialised, "ca", "sign-request", str(req), "--role", "ov", "--out", str(cert))
    _run(initialised, "ca", "import", str(cert), "--role", "ov", "--label", "ov-offline-3")
    out = _run(initialised, "ca", "cross-request", "--out-dir", str(initialised / "cross")).stdout
    assert "root-request.pem" in out
    assert (initialised / "cross" / "root.pem").exists()


def test_rollover_schedules_the_old_ca_into_the_arl(initialised: Path) -> None:
    out = json.loads(
        _run(initialised, "ca", "rollover", "ev", "--revoke-old-at", "2027-01-31T00:00:00", "--json").stdout
    )
    assert out["data"]["revocation_scheduled"][0]["label"] == "demo-ev-ca-1"
    rows = {ca["label"]: ca for ca in json.loads(_run(initialised, "ca", "list", "--json").stdout)["data"]}
    assert rows["demo-ev-ca-1"]["status"] == "retired"  # revoked by the jobs when the date comes


def test_audit_verify_with_a_known_head_detects_rows_cut_from_the_end(initialised: Path) -> None:
    import sqlite3

    first = json.loads(_run(initialised, "audit", "verify", "--json").stdout)["data"]
    _run(initialised, "ca", "rollover", "ov")  # more rows after the head we noted
    assert _run(initialised, "audit", "verify", "--known-head", first["head"]).returncode == 0
    db = sqlite3.connect(initialised / "data" / "ecert.db")
    db.execute("DROP TRIGGER IF EXISTS audit_log_no_delete")
    names = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='trigger' AND tbl_name='audit_log'")]
    for name in names:
        db.execute(f'DROP TRIGGER "{name}"')
    db.execute("DELETE FROM audit_log WHERE id >= (SELECT id FROM audit_log WHERE hash = ?)", (first["head"],))
    db.commit()
    db.close()
    assert _run(initialised, "audit", "verify").returncode == 0  # a shorter chain is still a chain
    cut = _run(initialised, "audit", "verify", "--known-head", first["head"], check=False)
    assert cut.returncode == 4 and "BROKEN" in cut.stdout


def test_direct_issuance_checks_caa_and_records_it(validated: tuple[Path, str], knot_dns: KnotDns) -> None:
    initialised, vetting = validated
    knot_dns.set_records("caa-cli.example.com", "CAA", ['0 issue "another-ca.example.net"'])
    csr = _csr(initialised, "caa-cli.example.com")
    refused = _issue(initialised, csr, "caa-cli.example.com", vetting=vetting)
    assert refused.returncode == 1 and "CAA for caa-cli.example.com does not permit" in refused.stderr
    assert "BR 3.2.2.8" in refused.stderr


def test_a_mixed_script_look_alike_needs_a_manual_review(validated: tuple[Path, str]) -> None:
    initialised, vetting = validated
    lookalike = "p\u0430ypal.example.com"  # Cyrillic a: BR 4.2.1 high-risk
    csr = _csr(initialised, "xn--pypal-4ve.example.com")
    refused = _issue(initialised, csr, lookalike, vetting=vetting)
    assert refused.returncode == 1 and "manual high-risk review" in refused.stderr and "BR 4.2.1" in refused.stderr
    reviewed = _issue(initialised, csr, lookalike, "--high-risk-reviewed", "--json", vetting=vetting, check=True)
    assert json.loads(reviewed.stdout)["data"]["names"] == ["xn--pypal-4ve.example.com"]
