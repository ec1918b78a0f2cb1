"""RFC 6962 structures, SCT checks, the browsers' policy count and the log list (core/ct.py, signer/precert.py)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from tests.ct_log import merkle
from tests.ct_log.pki import NOW, MiniCa

from ecert.core import ct
from ecert.core.errors import ConfigError, LintFailed, TransparencyFailed
from ecert.signer.precert import check_final_matches, is_precertificate


def _log_key() -> tuple[ec.EllipticCurvePrivateKey, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return key, der


def _spki(cert: x509.Certificate) -> bytes:
    return cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _sign_sct(
    key: ec.EllipticCurvePrivateKey,
    key_der: bytes,
    entry: bytes,
    ts: int = 1_765_000_000_000,
    entry_type: ct.EntryType = ct.EntryType.PRECERT,
) -> ct.SignedCertificateTimestamp:
    unsigned = ct.SignedCertificateTimestamp(ct.log_id_of(key_der), ts, b"", 4, 3, b"")
    sig = key.sign(ct.sct_signature_input(unsigned, entry_type, entry), ec.ECDSA(hashes.SHA256()))
    return ct.SignedCertificateTimestamp(ct.log_id_of(key_der), ts, b"", 4, 3, sig)


@pytest.fixture
def ca() -> MiniCa:
    return MiniCa.make()


def test_sct_and_list_round_trip() -> None:
    sct = ct.SignedCertificateTimestamp(bytes(range(32)), 1_700_000_000_123, b"\x01\x02", 4, 3, b"sig")
    assert ct.SignedCertificateTimestamp.decode(sct.encode()) == sct
    assert ct.decode_sct_list(ct.encode_sct_list([sct, sct])) == (sct, sct)
    assert ct.SignedCertificateTimestamp.from_json(json.loads(json.dumps(sct.to_json()))) == sct
    assert sct.time == datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=UTC)


def test_embedded_list_is_read_back_by_cryptography(ca: MiniCa) -> None:
    """pyca/cryptography, which we did not write, parses our extension into the same SCTs."""
    key, der = _log_key()
    sct = _sign_sct(key, der, b"x" * 40)
    final = ca.final(ca.tbs(), [sct])
    parsed = final.extensions.get_extension_for_class(x509.PrecertificateSignedCertificateTimestamps).value
    assert [(s.log_id, s.timestamp) for s in parsed] == [(sct.log_id, sct.time.replace(tzinfo=None))]
    raw = final.extensions.get_extension_for_oid(x509.ObjectIdentifier(ct.SCT_LIST_OID)).value.public_bytes()
    assert ct.sct_list_from_extension_value(raw) == (sct,)


def test_precert_tbs_equals_final_tbs_without_scts(ca: MiniCa) -> None:
    key, der = _log_key()
    builder = ca.tbs()
    precert, final = ca.precert(builder), ca.final(builder, [_sign_sct(key, der, b"e")])
    assert is_precertificate(precert) and not is_precertificate(final)
    pre_tbs = ct.tbs_without_extension(precert.tbs_certificate_bytes, ct.POISON_OID)
    # cryptography's own RFC 6962 TBS of the final certificate is our precertificate TBS.
    assert pre_tbs == final.tbs_precertificate_bytes
    check_final_matches(precert, final)


def test_final_with_another_tbs_is_refused(ca: MiniCa) -> None:
    key, der = _log_key()
    precert = ca.precert(ca.tbs(serial=1))
    other = ca.final(ca.tbs(serial=1), [_sign_sct(key, der, b"e")])  # another leaf key
    with pytest.raises(LintFailed, match="differs from its precertificate"):
        check_final_matches(precert, other)


def test_sct_verifies_for_its_precertificate(ca: MiniCa) -> None:
    key, der = _log_key()
    precert = ca.precert(ca.tbs())
    entry = ct.precert_signed_entry(
        ct.issuer_key_hash(_spki(ca.cert)), ct.tbs_without_extension(precert.tbs_certificate_bytes, ct.POISON_OID)
    )
    sct = _sign_sct(key, der, entry)
    ct.verify_sct(sct, log_key_der=der, entry_type=ct.EntryType.PRECERT, signed_entry=entry)


def _bad(sct: ct.SignedCertificateTimestamp, **changes: object) -> ct.SignedCertificateTimestamp:
    fields = {**sct.__dict__, **changes}
    return ct.SignedCertificateTimestamp(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"log_id": bytes(32)}, "another log ID"),
        ({"timestamp": 1}, "does not verify"),
        ({"extensions": b"\x00"}, "does not verify"),
        ({"hash_algorithm": 2}, "SHA-256"),
        ({"signature_algorithm": 1}, "does not match the log's key"),
    ],
)
def test_sct_refusals(change: dict[str, object], message: str) -> None:
    key, der = _log_key()
    sct = _sign_sct(key, der, b"entry")
    with pytest.raises(TransparencyFailed, match=message):
        ct.verify_sct(_bad(sct, **change), log_key_der=der, entry_type=ct.EntryType.PRECERT, signed_entry=b"entry")


def test_sct_for_another_entry_type_is_refused() -> None:
    key, der = _log_key()
    sct = _sign_sct(key, der, b"entry", entry_type=ct.EntryType.X509)
    with pytest.raises(TransparencyFailed, match="does not verify"):
        ct.verify_sct(sct, log_key_der=der, entry_type=ct.EntryType.PRECERT, signed_entry=b"entry")


@pytest.mark.parametrize(
    ("days", "required"),
    [
        (90, 2),
        (100, 2),
        (179, 2),
        (180, 3),  # Chrome: 2 (at most 180 days); Apple: 3 (from 180 days): the stricter wins
        (181, 3),
        (199, 3),
        (397, 3),
    ],
)
def test_required_count_by_lifetime(days: int, required: int) -> None:
    assert ct.required_sct_count(NOW, NOW + timedelta(days=days)) == required


def _log(name: str, operator: str, **kw: object) -> ct.CtLog:
    _, der = _log_key()
    return ct.CtLog(
        description=name,
        operator=operator,
        log_id=ct.log_id_of(der),
        key_der=der,
        url="http://127.0.0.1:1/",
        state=str(kw.get("state", "usable")),
        start_inclusive=kw.get("start"),
        end_exclusive=kw.get("end"),
    )  # type: ignore[arg-type]


def test_policy_needs_two_operators() -> None:
    sct = ct.SignedCertificateTimestamp(bytes(32), 0, b"", 4, 3, b"")
    a1, a2, b1 = _log("a1", "A"), _log("a2", "A"), _log("b1", "B")
    assert not ct.policy_met([ct.SctFromLog(sct, a1), ct.SctFromLog(sct, a2)], 2)
    assert ct.policy_met([ct.SctFromLog(sct, a1), ct.SctFromLog(sct, b1)], 2)
    assert not ct.policy_met([ct.SctFromLog(sct, a1), ct.SctFromLog(sct, b1)], 3)
    with pytest.raises(TransparencyFailed, match=r"2 SCT\(s\) from 1 operator\(s\) \(A\); the policy needs 2"):
        ct.check_sct_policy([ct.SctFromLog(sct, a1), ct.SctFromLog(sct, a2)], NOW, NOW + timedelta(days=90))


def _list_doc(logs: list[dict[str, object]]) -> str:
    return json.dumps({"version": "7", "operators": [{"name": "Op", "email": [], "logs": logs}]})


def _entry(der: bytes, **kw: object) -> dict[str, object]:
    return {
        "description": kw.get("name", "L"),
        "log_id": base64.b64encode(ct.log_id_of(der)).decode(),
        "key": base64.b64encode(der).decode(),
        "url": "https://ct.example/2027/",
        "mmd": 86400,
        "state": {kw.get("state", "usable"): {"timestamp": "2026-01-01T00:00:00Z"}},
        "temporal_interval": {
            "start_inclusive": kw.get("start", "2027-01-01T00:00:00Z"),
            "end_exclusive": kw.get("end", "2027-07-01T00:00:00Z"),
        },
    }


def test_log_list_choice_by_state_and_temporal_interval() -> None:
    ders = [_log_key()[1] for _ in range(4)]
    doc = _list_doc(
        [
            _entry(ders[0], name="h1"),
            _entry(ders[1], name="h2", start="2027-07-01T00:00:00Z", end="2028-01-01T00:00:00Z"),
            _entry(ders[2], name="retired", state="retired"),
            _entry(ders[3], name="qualified", state="qualified"),
        ]
    )
    log_list = ct.parse_log_list(doc)
    assert [log.description for log in log_list.logs] == ["h1", "h2", "retired", "qualified"]
    assert log_list.logs[0].operator == "Op" and log_list.logs[0].url == "https://ct.example/2027/"
    pick = lambda when: [log.description for log in ct.usable_logs(log_list, when)]  # noqa: E731
    assert pick(datetime(2027, 3, 1, tzinfo=UTC)) == ["h1"]
    assert pick(datetime(2027, 7, 1, tzinfo=UTC)) == ["h2"]  # end_exclusive is exclusive
    assert pick(datetime(2026, 12, 31, tzinfo=UTC)) == []  # before every shard


def test_log_list_refuses_a_log_id_that_is_not_its_key_hash() -> None:
    der = _log_key()[1]
    entry = _entry(der)
    entry["log_id"] = base64.b64encode(bytes(32)).decode()
    with pytest.raises(ConfigError, match="log_id is not the SHA-256 of its key"):
        ct.parse_log_list(_list_doc([entry]))
    with pytest.raises(ConfigError, match="not a v3 log list"):
        ct.parse_log_list('{"logs": []}')


# RFC 6962 2.1 test vectors (certificate-transparency reference implementation, merkle tree tests).
_LEAVES = [
    bytes.fromhex(h)
    for h in ("", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f")
]
_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


def test_test_log_merkle_tree_matches_rfc6962_vectors() -> None:
    hashes_ = [merkle.leaf_hash(d) for d in _LEAVES]
    for n in range(1, 9):
        assert merkle.tree_hash(hashes_[:n]).hex() == _ROOTS[n - 1]
        for m in range(n):
            assert merkle.root_from_path(m, n, hashes_[m], merkle.audit_path(m, hashes_[:n])).hex() == _ROOTS[n - 1]
