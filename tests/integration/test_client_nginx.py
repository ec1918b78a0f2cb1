"""Files from `ecert deploy --format nginx` served by Debian's nginx on loopback, accepted by
`openssl s_client -verify_return_error` and Python's ssl for the host name; then `ecert check` on it."""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.test_client_cli import HOST, issued_store, pki, run, secrets  # noqa: F401

NGINX = "/usr/sbin/nginx"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def served(tmp_path: Path, pki, secrets):  # noqa: F811
    store, leaf = issued_store(tmp_path, pki, secrets)
    out = tmp_path / "deploy"
    r = run(store, "deploy", "web", "--format", "nginx", "--out", str(out), "--passphrase-file", secrets["key"])
    assert r.exit_code == 0, r.output
    prefix = tmp_path / "nginx"
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
    server_name {HOST};
    ssl_certificate {out}/fullchain.pem;
    ssl_certificate_key {out}/privkey.pem;
    location / {{ return 200 "ok"; }}
  }}
}}
""")
    proc = subprocess.Popen(
        [NGINX, "-c", str(conf), "-p", str(prefix), "-g", "daemon off; user root;"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if proc.poll() is not None:
                pytest.fail(f"nginx exited: {proc.stderr.read().decode()}")
            time.sleep(0.05)
    (tmp_path / "root.pem").write_bytes(pki.pem(pki.root))
    try:
        yield store, port, tmp_path / "root.pem"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def test_openssl_s_client_accepts_the_served_chain(served) -> None:
    _, port, root = served
    r = subprocess.run(
        [
            "openssl",
            "s_client",
            "-connect",
            f"127.0.0.1:{port}",
            "-servername",
            HOST,
            "-verify_return_error",
            "-verify_hostname",
            HOST,
            "-CAfile",
            str(root),
        ],
        input=b"",
        capture_output=True,
        timeout=20,
    )
    assert r.returncode == 0, r.stdout[-500:] + r.stderr[-500:]
    assert b"Verify return code: 0 (ok)" in r.stdout


def test_python_ssl_accepts_it_for_the_host_name(served) -> None:
    _, port, root = served
    ctx = ssl.create_default_context(cafile=str(root))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname=HOST) as tls:
            assert tls.getpeercert()["subjectAltName"][0] == ("DNS", HOST)


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
