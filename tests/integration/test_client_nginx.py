"""Files from `ecert deploy --format nginx` served by Debian's nginx on loopback, accepted by
`openssl s_client -verify_return_error` and Python's ssl for the host name; then `ecert check` on it."""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.integration.test_client_cli import HOST, issued_store, run

NGINX = "/usr/sbin/nginx"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def nginx_serving(prefix: Path, fullchain: Path, key: Path, host: str) -> Iterator[int]:
    """Debian's nginx serving ``fullchain``/``key`` for ``host`` on a free 127.0.0.1 port; yields the port."""
    (prefix / "logs").mkdir(parents=True)
    port = _free_port()
    conf = prefix / "nginx.conf"
    conf.write_text(f"""
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log;
events {{ worker_connections 16; }}
http {{
  access_log off;
  client_body_temp_path {prefix}/tmp; proxy_temp_path {prefix}/tmp; fastcgi_temp_path {prefix}/tmp;
  uwsgi_temp_path {prefix}/tmp; scgi_temp_path {prefix}/tmp;
  server {{
    listen 127.0.0.1:{port} ssl;
    server_name {host};
    ssl_certificate {fullchain};
    ssl_certificate_key {key};
    location / {{ return 200 "ok"; }}
  }}
}}
""")
    proc = subprocess.Popen(
        [NGINX, "-c", str(conf), "-p", str(prefix), "-g", "daemon off; user root;"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_listening(port, proc, "nginx")
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def _wait_listening(port: int, proc: subprocess.Popen[bytes], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if proc.poll() is not None:
                err = proc.stderr.read().decode() if proc.stderr else ""
                pytest.fail(f"{what} exited: {err}")
            time.sleep(0.05)
    pytest.fail(f"{what} did not listen on 127.0.0.1:{port} within {timeout} s")


def openssl_s_client(port: int, host: str, root: Path) -> subprocess.CompletedProcess[bytes]:
    """``openssl s_client -verify_return_error`` against 127.0.0.1:port for ``host``, trusting ``root`` only."""
    return subprocess.run(
        [
            "openssl",
            "s_client",
            "-connect",
            f"127.0.0.1:{port}",
            "-servername",
            host,
            "-verify_return_error",
            "-verify_hostname",
            host,
            "-CAfile",
            str(root),
        ],
        input=b"",
        capture_output=True,
        timeout=20,
    )


def python_ssl_peer(port: int, host: str, root: Path) -> dict:
    """The peer certificate Python's ssl accepted for ``host`` (default context: chain + host name)."""
    ctx = ssl.create_default_context(cafile=str(root))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname=host) as tls:
            return tls.getpeercert()


@pytest.fixture
def served(tmp_path: Path, pki, secrets):
    store, leaf = issued_store(tmp_path, pki, secrets)
    out = tmp_path / "deploy"
    r = run(store, "deploy", "web", "--format", "nginx", "--out", str(out), "--passphrase-file", secrets["key"])
    assert r.exit_code == 0, r.output
    (tmp_path / "root.pem").write_bytes(pki.pem(pki.root))
    with nginx_serving(tmp_path / "nginx", out / "fullchain.pem", out / "privkey.pem", HOST) as port:
        yield store, port, tmp_path / "root.pem"


def test_openssl_s_client_accepts_the_served_chain(served) -> None:
    _, port, root = served
    r = openssl_s_client(port, HOST, root)
    assert r.returncode == 0, r.stdout[-500:] + r.stderr[-500:]
    assert b"Verify return code: 0 (ok)" in r.stdout


def test_python_ssl_accepts_it_for_the_host_name(served) -> None:
    _, port, root = served
    assert python_ssl_peer(port, HOST, root)["subjectAltName"][0] == ("DNS", HOST)


def test_ecert_check_reports_complete_chain_and_store_key(served) -> None:
    store, port, _ = served
    r = run(store, "--json", "check", f"https://127.0.0.1:{port}", "--servername", HOST)
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["in_order"] and out["complete"] and out["hostname_ok"] and out["verified"]
    assert out["store_match"] == "live/web"
    assert len(out["served"]) == 2


def test_ecert_check_on_wrong_name_exits_4(served) -> None:
    store, port, _ = served
    r = run(store, "check", f"https://127.0.0.1:{port}", "--servername", "other.example.org")
    assert r.exit_code == 4
    assert "DOES NOT MATCH" in r.output


def _snippet_paths(output: str, *directives: str) -> list[str]:
    """The file each config directive names, as the admin would paste it."""
    found = {}
    for line in output.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] in directives:
            found[parts[0]] = parts[1].rstrip(";")
    return [found[d] for d in directives]


def test_nginx_accepts_the_snippet_made_with_a_relative_out(tmp_path: Path, pki, secrets, monkeypatch) -> None:
    """Issue 10 point 17: nginx resolves a relative path against its prefix, so the snippet must be absolute."""
    store, _ = issued_store(tmp_path, pki, secrets)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    r = run(store, "deploy", "web", "--format", "nginx", "--out", "certs", "--passphrase-file", secrets["key"])
    assert r.exit_code == 0, r.output
    fullchain, key = _snippet_paths(r.output, "ssl_certificate", "ssl_certificate_key")
    assert fullchain == str(work / "certs/fullchain.pem") and key == str(work / "certs/privkey.pem")
    (tmp_path / "root.pem").write_bytes(pki.pem(pki.root))
    with nginx_serving(tmp_path / "nginx", Path(fullchain), Path(key), HOST) as port:
        s_client = openssl_s_client(port, HOST, tmp_path / "root.pem")
        assert b"Verify return code: 0 (ok)" in s_client.stdout


def test_apache_snippet_names_absolute_paths(tmp_path: Path, pki, secrets, monkeypatch) -> None:
    store, _ = issued_store(tmp_path, pki, secrets)
    monkeypatch.chdir(tmp_path)
    r = run(store, "deploy", "web", "--format", "apache", "--out", "apache", "--passphrase-file", secrets["key"])
    assert r.exit_code == 0, r.output
    paths = _snippet_paths(r.output, "SSLCertificateFile", "SSLCertificateKeyFile")
    assert paths == [str(tmp_path / "apache/fullchain.pem"), str(tmp_path / "apache/privkey.pem")]
