"""`ecert deploy` for Apache, plain PEM and PFX: the files each server takes, their modes, contents and
chain order; Debian's Apache httpd serves the Apache files on loopback and openssl accepts them."""

from __future__ import annotations

import json
import re
import stat
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.integration.test_client_cli import HOST, issued_store, run
from tests.integration.test_client_nginx import _free_port, _wait_listening, openssl_s_client, python_ssl_peer
from tests.unit.test_client_pki import TestPKI

APACHE = "/usr/sbin/apache2"
MODULES = Path("/usr/lib/apache2/modules")

# format -> {file: mode}; key-bearing files are 0600, the rest 0644.
EXPECTED: dict[str, dict[str, int]] = {
    "apache": {"cert.pem": 0o644, "chain.pem": 0o644, "fullchain.pem": 0o644, "privkey.pem": 0o600},
    "pem": {"cert.pem": 0o644, "chain.pem": 0o644, "fullchain.pem": 0o644, "privkey.pem": 0o600},
    "pfx": {"web.pfx": 0o600},
}


def deploy(tmp_path: Path, pki: TestPKI, secrets: dict[str, str], fmt: str, *extra: str) -> tuple[Path, dict]:
    store, _ = issued_store(tmp_path, pki, secrets)
    out = tmp_path / f"out-{fmt}"
    r = run(
        store, "--json", "deploy", "web", "--format", fmt, "--out", str(out),
        "--passphrase-file", secrets["key"], "--password-file", secrets["pfx"], *extra,
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    return out, json.loads(r.output)


def certs_in(path: Path) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(path.read_bytes())


@pytest.mark.parametrize("fmt", sorted(EXPECTED))
def test_deploy_writes_exactly_the_expected_files_with_safe_modes(tmp_path: Path, pki, secrets, fmt: str) -> None:
    out, result = deploy(tmp_path, pki, secrets, fmt)
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in out.iterdir()} == EXPECTED[fmt]
    assert sorted(Path(p).name for p in result["files"]) == sorted(EXPECTED[fmt])
    assert stat.S_IMODE(out.stat().st_mode) == 0o700


@pytest.mark.parametrize("fmt", ["apache", "pem"])
def test_pem_files_parse_and_the_chain_is_in_order(tmp_path: Path, pki, secrets, fmt: str) -> None:
    out, result = deploy(tmp_path, pki, secrets, fmt)
    [leaf] = certs_in(out / "cert.pem")
    chain, full = certs_in(out / "chain.pem"), certs_in(out / "fullchain.pem")
    assert full == [leaf, *chain] and chain == [pki.sub]  # leaf first, then its issuer; the root is left out
    for child, parent in zip(full, full[1:], strict=False):
        child.verify_directly_issued_by(parent)
    key = serialization.load_pem_private_key((out / "privkey.pem").read_bytes(), password=None)
    assert key.public_key() == leaf.public_key()
    assert result["via_cross"] is False


def test_apache_snippet_names_the_files_it_wrote(tmp_path: Path, pki, secrets) -> None:
    store, _ = issued_store(tmp_path, pki, secrets)
    out = tmp_path / "apache"
    r = run(store, "deploy", "web", "--format", "apache", "--out", str(out), "--passphrase-file", secrets["key"])
    assert r.exit_code == 0, r.output
    assert f"SSLCertificateFile    {out / 'fullchain.pem'}" in r.output
    assert f"SSLCertificateKeyFile {out / 'privkey.pem'}" in r.output


@pytest.mark.parametrize(("legacy", "openssl_flags"), [(False, []), (True, ["-legacy"])], ids=["aes256", "legacy"])
def test_pfx_opens_with_openssl_and_holds_key_cert_and_chain(
    tmp_path: Path,
    pki,
    secrets,
    legacy: bool,
    openssl_flags: list[str],
) -> None:
    out, _ = deploy(tmp_path, pki, secrets, "pfx", *(["--legacy"] if legacy else []))
    pfx = str(out / "web.pfx")
    info = subprocess.run(
        ["openssl", "pkcs12", "-info", "-nokeys", "-in", pfx, "-passin", "pass:pfx-pass", *openssl_flags],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert info.returncode == 0, info.stderr
    subjects = re.findall(r"^subject=(.*)$", info.stdout, re.M)
    assert len(subjects) == 2 and "www.example.com" in subjects[0]  # leaf, then the issuing CA
    algorithm = "pbeWithSHA1And3-KeyTripleDES-CBC" if legacy else "PBES2, PBKDF2, AES-256-CBC"
    assert algorithm in info.stderr + info.stdout
    wrong = subprocess.run(
        ["openssl", "pkcs12", "-info", "-nokeys", "-in", pfx, "-passin", "pass:wrong", *openssl_flags],
        capture_output=True, timeout=30,
    )  # fmt: skip
    assert wrong.returncode != 0


@contextmanager
def apache_serving(root: Path, fullchain: Path, key: Path, host: str) -> Iterator[int]:
    """Debian's Apache httpd with mod_ssl in a private ServerRoot on a free 127.0.0.1 port."""
    root.mkdir(parents=True)
    port = _free_port()
    modules = ["mpm_event", "authz_core", "socache_shmcb", "ssl"]
    conf = root / "httpd.conf"
    conf.write_text(
        f'ServerRoot "{root}"\nDefaultRuntimeDir "{root}"\nPidFile "{root}/httpd.pid"\n'
        f'ErrorLog "{root}/error.log"\nLogLevel warn\nServerName {host}\nUser nobody\nGroup nogroup\n'
        + "".join(f"LoadModule {m}_module {MODULES}/mod_{m}.so\n" for m in modules)
        + f"Listen 127.0.0.1:{port} https\nSSLSessionCache shmcb:{root}/ssl_cache(512000)\n"
        f'DocumentRoot "{root}"\n'
        f"<VirtualHost 127.0.0.1:{port}>\n  ServerName {host}\n  SSLEngine on\n"
        f"  SSLCertificateFile {fullchain}\n  SSLCertificateKeyFile {key}\n</VirtualHost>\n"
    )
    proc = subprocess.Popen([APACHE, "-f", str(conf), "-DFOREGROUND"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait_listening(port, proc, "apache2")
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def test_apache_serves_the_deployed_files(tmp_path: Path, pki, secrets) -> None:
    out, _ = deploy(tmp_path, pki, secrets, "apache")
    (tmp_path / "root.pem").write_bytes(pki.pem(pki.root))
    with apache_serving(tmp_path / "httpd", out / "fullchain.pem", out / "privkey.pem", HOST) as port:
        r = openssl_s_client(port, HOST, tmp_path / "root.pem")
        assert r.returncode == 0, r.stdout[-500:] + r.stderr[-500:]
        assert b"Verify return code: 0 (ok)" in r.stdout
        assert python_ssl_peer(port, HOST, tmp_path / "root.pem")["subjectAltName"][0] == ("DNS", HOST)
