"""The demo's stand-in resolver (scripts/demo_dns.py) gives ecert's own DNS and CAA code what a journey needs.

Issue 10 point 16: a ``--demo`` instance validates against loopback without settings hunted from the tests.
The resolver is started as demo.sh starts it (a subprocess on 127.0.0.1), and queried by the CA's real
``DnsClient`` and ``check_caa``: it must look recursive (RA set), permit issuance by CAA, resolve every name to
127.0.0.1 for the website method, and serve the TXT records ``demo_dns.py add`` writes.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ecert.validation.caa import check_caa
from ecert.validation.dns import DnsClient
from tests.integration.dcv_fixtures import free_port

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "demo_dns.py"


def _start(records: Path) -> tuple[subprocess.Popen[str], int]:
    """The demo DNS server on a free port; another port if the first was taken between choosing and binding
    (its first line is then a traceback, not the greeting)."""
    for _ in range(5):
        port = free_port()  # free for TCP and UDP: the server binds both
        proc = subprocess.Popen(
            [sys.executable, str(SCRIPT), "serve", "--port", str(port), "--records", str(records)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert proc.stdout is not None
        first = proc.stdout.readline()
        if "answering on 127.0.0.1" in first:
            return proc, port
        proc.kill()
        proc.wait(timeout=10)
    raise AssertionError(f"the demo DNS server did not start: {first}{proc.stdout.read()[-2000:]}")


@pytest.fixture
def demo_dns(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    records = tmp_path / "demo-dns.json"
    proc, port = _start(records)
    try:
        yield f"127.0.0.1:{port}", records
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_every_name_is_on_loopback_and_looks_recursively_resolved(demo_dns: tuple[str, Path]) -> None:
    client = DnsClient([demo_dns[0]])
    answer = client.lookup("www.shop-demo.example.com", "A")
    assert not answer.failed, answer.detail
    assert [str(r) for r in answer.records] == ["127.0.0.1"]


def test_caa_permits_issuance(demo_dns: tuple[str, Path]) -> None:
    decision = check_caa(
        DnsClient([demo_dns[0]]), "www.example.com", is_wildcard=False, issuer_domains=["ecert-demo.hk"]
    )
    assert decision.permitted, decision


def test_txt_records_added_by_the_hook_are_served_at_once(demo_dns: tuple[str, Path]) -> None:
    resolver, records = demo_dns
    name = "_pki-validation.www.example.com"
    subprocess.run([sys.executable, str(SCRIPT), "add", name, "code-123", "--records", str(records)], check=True)
    client = DnsClient([resolver])
    deadline = time.monotonic() + 5
    while True:
        answer = client.lookup(name, "TXT")
        if answer.records or time.monotonic() > deadline:
            break
    assert any("code-123" in str(r) for r in answer.records), answer
    subprocess.run([sys.executable, str(SCRIPT), "del", name, "--records", str(records)], check=True)
    assert not client.lookup(name, "TXT").records
