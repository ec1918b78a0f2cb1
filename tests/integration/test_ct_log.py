"""The test RFC 6962 log itself, over HTTP: signed tree heads, inclusion and consistency proofs, entries, roots.

It is test infrastructure, so it is checked here against the RFC's own verification algorithms (and, in the
interop suite, by certspotter), before any CA test relies on it.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Callable

import httpx
from cryptography.hazmat.primitives import hashes, serialization

from ecert.core import ct
from tests.ct_log import merkle
from tests.ct_log.pki import MiniCa
from tests.ct_log.server import TestLog


def _chain(*certs: object) -> dict[str, list[str]]:
    return {"chain": [base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode() for c in certs]}  # type: ignore[attr-defined]


def _sth(log: TestLog) -> dict[str, object]:
    sth = httpx.get(log.url + "ct/v1/get-sth").json()
    signed = base64.b64decode(sth["tree_head_signature"])
    message = ct.tree_head_signature_input(
        sth["timestamp"], sth["tree_size"], base64.b64decode(sth["sha256_root_hash"])
    )
    ct.verify_tls_signature(log.key_der, signed[0], signed[1], signed[4:], message)  # raises if wrong
    return sth


def test_entries_proofs_and_signed_tree_heads(ct_logs: Callable[..., TestLog]) -> None:
    ca = MiniCa.make()
    log = ct_logs("log")
    log.roots.append(ca.cert)
    heads = [_sth(log)]
    for i in range(7):
        precert = ca.precert(ca.tbs(serial=100 + i))
        body = _chain(precert, ca.cert)
        r = httpx.post(log.url + "ct/v1/add-pre-chain", json=body)
        assert r.status_code == 200, r.text
        heads.append(_sth(log))
        # The SCT is for this precertificate's entry.
        spki = ca.cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        entry = ct.precert_signed_entry(
            ct.issuer_key_hash(spki), ct.tbs_without_extension(precert.tbs_certificate_bytes, ct.POISON_OID)
        )
        ct.verify_sct(
            ct.SignedCertificateTimestamp.from_json(r.json()),
            log_key_der=log.key_der,
            entry_type=ct.EntryType.PRECERT,
            signed_entry=entry,
        )
    assert [h["tree_size"] for h in heads] == list(range(8))
    entries = httpx.get(log.url + "ct/v1/get-entries", params={"start": 0, "end": 6}).json()["entries"]
    leaves = [base64.b64decode(e["leaf_input"]) for e in entries]
    assert len(leaves) == 7 and struct.unpack(">H", leaves[0][10:12])[0] == ct.EntryType.PRECERT
    root = base64.b64decode(heads[-1]["sha256_root_hash"])  # type: ignore[arg-type]
    assert merkle.tree_hash([merkle.leaf_hash(leaf) for leaf in leaves]) == root
    for index, leaf in enumerate(leaves):
        proof = httpx.get(
            log.url + "ct/v1/get-proof-by-hash",
            params={"hash": base64.b64encode(merkle.leaf_hash(leaf)).decode(), "tree_size": 7},
        ).json()
        path = [base64.b64decode(h) for h in proof["audit_path"]]
        assert proof["leaf_index"] == index
        assert merkle.root_from_path(index, 7, merkle.leaf_hash(leaf), path) == root
    for first in range(1, 8):
        for second in range(first, 8):
            proof = httpx.get(log.url + "ct/v1/get-sth-consistency", params={"first": first, "second": second})
            hashes = [base64.b64decode(h) for h in proof.json()["consistency"]]
            assert merkle.verify_consistency(
                first,
                second,
                base64.b64decode(heads[first]["sha256_root_hash"]),  # type: ignore[arg-type]
                base64.b64decode(heads[second]["sha256_root_hash"]),  # type: ignore[arg-type]
                hashes,
            ), (first, second)
    roots = httpx.get(log.url + "ct/v1/get-roots").json()["certificates"]
    assert roots == _chain(ca.cert)["chain"]


def test_add_chain_and_refusals(ct_logs: Callable[..., TestLog]) -> None:
    ca, other = MiniCa.make(), MiniCa.make()
    log = ct_logs("log")
    builder = ca.tbs()
    final = builder.sign(ca.key, hashes.SHA256())
    r = httpx.post(log.url + "ct/v1/add-chain", json=_chain(final, ca.cert))
    assert r.status_code == 200
    ct.verify_sct(
        ct.SignedCertificateTimestamp.from_json(r.json()),
        log_key_der=log.key_der,
        entry_type=ct.EntryType.X509,
        signed_entry=ct.x509_signed_entry(final.public_bytes(serialization.Encoding.DER)),
    )
    # A precertificate through add-chain, a chain that does not verify: 400, nothing logged.
    assert httpx.post(log.url + "ct/v1/add-chain", json=_chain(ca.precert(builder), ca.cert)).status_code == 400
    assert httpx.post(log.url + "ct/v1/add-pre-chain", json=_chain(ca.precert(builder), other.cert)).status_code == 400
    assert log.sth()["tree_size"] == 1
