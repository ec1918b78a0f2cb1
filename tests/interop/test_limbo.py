"""x509-limbo SERVER cases through `ecert verify`'s chain verifier: each agrees, or is allowlisted with a reason."""

from __future__ import annotations

import json
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from tests.interop.limbo_allowlist import ALLOWLIST

from ecert.client.errors import ChainInvalid
from ecert.client.verify import verify_certificate

LIMBO = Path(__file__).resolve().parents[1] / "vectors" / "x509-limbo" / "limbo.json"  # copy of ../shared
# CLIENT cases test client-certificate validation, which ecert never does; they are not collected.
CASES = [c for c in json.loads(LIMBO.read_text())["testcases"] if c["validation_kind"] == "SERVER"]


def _outcome(case: dict[str, Any]) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # limbo's zero/negative serials warn in pyca
        try:
            roots = [x509.load_pem_x509_certificate(p.encode()) for p in case["trusted_certs"]]
            inter = [x509.load_pem_x509_certificate(p.encode()) for p in case["untrusted_intermediates"]]
            leaf = x509.load_pem_x509_certificate(case["peer_certificate"].encode())
            crls = [x509.load_pem_x509_crl(p.encode()) for p in case["crls"]]
        except ValueError:
            return "FAILURE"  # unparsable input is a refusal
    when = datetime.fromisoformat(case["validation_time"]) if case["validation_time"] else datetime.now(UTC)
    peer = case["expected_peer_name"]
    try:
        verify_certificate(
            leaf,
            hostname=peer["value"] if peer else "",
            roots=roots,
            intermediates=inter,
            crls=crls,
            now=when,
            max_chain_depth=case["max_chain_depth"],
        )
    except ChainInvalid:
        return "FAILURE"
    return "SUCCESS"


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_limbo_server_case(case: dict[str, Any]) -> None:
    got = _outcome(case)
    if case["id"] in ALLOWLIST:
        assert got != case["expected_result"], f"now agrees: remove {case['id']} from the allowlist"
    else:
        assert got == case["expected_result"], case["description"]


def test_every_allowlist_entry_names_a_server_case() -> None:
    ids = {c["id"] for c in CASES}
    assert set(ALLOWLIST) <= ids
    assert all(reason.strip() for reason in ALLOWLIST.values())
