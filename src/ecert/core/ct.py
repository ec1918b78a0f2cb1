"""Certificate Transparency (RFC 6962) structures, SCT verification, the browsers' SCT policy and the log list.

Pure: no I/O and no clock. The CA never trusts a log: every SCT is checked here against the log's own key
and log ID before it is embedded, and the policy count decides whether a certificate may be finished.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import json
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from .errors import ConfigError, Conflict, TransparencyFailed

__all__ = [
    "POISON_OID",
    "SCT_LIST_OID",
    "EntryType",
    "SignedCertificateTimestamp",
    "CtLog",
    "LogList",
    "SctFromLog",
    "encode_sct_list",
    "decode_sct_list",
    "sct_list_extension_value",
    "sct_list_from_extension_value",
    "precert_signed_entry",
    "x509_signed_entry",
    "sct_signature_input",
    "tree_head_signature_input",
    "verify_sct",
    "verify_tls_signature",
    "log_id_of",
    "issuer_key_hash",
    "tbs_without_extension",
    "required_sct_count",
    "check_sct_policy",
    "policy_met",
    "parse_log_list",
    "usable_logs",
    "PrecertStatus",
    "PrecertAction",
    "PRECERT_TRANSITIONS",
    "precert_move",
]

POISON_OID = "1.3.6.1.4.1.11129.2.4.3"  # RFC 6962 3.1: the critical precertificate poison
SCT_LIST_OID = "1.3.6.1.4.1.11129.2.4.2"  # RFC 6962 3.3: the embedded SCT list

_SHA256 = 4  # RFC 5246 7.4.1.4.1 HashAlgorithm
_RSA, _ECDSA = 1, 3  # RFC 5246 7.4.1.4.1 SignatureAlgorithm
_CERTIFICATE_TIMESTAMP, _TREE_HASH = 0, 1  # RFC 6962 3.2 SignatureType


class EntryType(enum.IntEnum):
    """RFC 6962 3.1 LogEntryType."""

    X509 = 0
    PRECERT = 1


# --- TLS encoding helpers (RFC 5246 4) ---------------------------------------------------------------------


def _vector(data: bytes, length_bytes: int) -> bytes:
    if len(data) >= 1 << (8 * length_bytes):
        raise ValueError(f"{len(data)} bytes do not fit a {length_bytes}-byte length")
    return len(data).to_bytes(length_bytes, "big") + data


class _Reader:
    """Reads TLS-encoded fields and refuses trailing or missing bytes."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._at = 0

    def take(self, n: int) -> bytes:
        if self._at + n > len(self._data):
            raise TransparencyFailed("truncated TLS structure", rule="RFC 6962 3.2", value=len(self._data))
        chunk = self._data[self._at : self._at + n]
        self._at += n
        return chunk

    def uint(self, n: int) -> int:
        return int.from_bytes(self.take(n), "big")

    def vector(self, length_bytes: int) -> bytes:
        return self.take(self.uint(length_bytes))

    def done(self) -> bool:
        return self._at == len(self._data)

    def finish(self) -> None:
        if not self.done():
            raise TransparencyFailed(
                "trailing bytes after a TLS structure", rule="RFC 6962 3.2", value=len(self._data) - self._at
            )


# --- SCTs (RFC 6962 3.2 and 3.3) ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SignedCertificateTimestamp:
    """One SCT as a log returns it; ``timestamp`` is milliseconds since the epoch (RFC 6962 3.2)."""

    log_id: bytes
    timestamp: int
    extensions: bytes
    hash_algorithm: int
    signature_algorithm: int
    signature: bytes
    version: int = 0

    def __post_init__(self) -> None:
        if len(self.log_id) != 32:
            raise TransparencyFailed("an SCT's log ID is 32 bytes", rule="RFC 6962 3.2", value=len(self.log_id))
        if self.version != 0:
            raise TransparencyFailed("only v1 SCTs are understood", rule="RFC 6962 3.2", value=self.version)

    @property
    def time(self) -> datetime:
        return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=self.timestamp)

    def encode(self) -> bytes:
        """The TLS encoding of the SCT (a SerializedSCT without its length prefix)."""
        return (
            bytes([self.version])
            + self.log_id
            + struct.pack(">Q", self.timestamp)
            + _vector(self.extensions, 2)
            + self.digitally_signed()
        )

    def digitally_signed(self) -> bytes:
        """The ``digitally-signed`` element: hash and signature algorithm, then the signature (RFC 5246 4.7)."""
        return bytes([self.hash_algorithm, self.signature_algorithm]) + _vector(self.signature, 2)

    @classmethod
    def decode(cls, data: bytes) -> SignedCertificateTimestamp:
        reader = _Reader(data)
        sct = cls._read(reader)
        reader.finish()
        return sct

    @classmethod
    def _read(cls, reader: _Reader) -> SignedCertificateTimestamp:
        version = reader.uint(1)
        if version != 0:
            raise TransparencyFailed("only v1 SCTs are understood", rule="RFC 6962 3.2", value=version)
        return cls(
            log_id=reader.take(32),
            timestamp=reader.uint(8),
            extensions=reader.vector(2),
            hash_algorithm=reader.uint(1),
            signature_algorithm=reader.uint(1),
            signature=reader.vector(2),
        )

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> SignedCertificateTimestamp:
        """An add-chain / add-pre-chain response (RFC 6962 4.1); malformed fields raise TransparencyFailed."""
        try:
            signed = _Reader(base64.b64decode(body["signature"], validate=True))
            sct = cls(
                version=int(body["sct_version"]),
                log_id=base64.b64decode(body["id"], validate=True),
                timestamp=int(body["timestamp"]),
                extensions=base64.b64decode(body.get("extensions", "")),
                hash_algorithm=signed.uint(1),
                signature_algorithm=signed.uint(1),
                signature=signed.vector(2),
            )
            signed.finish()
        except (KeyError, TypeError, ValueError) as exc:
            raise TransparencyFailed(f"malformed SCT response: {exc}", rule="RFC 6962 4.1") from None
        return sct

    def to_json(self) -> dict[str, Any]:
        return {
            "sct_version": self.version,
            "id": base64.b64encode(self.log_id).decode(),
            "timestamp": self.timestamp,
            "extensions": base64.b64encode(self.extensions).decode(),
            "signature": base64.b64encode(self.digitally_signed()).decode(),
        }


def encode_sct_list(scts: Sequence[SignedCertificateTimestamp]) -> bytes:
    """SignedCertificateTimestampList: a 2-byte-length list of 2-byte-length SerializedSCTs (RFC 6962 3.3)."""
    if not scts:
        raise TransparencyFailed("an SCT list holds at least one SCT", rule="RFC 6962 3.3", value=0)
    return _vector(b"".join(_vector(s.encode(), 2) for s in scts), 2)


def decode_sct_list(data: bytes) -> tuple[SignedCertificateTimestamp, ...]:
    outer = _Reader(data)
    inner = _Reader(outer.vector(2))
    outer.finish()
    found: list[SignedCertificateTimestamp] = []
    while not inner.done():
        found.append(SignedCertificateTimestamp.decode(inner.vector(2)))
    return tuple(found)


def _der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def sct_list_extension_value(scts: Sequence[SignedCertificateTimestamp]) -> bytes:
    """The extnValue contents of the SCT list extension: a DER OCTET STRING around the TLS list (RFC 6962 3.3)."""
    tls = encode_sct_list(scts)
    return b"\x04" + _der_length(len(tls)) + tls


def sct_list_from_extension_value(value: bytes) -> tuple[SignedCertificateTimestamp, ...]:
    tag, content, rest = _tlv(value)
    if tag != 0x04 or rest:
        raise TransparencyFailed("the SCT list extension is not one OCTET STRING", rule="RFC 6962 3.3")
    return decode_sct_list(content)


# --- what a log signs (RFC 6962 3.2, 3.5) -------------------------------------------------------------------


def issuer_key_hash(issuer_spki_der: bytes) -> bytes:
    """SHA-256 of the issuer's SubjectPublicKeyInfo, part of a precertificate entry (RFC 6962 3.2)."""
    return hashlib.sha256(issuer_spki_der).digest()


def log_id_of(log_key_der: bytes) -> bytes:
    """A log's ID is the SHA-256 of its SubjectPublicKeyInfo (RFC 6962 3.2)."""
    return hashlib.sha256(log_key_der).digest()


def precert_signed_entry(issuer_key_sha256: bytes, tbs_without_poison: bytes) -> bytes:
    """PreCert: the issuer key hash and the TBSCertificate without the poison (RFC 6962 3.2)."""
    if len(issuer_key_sha256) != 32:
        raise ValueError("issuer_key_hash is 32 bytes")
    return issuer_key_sha256 + _vector(tbs_without_poison, 3)


def x509_signed_entry(cert_der: bytes) -> bytes:
    return _vector(cert_der, 3)


def sct_signature_input(sct: SignedCertificateTimestamp, entry_type: EntryType, signed_entry: bytes) -> bytes:
    """The ``digitally-signed`` struct an SCT's signature covers (RFC 6962 3.2)."""
    return (
        bytes([sct.version, _CERTIFICATE_TIMESTAMP])
        + struct.pack(">QH", sct.timestamp, entry_type)
        + signed_entry
        + _vector(sct.extensions, 2)
    )


def tree_head_signature_input(timestamp: int, tree_size: int, root_hash: bytes) -> bytes:
    """TreeHeadSignature (RFC 6962 3.5): what a log signs in its STH."""
    return bytes([0, _TREE_HASH]) + struct.pack(">QQ", timestamp, tree_size) + root_hash


def verify_tls_signature(
    key_der: bytes, hash_algorithm: int, signature_algorithm: int, signature: bytes, message: bytes
) -> None:
    """Check a TLS ``digitally-signed`` signature made with SHA-256 and ECDSA or RSA PKCS#1 v1.5 (RFC 6962 2.1.4)."""
    key = serialization.load_der_public_key(key_der)
    if hash_algorithm != _SHA256:
        raise TransparencyFailed("CT signatures use SHA-256", rule="RFC 6962 2.1.4", value=hash_algorithm)
    try:
        if isinstance(key, ec.EllipticCurvePublicKey) and signature_algorithm == _ECDSA:
            key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
        elif isinstance(key, rsa.RSAPublicKey) and signature_algorithm == _RSA:
            key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
        else:
            raise TransparencyFailed(
                "signature algorithm does not match the log's key", rule="RFC 6962 2.1.4", value=signature_algorithm
            )
    except InvalidSignature:
        raise TransparencyFailed("signature does not verify with the log's key", rule="RFC 6962 3.2") from None


def verify_sct(
    sct: SignedCertificateTimestamp, *, log_key_der: bytes, entry_type: EntryType, signed_entry: bytes
) -> None:
    """Raise unless ``sct`` comes from the log holding ``log_key_der`` and covers ``signed_entry``.

    Both the log ID and the signature are checked: a log answering with another log's ID is refused.
    """
    expected = log_id_of(log_key_der)
    if sct.log_id != expected:
        raise TransparencyFailed(
            "SCT names another log ID", rule="RFC 6962 3.2", value=base64.b64encode(sct.log_id).decode()
        )
    verify_tls_signature(
        log_key_der,
        sct.hash_algorithm,
        sct.signature_algorithm,
        sct.signature,
        sct_signature_input(sct, entry_type, signed_entry),
    )


# --- DER: remove one extension from a TBSCertificate (RFC 6962 3.2, 3.3) -------------------------------------


def _tlv(data: bytes) -> tuple[int, bytes, bytes]:
    """(tag, contents, rest) of the first DER TLV in ``data``."""
    if len(data) < 2:
        raise ValueError("truncated DER")
    tag, first = data[0], data[1]
    if first < 0x80:
        length, start = first, 2
    else:
        count = first & 0x7F
        length, start = int.from_bytes(data[2 : 2 + count], "big"), 2 + count
    if start + length > len(data):
        raise ValueError("truncated DER")
    return tag, data[start : start + length], data[start + length :]


def _der(tag: int, contents: bytes) -> bytes:
    return bytes([tag]) + _der_length(len(contents)) + contents


def _oid_der(dotted: str) -> bytes:
    arcs = [int(a) for a in dotted.split(".")]
    body = bytearray([40 * arcs[0] + arcs[1]])
    for arc in arcs[2:]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        body += bytes(reversed(chunk))
    return _der(0x06, bytes(body))


def _split(contents: bytes) -> list[bytes]:
    """The complete TLVs in ``contents``, in order."""
    items: list[bytes] = []
    while contents:
        _, _, rest = _tlv(contents)
        items.append(contents[: len(contents) - len(rest)])
        contents = rest
    return items


def tbs_without_extension(tbs_der: bytes, oid: str) -> bytes:
    """The TBSCertificate with the extension ``oid`` removed and the lengths re-encoded.

    RFC 6962 3.2: a log signs the precertificate's TBS without the poison; a verifier rebuilds the same
    bytes from the final certificate by removing the SCT list. Both must equal, byte for byte.
    """
    tag, body, rest = _tlv(tbs_der)
    if tag != 0x30 or rest:
        raise ValueError("not a DER TBSCertificate")
    fields = _split(body)
    wanted = _oid_der(oid)
    for i, item in enumerate(fields):
        if item[0] != 0xA3:  # extensions [3] EXPLICIT
            continue
        _, seq, _ = _tlv(item)
        _, ext_list, _ = _tlv(seq)
        kept = [e for e in _split(ext_list) if not _tlv(e)[1].startswith(wanted)]
        if len(kept) == len(_split(ext_list)):
            raise ValueError(f"extension {oid} is absent")
        fields[i] = _der(0xA3, _der(0x30, b"".join(kept))) if kept else b""
        return _der(0x30, b"".join(fields))
    raise ValueError("the TBSCertificate has no extensions")


# --- the browsers' policy (Chrome ct_policy.md, Apple support 103214) ----------------------------------------


@dataclass(frozen=True)
class SctFromLog:
    """A verified SCT and the log (with its operator) that issued it."""

    sct: SignedCertificateTimestamp
    log: CtLog


def required_sct_count(not_before: datetime, not_after: datetime) -> int:
    """Embedded SCTs a certificate needs so both Chrome and Safari accept it.

    Chrome (GoogleChrome/CertificateTransparency ct_policy.md): 2 for a lifetime of at most 180 days, 3 above.
    Apple (support.apple.com/103214): 2 for less than 180 days, 3 from 180 days. The stricter count wins.
    """
    lifetime = not_after - not_before
    chrome = 2 if lifetime <= timedelta(days=180) else 3
    apple = 2 if lifetime < timedelta(days=180) else 3
    return max(chrome, apple)


def policy_met(found: Iterable[SctFromLog], required: int) -> bool:
    """Enough SCTs from distinct logs, run by at least two distinct operators (Chrome and Apple policies)."""
    logs = {f.log.log_id for f in found}
    operators = {f.log.operator for f in found}
    return len(logs) >= required and len(operators) >= 2


def check_sct_policy(found: Sequence[SctFromLog], not_before: datetime, not_after: datetime) -> None:
    """Raise TransparencyFailed naming the shortfall when the SCTs do not meet the policy."""
    required = required_sct_count(not_before, not_after)
    if policy_met(found, required):
        return
    operators = sorted({f.log.operator for f in found})
    raise TransparencyFailed(
        f"{len({f.log.log_id for f in found})} SCT(s) from {len(operators)} operator(s) "
        f"({', '.join(operators) or 'none'}); the policy needs {required} from at least 2 operators",
        rule="Chrome CT policy / Apple 103214",
        value=len(found),
    )


# --- the log list (Chrome log_list.json v3) -----------------------------------------------------------------


@dataclass(frozen=True)
class CtLog:
    """One log of the list; only ``state == "usable"`` logs whose interval covers notAfter are chosen."""

    description: str
    operator: str
    log_id: bytes
    key_der: bytes
    url: str
    state: str
    mmd: int = 86400
    start_inclusive: datetime | None = None
    end_exclusive: datetime | None = None

    @property
    def log_id_b64(self) -> str:
        return base64.b64encode(self.log_id).decode()

    def covers(self, not_after: datetime) -> bool:
        """Whether the log's temporal interval takes a certificate expiring at ``not_after`` (shard rule)."""
        if self.start_inclusive is not None and not_after < self.start_inclusive:
            return False
        return self.end_exclusive is None or not_after < self.end_exclusive


@dataclass(frozen=True)
class LogList:
    version: str
    logs: tuple[CtLog, ...]

    def by_id(self, log_id: bytes) -> CtLog | None:
        return next((log for log in self.logs if log.log_id == log_id), None)


def _time(text: str | None) -> datetime | None:
    if text is None:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def _parse_log(operator: str, entry: Mapping[str, Any]) -> CtLog:
    key = base64.b64decode(entry["key"], validate=True)
    log_id = base64.b64decode(entry["log_id"], validate=True)
    if log_id != log_id_of(key):
        raise ConfigError(
            f"log {entry.get('description')!r}: log_id is not the SHA-256 of its key",
            rule="RFC 6962 3.2",
            value=entry["log_id"],
        )
    state = next(iter(entry.get("state") or {"pending": {}}))
    interval = entry.get("temporal_interval") or {}
    return CtLog(
        description=str(entry.get("description", "")),
        operator=operator,
        log_id=log_id,
        key_der=key,
        url=str(entry["url"]).rstrip("/") + "/",
        state=state,
        mmd=int(entry.get("mmd", 86400)),
        start_inclusive=_time(interval.get("start_inclusive")),
        end_exclusive=_time(interval.get("end_exclusive")),
    )


def parse_log_list(text: str | bytes) -> LogList:
    """Parse Chrome's ``log_list.json`` v3 (operators → logs); bad entries refuse the whole file."""
    try:
        doc = json.loads(text)
        logs = tuple(_parse_log(str(op["name"]), log) for op in doc["operators"] for log in op.get("logs", ()))
    except ConfigError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"the CT log list is not a v3 log list: {exc}", rule="log_list.json v3") from None
    return LogList(version=str(doc.get("version", "")), logs=logs)


def usable_logs(log_list: LogList, not_after: datetime) -> tuple[CtLog, ...]:
    """Logs a certificate expiring at ``not_after`` may be submitted to: usable and covering notAfter."""
    return tuple(log for log in log_list.logs if log.state == "usable" and log.covers(not_after))


# --- the precertificate's status machine ---------------------------------------------------------------------


class PrecertStatus(enum.StrEnum):
    """Where a precertificate stands: ``signed`` (durable, about to be logged), ``final`` (its certificate is
    stored) or ``revoked`` (no final certificate will ever carry the serial: too few SCTs, a failure, a crash)."""

    SIGNED = "signed"
    FINAL = "final"
    REVOKED = "revoked"


class PrecertAction(enum.StrEnum):
    FINISH = "finish"
    REVOKE = "revoke"


PRECERT_TRANSITIONS: dict[tuple[PrecertStatus, PrecertAction], PrecertStatus] = {
    (PrecertStatus.SIGNED, PrecertAction.FINISH): PrecertStatus.FINAL,
    # BR 7.1.2.9 / RFC 6962 3.1: a logged precertificate is a promise to issue; unkept, its serial is revoked.
    (PrecertStatus.SIGNED, PrecertAction.REVOKE): PrecertStatus.REVOKED,
}


def precert_move(status: PrecertStatus | str, action: PrecertAction) -> tuple[PrecertStatus, PrecertStatus]:
    """(source, target) of ``action`` from ``status``; Conflict if the table has no such move."""
    source = PrecertStatus(status)
    target = PRECERT_TRANSITIONS.get((source, action))
    if target is None:
        raise Conflict(f"a {source.value} precertificate cannot {action.value}", value=source.value)
    return source, target
