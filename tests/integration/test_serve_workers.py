"""`ecert-ca serve --workers 2`: two real worker processes on loopback share one login session.

The session cookie is signed; a per-process random key would make a cookie signed by one worker invalid at
the other. serve keeps one key in the data directory (0600) unless ECERT_SESSION_SECRET names one.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from ecert.services import applications as apps
from ecert.services.context import build_context
from ecert.settings import Settings
from tests.integration.dcv_fixtures import free_port
from tests.integration.test_applications import application_input

ECERT_CA = Path(sys.executable).with_name("ecert-ca")
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def serve_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of an ``ecert-ca serve`` under test: this test's data directory, no jobs, no mail."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECERT_")}
    env.update(
        {
            "ECERT_DATA_DIR": str(tmp_path / "data"),
            "ECERT_JOBS": "off",
            "ECERT_SMTP_PORT": "9",
            "ECERT_KEY_PASSPHRASE": "serve-test-passphrase",
            **extra,
        }
    )
    return env


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop a served process as an operator would (SIGTERM, then its shutdown), killing it only if it hangs."""
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def _worker_pids(parent: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == parent and b"spawn_main" in (stat.parent / "cmdline").read_bytes():
            found.append(int(stat.parent.name))  # uvicorn's workers, not multiprocessing's resource tracker
    return found


def _cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def _wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else "serve exited"
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError("serve never answered")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    return None if request.param == "sqlite" else str(request.getfixturevalue("pg_url"))


@contextmanager
def serving(env: dict[str, str], *, ready: str = "/portal/login") -> Iterator[tuple[str, int]]:
    """``ecert-ca serve --demo --workers 2`` on a free port until the block ends: its base URL and pid."""
    port = free_port()
    proc = subprocess.Popen(
        [str(ECERT_CA), "serve", "--demo", "--workers", "2", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_ready(f"{base}{ready}", proc)
        yield base, proc.pid
    finally:
        stop(proc)


@pytest.fixture
def served(tmp_path: Path, database_url: str | None) -> Iterator[tuple[str, Path, dict[str, str], int]]:
    env = serve_env(tmp_path)
    if database_url:
        env["ECERT_DATABASE_URL"] = database_url
    with serving(env) as (base, pid):
        yield base, tmp_path / "data", env, pid


def _register(data_dir: Path, env: dict[str, str]) -> tuple[str, apps.RegisteredApplication]:
    settings = Settings(data_dir=data_dir, database_url=env.get("ECERT_DATABASE_URL"), smtp_port=9)
    ctx = build_context(settings, env, migrate=False)
    try:
        host = f"w{uuid.uuid4().hex[:10]}.example.com"
        return host, apps.register_application(ctx, application_input(host, is_government=True), actor="test")
    finally:
        ctx.close()


def _log_in(base: str, host: str, reg: apps.RegisteredApplication) -> httpx.Cookies:
    with httpx.Client(base_url=base, timeout=10) as client:
        page = client.get("/portal/login")
        found = CSRF.search(page.text)
        assert found, page.text[:500]
        spaced = " ".join(reg.pin[i : i + 4] for i in range(0, 16, 4))
        done = client.post(
            "/portal/login",
            data={
                "csrf_token": found.group(1),
                "server_name": host,
                "reference_number": reg.reference_number,
                "pin": spaced,
            },
        )
        assert done.status_code == 303 and done.headers["location"] != "/portal/login", done.text[-2000:]
        return client.cookies


def test_a_session_from_one_worker_is_valid_on_both(served: tuple[str, Path, dict[str, str], int]) -> None:
    base, data_dir, env, parent = served
    workers = _worker_pids(parent)
    assert len(workers) == 2, workers
    host, reg = _register(data_dir, env)
    cookies = _log_in(base, host, reg)
    before = {pid: _cpu_ticks(pid) for pid in workers}
    pages = []
    for _ in range(60):  # a new connection each time: the kernel hands them to either worker
        with httpx.Client(base_url=base, cookies=cookies, timeout=10) as client:
            pages.append(client.get("/portal/confirm", follow_redirects=False))
    assert all(p.status_code == 200 for p in pages), {p.status_code for p in pages}
    assert all(host in p.text for p in pages)
    used = {pid: _cpu_ticks(pid) - before[pid] for pid in workers}
    assert all(ticks > 0 for ticks in used.values()), used  # both workers answered some of them


def test_serve_keeps_one_private_session_key_in_the_data_dir(served: tuple[str, Path, dict[str, str], int]) -> None:
    _base, data_dir, _env, _parent = served
    key = data_dir / "secrets" / "session-secret"
    assert key.stat().st_mode & 0o777 == 0o600
    assert len(key.read_text().strip()) >= 32
