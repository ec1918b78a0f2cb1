"""`ecert` against the real CA: the REST API under uvicorn on 127.0.0.1, DCV through Knot DNS, a web root
served by `python -m http.server`, e-mail codes through the aiosmtpd sink, and the result served by nginx.

Issue 6's first check: from a clean store, request new -> submit (file DCV) -> verify -> export -> import into
a second store -> deploy nginx -> nginx serves it and openssl s_client and Python's ssl accept it. The DNS
hook and e-mail DCV paths of `submit` go through the same service.
"""

from __future__ import annotations

import re
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography import x509

from ecert.core.profiles import CertType
from ecert.services.applications import ApplicationInput, RegisteredApplication, register_application
from ecert.services.context import Context
from ecert.web.app import create_app
from tests.integration.ca_fixtures import DEMO_ENV
from tests.integration.dcv_fixtures import KnotDns, SmtpSink, free_port, start_asgi
from tests.integration.test_client_cli import run
from tests.integration.test_client_nginx import _wait_listening, nginx_serving, openssl_s_client, python_ssl_peer

ENV = {**DEMO_ENV, "ECERT_SESSION_SECRET": "s" * 48}
ROOT_LABEL = "demo-root-ca-1"
WAIT = 60  # seconds any one CLI process may take


@pytest.fixture
def webroot(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """A web root served by `python -m http.server` on a free loopback port: (directory, port)."""
    root = tmp_path / "www"
    root.mkdir()
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(root)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_listening(port, proc, "http.server")
        yield root, port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@dataclass
class RealCA:
    """The CA service on loopback and the handles a test needs to play the RA and the DNS operator."""

    url: str
    ctx: Context
    knot: KnotDns
    smtp: SmtpSink

    def register(self, host: str) -> RegisteredApplication:
        """The RA's step: an approved application for ``host`` (its name resolves to 127.0.0.1)."""
        self.knot.set_records(host, "A", ["127.0.0.1"])
        data = ApplicationInput(
            server_name=host,
            cert_type=CertType.SERVER,
            org_name_en="Example Company Limited",
            reg_doc_type="br",
            reg_doc_number="12345678",
            subscription_years=1,
            rep_email="webmaster@example.com",
        )
        return register_application(self.ctx, data, actor="operator:test")


@pytest.fixture
def real_ca(
    make_demo_ctx: Callable[..., Context],
    knot_dns: KnotDns,
    smtp_sink: SmtpSink,
    webroot: tuple[Path, int],
) -> Iterator[RealCA]:
    ctx = make_demo_ctx(
        dns_resolvers=(knot_dns.resolver_addr,),
        allow_private_addresses=True,
        http_port=webroot[1],
        smtp_host="127.0.0.1",
        smtp_port=smtp_sink.port,
        smtp_port_for_dcv=smtp_sink.port,
    )
    running = start_asgi(create_app(ctx.settings, ENV, context=ctx))
    try:
        yield RealCA(running.url, ctx, knot_dns, smtp_sink)
    finally:
        running.stop()


def new_host() -> str:
    return f"rt{uuid.uuid4().hex[:10]}.example.com"


def ecert(store: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """The real `ecert` command in its own process (what a script on the server would run)."""
    return subprocess.run(
        [sys.executable, "-m", "ecert.cli.subscriber", "--store", str(store), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=WAIT,
        env={"NO_COLOR": "1", "PATH": "/usr/bin:/bin"},
    )


def secret(tmp_path: Path, name: str, value: str) -> str:
    path = tmp_path / name
    path.write_text(value + "\n")
    path.chmod(0o600)
    return str(path)


def fetch_root(ca: RealCA, dest: Path) -> Path:
    resp = httpx.get(f"{ca.url}/repository/ca/{ROOT_LABEL}.pem", timeout=10, trust_env=False)
    assert resp.status_code == 200
    dest.write_bytes(resp.content)
    return dest


def test_round_trip_against_the_real_service(tmp_path: Path, real_ca: RealCA, webroot: tuple[Path, int]) -> None:
    host, (www, _) = new_host(), webroot
    reg = real_ca.register(host)
    store, store2, out = tmp_path / "store", tmp_path / "store2", tmp_path / "deploy"
    keypass = secret(tmp_path, "keypass", "key-pass")
    keypass2 = secret(tmp_path, "keypass2", "another-key-pass")
    pfxpw = secret(tmp_path, "pfxpw", "pfx-pass")
    pin = secret(tmp_path, "pin", reg.pin)

    r = run(store, "request", "new", "web", "--name", host, "--key-type", "p256", "--passphrase-file", keypass)
    assert r.exit_code == 0, r.output

    done = ecert(
        store, "request", "submit", "web", "--reference", reg.reference_number, "--ca-url", real_ca.url,
        "--webroot", str(www), "--pin-file", pin, "--yes",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert reg.pin not in done.stdout + done.stderr
    assert (www / ".well-known/pki-validation/fileauth.txt").is_file()
    assert (store / "live/web/cert.pem").is_file() and not (store / "pending/web").exists()
    assert not any(reg.pin in p.read_text(errors="ignore") for p in store.rglob("*") if p.is_file())

    root = fetch_root(real_ca, tmp_path / "root.pem")
    assert run(store, "ca", "install", str(root)).exit_code == 0
    r = run(store, "verify", "web", "--hostname", host)
    assert r.exit_code == 0, r.output
    assert f"valid for {host}" in r.output

    pfx = tmp_path / "web.pfx"
    r = run(store, "export", "web", "--pfx", str(pfx), "--password-file", pfxpw, "--passphrase-file", keypass)
    assert r.exit_code == 0, r.output
    r = run(store2, "import", str(pfx), "--password-file", pfxpw, "--passphrase-file", keypass2)
    assert r.exit_code == 0, r.output
    r = run(store2, "deploy", "web", "--format", "nginx", "--out", str(out), "--passphrase-file", keypass2)
    assert r.exit_code == 0, r.output
    assert stat.S_IMODE((out / "privkey.pem").stat().st_mode) == 0o600

    with nginx_serving(tmp_path / "nginx", out / "fullchain.pem", out / "privkey.pem", host) as port:
        s_client = openssl_s_client(port, host, root)
        assert s_client.returncode == 0, s_client.stdout[-500:] + s_client.stderr[-500:]
        assert b"Verify return code: 0 (ok)" in s_client.stdout
        assert python_ssl_peer(port, host, root)["subjectAltName"] == (("DNS", host),)


def _hook(tmp_path: Path, knot: KnotDns) -> Path:
    """A DNS hook as an administrator would write it: `HOOK add NAME VALUE` -> knsupdate to the zone's server."""
    hook = tmp_path / "dns-hook.sh"
    hook.write_text(
        "#!/bin/sh\nset -e\n"
        '[ "$1" = add ] || { echo "unknown action $1" >&2; exit 2; }\n'
        f"printf 'server 127.0.0.1 {knot.port}\\nzone example.com.\\nupdate add %s. 0 TXT \"%s\"\\nsend\\nquit\\n' "
        '"$2" "$3" | knsupdate\n'
        f'echo "$2 $3" >> {tmp_path}/hook.log\n'
    )
    hook.chmod(0o755)
    return hook


def test_submit_with_dns_hook_against_the_real_service(tmp_path: Path, real_ca: RealCA) -> None:
    host = new_host()
    reg = real_ca.register(host)
    store = tmp_path / "store"
    assert run(store, "request", "new", "web", "--name", host, "--key-type", "p256", "--no-encrypt").exit_code == 0
    done = ecert(
        store, "request", "submit", "web", "--reference", reg.reference_number, "--ca-url", real_ca.url,
        "--method", "dns_txt", "--dns-hook", str(_hook(tmp_path, real_ca.knot)), "--pin-file", "-", "--yes",
        stdin=reg.pin + "\n",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    [logged] = (tmp_path / "hook.log").read_text().splitlines()
    assert logged.split()[0].endswith(host)  # the hook published the TXT record the CA asked for
    assert (store / "live/web/fullchain.pem").is_file()


def test_submit_with_failing_dns_hook_says_so_and_keeps_the_request(tmp_path: Path, real_ca: RealCA) -> None:
    host = new_host()
    reg = real_ca.register(host)
    store = tmp_path / "store"
    hook = tmp_path / "broken-hook.sh"
    hook.write_text("#!/bin/sh\necho 'zone update refused' >&2\nexit 1\n")
    hook.chmod(0o755)
    run(store, "request", "new", "web", "--name", host, "--key-type", "p256", "--no-encrypt")
    done = ecert(
        store, "request", "submit", "web", "--reference", reg.reference_number, "--ca-url", real_ca.url,
        "--method", "dns_txt", "--dns-hook", str(hook), "--pin-file", "-", "--yes", stdin=reg.pin + "\n",
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == f"error: the DNS hook failed for {host}: zone update refused"
    assert (store / "pending/web").is_dir()


def test_submit_with_email_code_against_the_real_service(tmp_path: Path, real_ca: RealCA) -> None:
    host = new_host()
    reg = real_ca.register(host)
    store = tmp_path / "store"
    assert run(store, "request", "new", "web", "--name", host, "--key-type", "p256", "--no-encrypt").exit_code == 0
    pin = secret(tmp_path, "pin", reg.pin)
    before = len(real_ca.smtp.messages)
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "ecert.cli.subscriber", "--store", str(store), "request", "submit", "web",
            "--reference", reg.reference_number, "--ca-url", real_ca.url, "--method", "email",
            "--email-local-part", "webmaster", "--pin-file", pin, "--yes",
        ],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={"NO_COLOR": "1", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + WAIT
        while len(real_ca.smtp.messages) == before:  # the person reads the mail...
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "no validation e-mail reached the sink"
            time.sleep(0.05)
        mail = real_ca.smtp.messages[-1]
        assert mail["to"] == [f"webmaster@{host}"]
        code = re.search(r"Validation Code: (\S+)", mail["content"]).group(1)  # type: ignore[union-attr]
        out, err = proc.communicate(code + "\n", timeout=WAIT)  # ...and types the code at the prompt
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
    assert proc.returncode == 0, err
    assert "Validation code from the e-mail" in out
    leaf = x509.load_pem_x509_certificate((store / "live/web/cert.pem").read_bytes())
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [host]


def test_submit_with_wrong_email_code_exits_3_and_keeps_the_request(tmp_path: Path, real_ca: RealCA) -> None:
    host = new_host()
    reg = real_ca.register(host)
    store = tmp_path / "store"
    run(store, "request", "new", "web", "--name", host, "--key-type", "p256", "--no-encrypt")
    done = ecert(
        store, "request", "submit", "web", "--reference", reg.reference_number, "--ca-url", real_ca.url,
        "--method", "email", "--email-local-part", "admin", "--pin-file", secret(tmp_path, "pin", reg.pin),
        "--max-wait", "0", "--yes", stdin="not-the-code\n",
    )  # fmt: skip
    assert done.returncode == 3, done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("error: domain control not confirmed yet")
    assert (store / "pending/web").is_dir()


def test_submit_with_wrong_pin_is_refused_by_the_real_service(tmp_path: Path, real_ca: RealCA) -> None:
    host = new_host()
    reg = real_ca.register(host)
    store = tmp_path / "store"
    run(store, "request", "new", "web", "--name", host, "--key-type", "p256", "--no-encrypt")
    wrong = "1" * 16 if reg.pin != "1" * 16 else "2" * 16
    done = ecert(
        store, "request", "submit", "web", "--reference", reg.reference_number, "--ca-url", real_ca.url,
        "--webroot", str(tmp_path / "www"), "--pin-file", "-", "--yes", stdin=wrong + "\n",
    )  # fmt: skip
    assert done.returncode == 1
    [line] = done.stderr.strip().splitlines()[-1:]
    assert line.startswith("error: the CA said:") and "(HTTP 401)" in line
    assert wrong not in done.stdout + done.stderr


def _page_fingerprints(html: str) -> list[str]:
    """The CA certificates' SHA-256 on the CA Certificates page (CRL fingerprints change with each CRL)."""
    return re.findall(r'<td class="fingerprint"><code class="sha256">([0-9A-F:]{95})</code>', html)


def test_ca_fetch_then_verify_passes_against_the_real_service(
    tmp_path: Path, real_ca: RealCA, webroot: tuple[Path, int]
) -> None:
    """Issue 10 point 14: one command installs roots, chain, CRL and ARL; then `ecert verify` passes."""
    host, (www, _) = new_host(), webroot
    reg = real_ca.register(host)
    store = tmp_path / "store"
    assert run(store, "request", "new", "web", "--name", host, "--key-type", "p256", "--no-encrypt").exit_code == 0
    done = ecert(
        store, "request", "submit", "web", "--reference", reg.reference_number, "--ca-url", real_ca.url,
        "--webroot", str(www), "--pin-file", secret(tmp_path, "pin", reg.pin), "--yes",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "no trusted root" in ecert(store, "verify", "web").stderr  # what the issue saw before

    page = httpx.get(f"{real_ca.url}/repository/", timeout=10, trust_env=False).text
    prints = _page_fingerprints(page)
    assert len(prints) == 4, "the CA Certificates page shows no SHA-256 for root, cross, OV and EV CA"
    assert len(re.findall(r'class="crl-fingerprint">', page)) == 3  # the ARL and each issuing CA's CRL
    root_print = prints[0]  # roots are listed first

    wrong = ecert(store, "ca", "fetch", f"{real_ca.url}/repository/", "--root-sha256", "00" * 32)
    assert wrong.returncode == 1 and "not a fingerprint you gave" in wrong.stderr
    assert not list((store / "ca/roots").glob("*.pem")) if (store / "ca/roots").exists() else True

    fetched = ecert(store, "ca", "fetch", f"{real_ca.url}/repository/", "--root-sha256", root_print)
    assert fetched.returncode == 0, fetched.stderr
    for fingerprint in prints:  # every fingerprint on the page is shown by the tool, for the person to compare
        assert fingerprint in fetched.stdout.replace("\n", "")
    assert len(list((store / "crl").glob("*.crl"))) >= 2  # the issuing CA's CRL and the root's ARL

    verified = ecert(store, "verify", "web", "--hostname", host)
    assert verified.returncode == 0, verified.stderr
    assert f"valid for {host}" in verified.stdout

    index = httpx.get(f"{real_ca.url}/repository/index.json", timeout=10, trust_env=False).json()
    assert {c["role"] for c in index["certificates"]} >= {"root", "ov"}
    assert {c["kind"] for c in index["crls"]} == {"crl", "arl"}
