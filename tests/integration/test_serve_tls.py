"""`ecert-ca serve --tls-cert --tls-key`: ACME, the portal and the API over HTTPS from the CA's own process.

RFC 8555 6.1 asks for HTTPS. Before these options, an operator who did not know to put a TLS proxy in front
served ACME over plain HTTP, and certbot refused it or, worse, was told to accept it.
"""

from __future__ import annotations

import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.dcv_fixtures import free_port
from tests.integration.test_serve_workers import serve_env, stop
from tests.interop.acme_interop import tls_material

ECERT_CA = Path(sys.executable).with_name("ecert-ca")


def _env(tmp_path: Path) -> dict[str, str]:
    return serve_env(tmp_path, ECERT_ACME_EAB_SECRET="serve-tls-test-eab-secret")


def _trusting(root: Path) -> ssl.SSLContext:
    """What a client that trusts only the test's throwaway root verifies with."""
    return ssl.create_default_context(cafile=str(root))


def _wait_ready(url: str, root: Path, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else "serve exited"
        try:
            if httpx.get(url, timeout=2, verify=_trusting(root)).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError("serve never answered over HTTPS")


@pytest.fixture
def served_tls(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root, cert, key = tls_material(tmp_path)
    port = free_port()
    args = ["serve", "--demo", "--port", str(port), "--tls-cert", str(cert), "--tls-key", str(key)]
    proc = subprocess.Popen(
        [str(ECERT_CA), *args], env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        base = f"https://127.0.0.1:{port}"
        _wait_ready(f"{base}/acme/directory", root, proc)
        yield base, root
    finally:
        stop(proc)


def test_acme_is_served_over_https_and_names_https_urls(served_tls: tuple[str, Path]) -> None:
    base, root = served_tls
    directory = httpx.get(f"{base}/acme/directory", verify=_trusting(root)).json()
    assert all(url.startswith(f"{base}/") for key, url in directory.items() if key != "meta")
    nonce = httpx.head(directory["newNonce"], verify=_trusting(root))
    assert nonce.status_code == 200 and nonce.headers["Replay-Nonce"]


def test_plain_http_on_the_tls_port_gets_no_page(served_tls: tuple[str, Path]) -> None:
    base, _ = served_tls
    with pytest.raises(httpx.HTTPError):
        httpx.get(base.replace("https://", "http://") + "/acme/directory", timeout=5)


def test_a_certificate_without_its_key_is_refused_before_anything_starts(tmp_path: Path) -> None:
    _, cert, _ = tls_material(tmp_path)
    done = subprocess.run(
        [str(ECERT_CA), "serve", "--port", str(free_port()), "--tls-cert", str(cert)],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "give --tls-cert and --tls-key together" in done.stdout + done.stderr
    assert not (tmp_path / "data").exists()  # nothing made: refused before the database was touched
