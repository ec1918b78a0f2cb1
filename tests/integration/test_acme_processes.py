"""Two real ``ecert-ca serve`` processes on one PostgreSQL database, as two hosts behind one name would be:
a nonce from one is good on the other, an account made on one signs on the other, and a rate limit counted
on one holds on the other.

Both answer for one public name (the client sends it as Host), as a load balancer in front of them would
arrange; the account URLs and the JWS ``url`` then agree whichever process answers.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from ecert.services.context import Context, build_context
from ecert.settings import Settings
from tests.integration.acme_fixtures import EAB_SECRET, Client, add_application, assert_refused, new_eab, nonce_of

ECERT_CA = Path(sys.executable).with_name("ecert-ca")
PUBLIC = "http://acme.ecert.test"  # the one name both processes answer for


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Process:
    port: int
    proc: subprocess.Popen[bytes]

    def send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Host": PUBLIC.split("//", 1)[1], **kwargs.pop("headers", {})}
        url = f"http://127.0.0.1:{self.port}{path}"
        return httpx.request(method, url, headers=headers, timeout=15, trust_env=False, **kwargs)

    def nonce(self) -> str:
        return self.send("HEAD", "/acme/new-nonce").headers["Replay-Nonce"]

    def post(self, path: str, jws: dict[str, Any]) -> httpx.Response:
        import json

        return self.send(
            "POST", path, content=json.dumps(jws).encode(), headers={"Content-Type": "application/jose+json"}
        )


def _wait_ready(process: Process, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.proc.poll() is not None:
            out = process.proc.stdout.read().decode() if process.proc.stdout else ""
            raise AssertionError(f"serve exited: {out[-3000:]}")
        try:
            if process.send("GET", "/acme/directory").status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError("serve never answered")


def _env(data_dir: Path, database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECERT_")}
    env.update(
        {
            "ECERT_DATA_DIR": str(data_dir),
            "ECERT_DATABASE_URL": database_url,
            "ECERT_JOBS": "off",
            "ECERT_SMTP_PORT": "9",
            "ECERT_KEY_PASSPHRASE": "processes-test-passphrase",
            "ECERT_SESSION_SECRET": "processes-test-session",
            "ECERT_ACME_EAB_SECRET": EAB_SECRET,
            "ECERT_ACME_NEW_ACCOUNTS_PER_IP": "2",
        }
    )
    return env


def _start(env: dict[str, str]) -> Process:
    port = _free_port()
    proc = subprocess.Popen(
        [str(ECERT_CA), "serve", "--demo", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    process = Process(port, proc)
    try:
        _wait_ready(process)
    except BaseException:
        proc.kill()
        proc.wait(timeout=10)
        raise
    return process


@pytest.fixture
def two_processes(tmp_path: Path, pg_url: str) -> Iterator[tuple[Process, Process, Context]]:
    """Two serve processes, one after the other (the first makes the demo hierarchy), and a context on the
    same database for the operator's side (EAB credentials)."""
    env = _env(tmp_path / "data", pg_url)
    started: list[Process] = []
    ctx = build_context(Settings(data_dir=tmp_path / "data", database_url=pg_url), env, migrate=False)
    try:
        started.append(_start(env))
        started.append(_start(env))
        yield started[0], started[1], ctx
    finally:
        for process in started:
            process.proc.terminate()
            try:
                process.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.proc.kill()
        ctx.close()


def _new_account(client: Client, made: Any, nonce: str) -> dict[str, Any]:
    url = f"{PUBLIC}/acme/new-account"
    return client.jws(url, client.new_account_body(made), nonce=nonce)


def test_nonce_from_one_process_is_good_on_the_other_and_the_limit_is_shared(
    two_processes: tuple[Process, Process, Context],
) -> None:
    a, b, ctx = two_processes
    client = Client(PUBLIC)
    # newAccount: the nonce from A, the request to B
    response = b.post("/acme/new-account", _new_account(client, new_eab(ctx, add_application(ctx)), a.nonce()))
    assert response.status_code == 201, response.text
    kid = response.headers["Location"]
    assert kid.startswith(f"{PUBLIC}/acme/acct/")
    client.kid = kid
    # the account made on B signs on A, with a nonce B handed out
    path = kid.removeprefix(PUBLIC)
    read = a.post(path, client.jws(kid, None, nonce=b.nonce()))
    assert read.status_code == 200, read.text
    assert read.json()["status"] == "valid"
    # a nonce used on A is spent for B too
    nonce = a.nonce()
    assert a.post(path, client.jws(kid, None, nonce=nonce)).status_code == 200
    replay = client.jws(kid, None, nonce=nonce)
    assert_refused(b.post(path, replay), 400, "badNonce", nonce_of(replay))
    # new accounts per address (2 here): one more on A, then B refuses the third
    second = Client(PUBLIC)
    assert a.post("/acme/new-account", _new_account(second, new_eab(ctx), b.nonce())).status_code == 201
    third = Client(PUBLIC)
    body = _new_account(third, new_eab(ctx), a.nonce())
    refused = b.post("/acme/new-account", body)
    assert_refused(refused, 429, "rateLimited", nonce_of(body))
    assert int(refused.headers["Retry-After"]) > 0
