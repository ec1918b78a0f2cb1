"""The `ecert` command end to end on a temporary store: request, complete, verify, export, import, deploy,
and the hostile inputs (wrong password, another key's certificate, truncated .p7b, unwritable store)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs7
from typer.testing import CliRunner

from ecert.cli.subscriber import app
from tests.unit.test_client_pki import TestPKI

HOST = "www.example.com"


def run(store: Path, *args: str, input: str | None = None, obj: object = None):
    """`ecert --store STORE ARGS` in-process; ``obj`` is the ClientDeps seam (an httpx transport, say)."""
    return CliRunner().invoke(app, ["--store", str(store), *args], input=input, env={"NO_COLOR": "1"}, obj=obj)


def issued_store(tmp_path: Path, pki: TestPKI, secrets: dict[str, str]) -> tuple[Path, x509.Certificate]:
    """A store with the roots installed and one completed certificate 'web' for HOST."""
    store = tmp_path / "store"
    (tmp_path / "root.pem").write_bytes(pki.pem(pki.root))
    assert run(store, "ca", "install", str(tmp_path / "root.pem")).exit_code == 0
    r = run(
        store,
        "request",
        "new",
        "web",
        "--name",
        HOST,
        "--name",
        "example.com",
        "--key-type",
        "p256",
        "--passphrase-file",
        secrets["key"],
    )
    assert r.exit_code == 0, r.output
    csr = x509.load_pem_x509_csr((store / "pending/web/request.csr").read_bytes())
    leaf = pki.issue(csr, [HOST, "example.com"])
    p7b = pkcs7.serialize_certificates([leaf, pki.sub, pki.root], serialization.Encoding.DER)
    (tmp_path / "cert.p7b").write_bytes(p7b)
    r = run(store, "request", "complete", str(tmp_path / "cert.p7b"))
    assert r.exit_code == 0, r.output
    return store, leaf


def test_request_new_writes_pending_entry_with_private_key_0600(tmp_path: Path, secrets) -> None:
    store = tmp_path / "s"
    r = run(
        store,
        "--json",
        "request",
        "new",
        "web",
        "--wildcard",
        "example.com",
        "--key-type",
        "p256",
        "--passphrase-file",
        secrets["key"],
    )
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["schema"] == 1 and out["names"] == ["*.example.com", "example.com"]
    key = store / "pending/web/key.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE((store / "pending").stat().st_mode) == 0o700
    assert b"ENCRYPTED" in key.read_bytes()


def test_round_trip_complete_verify_export_import_deploy(tmp_path: Path, pki: TestPKI, secrets) -> None:
    store, leaf = issued_store(tmp_path, pki, secrets)
    assert not (store / "pending/web").exists()
    assert (store / "live/web/fullchain.pem").read_bytes().count(b"BEGIN CERTIFICATE") == 2

    r = run(store, "--json", "verify", "web", "--hostname", HOST)
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["ok"] is True

    r = run(store, "--json", "list")
    assert json.loads(r.output)["entries"][0]["state"] == "issued"

    pfx = tmp_path / "backup.pfx"
    r = run(
        store,
        "export",
        "web",
        "--pfx",
        str(pfx),
        "--password-file",
        secrets["pfx"],
        "--passphrase-file",
        secrets["key"],
    )
    assert r.exit_code == 0, r.output
    assert stat.S_IMODE(pfx.stat().st_mode) == 0o600

    store2 = tmp_path / "store2"
    r = run(store2, "import", str(pfx), "--name", "restored", "--password-file", secrets["pfx"], "--no-encrypt")
    assert r.exit_code == 0, r.output
    assert x509.load_pem_x509_certificate((store2 / "live/restored/cert.pem").read_bytes()) == leaf

    out = tmp_path / "nginx"
    r = run(store2, "deploy", "restored", "--format", "nginx", "--out", str(out))
    assert r.exit_code == 0, r.output
    assert "not via a cross-certificate" in r.output
    assert stat.S_IMODE((out / "privkey.pem").stat().st_mode) == 0o600


def test_deploy_appends_cross_certificate_when_installed(tmp_path: Path, pki: TestPKI, secrets) -> None:
    store, _ = issued_store(tmp_path, pki, secrets)
    (tmp_path / "cross.pem").write_bytes(pki.pem(pki.cross))
    assert run(store, "ca", "install", str(tmp_path / "cross.pem")).exit_code == 0
    r = run(
        store,
        "--json",
        "deploy",
        "web",
        "--format",
        "haproxy",
        "--out",
        str(tmp_path / "h"),
        "--passphrase-file",
        secrets["key"],
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["via_cross"] is True
    combined = (tmp_path / "h/web.pem").read_bytes()
    assert combined.count(b"BEGIN CERTIFICATE") == 3 and b"PRIVATE KEY" in combined


def test_verify_fails_with_exit_4_and_says_why(tmp_path: Path, pki: TestPKI, secrets) -> None:
    store, leaf = issued_store(tmp_path, pki, secrets)
    (tmp_path / "crl.pem").write_bytes(
        pki.crl(pki.sub, pki.sub_key, [leaf.serial_number]).public_bytes(serialization.Encoding.PEM)
    )
    assert run(store, "crl", "import", str(tmp_path / "crl.pem")).exit_code == 0
    r = run(store, "verify", "web")
    assert r.exit_code == 4
    assert "revoked" in r.output


def test_ca_remove_takes_the_old_sub_ca_out(tmp_path: Path, pki: TestPKI) -> None:
    store = tmp_path / "s"
    (tmp_path / "sub.pem").write_bytes(pki.pem(pki.sub))
    r = run(store, "--json", "ca", "install", str(tmp_path / "sub.pem"))
    name = json.loads(r.output)["installed"][0]["name"]
    assert run(store, "ca", "remove", name).exit_code == 0
    assert json.loads(run(store, "--json", "ca", "list").output)["cas"] == []


# -- hostile inputs: one clear line, non-zero exit, nothing written ------------------------------
def _tree(p: Path) -> list[str]:
    return sorted(str(x.relative_to(p)) for x in p.rglob("*")) if p.exists() else []


def test_certificate_for_another_key_is_refused(tmp_path: Path, pki: TestPKI, secrets) -> None:
    store = tmp_path / "s"
    run(store, "request", "new", "web", "--name", HOST, "--key-type", "p256", "--no-encrypt")
    other = pki.issue(ec.generate_private_key(ec.SECP256R1()), [HOST])
    (tmp_path / "other.cer").write_bytes(other.public_bytes(serialization.Encoding.DER))
    before = _tree(store)
    r = run(store, "request", "complete", str(tmp_path / "other.cer"))
    assert r.exit_code == 1
    assert "no pending request holds the key" in r.output
    assert _tree(store) == before


def test_truncated_p7b_is_refused(tmp_path: Path, pki: TestPKI) -> None:
    store = tmp_path / "s"
    run(store, "request", "new", "web", "--name", HOST, "--key-type", "p256", "--no-encrypt")
    csr = x509.load_pem_x509_csr((store / "pending/web/request.csr").read_bytes())
    p7b = pkcs7.serialize_certificates([pki.issue(csr, [HOST]), pki.sub], serialization.Encoding.DER)
    (tmp_path / "cut.p7b").write_bytes(p7b[: len(p7b) // 2])
    before = _tree(store)
    r = run(store, "request", "complete", str(tmp_path / "cut.p7b"))
    assert r.exit_code == 1
    assert "truncated" in r.output
    assert _tree(store) == before


def test_pfx_with_wrong_password_is_refused(tmp_path: Path, pki: TestPKI, secrets) -> None:
    store, _ = issued_store(tmp_path, pki, secrets)
    pfx = tmp_path / "b.pfx"
    run(
        store,
        "export",
        "web",
        "--pfx",
        str(pfx),
        "--password-file",
        secrets["pfx"],
        "--passphrase-file",
        secrets["key"],
    )
    store2 = tmp_path / "s2"
    r = run(store2, "import", str(pfx), "--password-file", secrets["wrong"], "--no-encrypt")
    assert r.exit_code == 1
    assert "wrong password" in r.output
    assert not (store2 / "live").exists() or _tree(store2 / "live") == []


@pytest.mark.parametrize("layout", ["store-is-a-file", "store-under-a-file"])
def test_unwritable_store_gives_one_line_and_writes_nothing(tmp_path: Path, layout: str) -> None:
    # Root ignores permission bits, so the store path is made impossible instead: a regular file.
    blocker = tmp_path / "blocker"
    blocker.write_text("not a directory")
    store = blocker if layout == "store-is-a-file" else blocker / "store"
    r = run(store, "request", "new", "web", "--name", HOST, "--no-encrypt", "--key-type", "p256")
    assert r.exit_code == 1
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: cannot")
    assert blocker.read_text() == "not a directory"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocker"]


def test_existing_request_is_not_overwritten_without_force(tmp_path: Path) -> None:
    store = tmp_path / "s"
    run(store, "request", "new", "web", "--name", HOST, "--no-encrypt", "--key-type", "p256")
    key = (store / "pending/web/key.pem").read_bytes()
    r = run(store, "request", "new", "web", "--name", HOST, "--no-encrypt", "--key-type", "p256")
    assert r.exit_code == 1 and "--force" in r.output
    assert (store / "pending/web/key.pem").read_bytes() == key


def test_export_prompts_for_password_twice(tmp_path: Path, pki: TestPKI, secrets, monkeypatch) -> None:
    store, _ = issued_store(tmp_path, pki, secrets)
    monkeypatch.setattr("ecert.cli.client_shared.stdin_is_terminal", lambda: True)  # CliRunner types the answers
    pfx = tmp_path / "p.pfx"
    r = run(
        store,
        "export",
        "web",
        "--pfx",
        str(pfx),
        "--passphrase-file",
        secrets["key"],
        input="pw-one\npw-two\npw-one\npw-one\n",
    )
    assert r.exit_code == 0, r.output
    assert "pw-one" not in r.output  # never echoed
    from ecert.client.pkcs12 import import_pfx

    assert import_pfx(pfx.read_bytes(), b"pw-one").cert is not None
    assert os.path.exists(pfx)


def test_deploy_jks_is_readable_by_keytool(tmp_path: Path, pki: TestPKI, secrets) -> None:

    store, _ = issued_store(tmp_path, pki, secrets)
    out = tmp_path / "jks"
    r = run(
        store,
        "deploy",
        "web",
        "--format",
        "jks",
        "--out",
        str(out),
        "--passphrase-file",
        secrets["key"],
        "--password-file",
        secrets["pfx"],
    )
    assert r.exit_code == 0, r.output
    listing = subprocess.run(
        ["keytool", "-list", "-keystore", str(out / "web.jks"), "-storepass", "pfx-pass"],
        capture_output=True,
        timeout=60,
    )
    assert listing.returncode == 0 and b"PrivateKeyEntry" in listing.stdout


def ecert_main(store: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`ecert` as installed (through main(), where usage errors are turned into one line)."""
    return subprocess.run(
        [sys.executable, "-m", "ecert.cli.subscriber", "--store", str(store), *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        env={"NO_COLOR": "1", "PATH": "/usr/bin:/bin"},
    )


@pytest.mark.parametrize(
    ("args", "code", "line"),
    [
        (["deploy", "web", "--format", "bogus", "--out", "x"], 2, "error: Invalid value for '--format'"),
        (["nosuch"], 2, "error: No such command 'nosuch'. (see 'ecert --help')"),
        (["verify"], 2, "error: Missing argument 'target'. (see 'ecert verify --help')"),
        (["verify", "web"], 1, "error: no certificate named 'web'"),
        (
            ["request", "new", "w", "-n", "www.example.com"],
            1,
            "error: cannot ask for the key passphrase: input is not a terminal; pass it with --passphrase-file",
        ),
        (["request", "new", "w", "-n", "bad name!", "--no-encrypt"], 1, "error: 'bad name!' contains a space"),
    ],
    ids=["bad-choice", "unknown-command", "missing-argument", "unknown-name", "no-tty-prompt", "bad-host-name"],
)
def test_errors_are_one_line_with_the_documented_exit_code(tmp_path: Path, args, code: int, line: str) -> None:
    r = ecert_main(tmp_path / "s", *args)
    assert r.returncode == code
    [only] = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert only.startswith(line) and "Traceback" not in r.stderr


def _command_paths() -> list[list[str]]:
    import typer

    def walk(cmd, path: list[str]) -> list[list[str]]:
        subs = getattr(cmd, "commands", {})
        return [path] + [p for name, sub in sorted(subs.items()) for p in walk(sub, [*path, name])]

    return walk(typer.main.get_command(app), [])


@pytest.mark.parametrize("path", _command_paths(), ids=lambda p: " ".join(p) or "ecert")
def test_every_command_has_help_that_exits_0(path: list[str]) -> None:
    r = CliRunner().invoke(app, [*path, "--help"], env={"NO_COLOR": "1", "COLUMNS": "100"})
    assert r.exit_code == 0
    usage, _, rest = r.output.strip().partition("\n")
    assert usage.startswith("Usage: ") and len(rest.split()) > 5  # a sentence of help, not just the usage line
    assert "<bool>" not in r.output and "--no-force" not in r.output  # flags read as flags


def test_list_shows_the_store_name_of_an_imported_backup(tmp_path: Path, pki: TestPKI, secrets) -> None:
    store, _ = issued_store(tmp_path, pki, secrets)
    pfx = tmp_path / "b.pfx"
    args = ["--password-file", secrets["pfx"], "--passphrase-file", secrets["key"]]
    assert run(store, "export", "web", "--pfx", str(pfx), *args).exit_code == 0
    assert run(store, "import", str(pfx), "--name", "legacy", *args).exit_code == 0
    r = run(store, "list")
    assert r.exit_code == 0, r.output
    cells = [ln.split("│")[1:3] for ln in r.output.splitlines() if ln.startswith("│")]
    rows = [(name.strip(), friendly.strip()) for name, friendly in cells if name.strip()]  # skip wrapped lines
    assert rows == [("legacy", "web"), ("web", "web")]  # the store names every command takes, and the friendly ones
    entries = json.loads(run(store, "--json", "list").output)["entries"]
    assert [(e["name"], e["friendly_name"]) for e in entries] == [("legacy", "web"), ("web", "web")]


@pytest.mark.parametrize(
    ("args", "what", "option"),
    [
        (["request", "new", "w2", "-n", HOST], "key passphrase", "--passphrase-file"),
        (["export", "web", "--pfx", "OUT/b.pfx"], "pfx password", "--password-file"),
        (["import", "OUT/any.pfx"], "pfx password", "--password-file"),
        (["request", "submit", "w3", "--reference", "1", "--ca-url", "http://127.0.0.1:9"], "pin", "--pin-file"),
        (["deploy", "web", "--format", "pfx", "--out", "OUT/d"], "keystore password", "--password-file"),
    ],
    ids=["request-new", "export", "import", "submit", "deploy-pfx"],
)
def test_secret_prompt_without_a_terminal_is_one_clean_line(
    tmp_path: Path, pki: TestPKI, args: list[str], what: str, option: str
) -> None:
    store = tmp_path / "s"
    for name in ("web", "w3"):
        assert run(store, "request", "new", name, "--name", HOST, "--key-type", "p256", "--no-encrypt").exit_code == 0
    csr = x509.load_pem_x509_csr((store / "pending/web/request.csr").read_bytes())
    (tmp_path / "c.pem").write_bytes(pki.pem(pki.issue(csr, [HOST]), pki.sub))
    (tmp_path / "root.pem").write_bytes(pki.pem(pki.root))
    assert run(store, "ca", "install", str(tmp_path / "root.pem")).exit_code == 0
    assert run(store, "request", "complete", str(tmp_path / "c.pem")).exit_code == 0
    (tmp_path / "any.pfx").write_bytes(b"not read before the password")
    r = ecert_main(store, *[a.replace("OUT", str(tmp_path)) for a in args])
    assert r.returncode == 1
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert lines == [f"error: cannot ask for the {what}: input is not a terminal; pass it with {option}"]
    assert "GetPassWarning" not in r.stderr and "echoed" not in r.stderr


def test_store_option_works_after_the_subcommand(tmp_path: Path, pki: TestPKI, secrets) -> None:
    """Issue 10 point 17: `ecert list --store DIR` reads DIR, as `ecert --store DIR list` does."""
    store, _ = issued_store(tmp_path, pki, secrets)
    r = CliRunner().invoke(app, ["list", "--store", str(store), "--json"], env={"NO_COLOR": "1"})
    assert r.exit_code == 0, r.output
    assert [e["name"] for e in json.loads(r.output)["entries"]] == ["web"]
    r = CliRunner().invoke(app, ["ca", "list", "--json", "--store", str(store)], env={"NO_COLOR": "1"})
    assert r.exit_code == 0, r.output
    assert [c["root"] for c in json.loads(r.output)["cas"]].count(True) == 1


def test_import_of_a_certificate_without_sans_says_so(tmp_path: Path, pki: TestPKI, secrets) -> None:
    from cryptography.hazmat.primitives.serialization import pkcs12

    from tests.unit.test_client_pki import _ca_cert, _name

    key = ec.generate_private_key(ec.SECP256R1())
    cert = _ca_cert(_name("no-san.example.com"), key, pki.sub.subject, pki.sub_key, datetime.now(UTC), 30)
    pfx = pkcs12.serialize_key_and_certificates(
        b"nosan", key, cert, None, serialization.BestAvailableEncryption(b"pfx-pass")
    )
    (tmp_path / "nosan.pfx").write_bytes(pfx)
    r = run(tmp_path / "s", "import", str(tmp_path / "nosan.pfx"), "--password-file", secrets["pfx"], "--no-encrypt")
    assert r.exit_code == 0, r.output
    assert "Imported nosan (version 1): no DNS names in the certificate" in r.output
    assert ": \n" not in r.output
