"""A small RFC 6962 log for the tests: add-chain, add-pre-chain, get-sth, get-sth-consistency,
get-proof-by-hash, get-entries and get-roots over a real Merkle tree, with signed STHs and its own P-256 key.

It runs as a real HTTP server on 127.0.0.1 in a thread. ``Faults`` turn it into the faulty logs the CA must
survive: slow, HTTP 500, SCTs with a bad signature, SCTs naming another log ID. It is test infrastructure,
kept small and obviously right, not a product: the tree is rebuilt from the leaves on every request.
"""

from __future__ import annotations

import base64
import json
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtensionOID

from ecert.core import ct

from . import merkle

__all__ = ["Faults", "TestLog", "log_list_json"]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _u24(data: bytes) -> bytes:
    return len(data).to_bytes(3, "big") + data


@dataclass
class Faults:
    """What is wrong with this log; change the fields while it runs."""

    delay: float = 0.0  # seconds from a request's arrival to its answer (the log's own work runs within them)
    status: int | None = None  # answer every request with this HTTP status (e.g. 500)
    bad_signature: bool = False  # SCTs whose signature does not verify
    wrong_log_id: bool = False  # SCTs naming another log's ID


@dataclass
class _Entry:
    leaf_input: bytes
    extra_data: bytes


@dataclass
class TestLog:
    """One log: start() it, give its ``log_list_entry()`` to the CA, stop() it at the end."""

    __test__ = False  # not a pytest test class

    name: str = "test log"
    operator: str = "Operator A"
    faults: Faults = field(default_factory=Faults)
    roots: list[x509.Certificate] = field(default_factory=list)
    clock: Callable[[], float] = time.time
    key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    entries: list[_Entry] = field(default_factory=list)
    submissions: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- identity ----------------------------------------------------------------------------------------
    @property
    def key_der(self) -> bytes:
        return self.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    @property
    def log_id(self) -> bytes:
        return ct.log_id_of(self.key_der)

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the log first"
        return f"http://127.0.0.1:{self._server.server_port}/"  # start() binds 127.0.0.1 only

    def log_list_entry(
        self,
        *,
        start: str = "2020-01-01T00:00:00Z",
        end: str = "2040-01-01T00:00:00Z",
        state: str = "usable",
        url: str | None = None,
    ) -> dict[str, Any]:
        """This log as an entry of Chrome's log_list.json v3."""
        return {
            "description": self.name,
            "log_id": _b64(self.log_id),
            "key": _b64(self.key_der),
            "url": url or self.url,
            "mmd": 86400,
            "state": {state: {"timestamp": "2020-01-01T00:00:00Z"}},
            "temporal_interval": {"start_inclusive": start, "end_exclusive": end},
        }

    # --- lifecycle ---------------------------------------------------------------------------------------
    def start(self, port: int = 0) -> TestLog:
        log = self

        class Handler(_Handler):
            owner = log

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name=f"ct-log {self.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # --- the log's work ----------------------------------------------------------------------------------
    def _sign(self, message: bytes) -> bytes:
        signature = self.key.sign(message, ec.ECDSA(hashes.SHA256()))
        if self.faults.bad_signature:
            signature = signature[:-1] + bytes([signature[-1] ^ 1])
        return signature

    def add(self, chain: list[x509.Certificate], *, precert: bool) -> dict[str, Any]:
        """Append the entry and return its SCT (RFC 6962 4.1); the tree includes it at once (MMD 0)."""
        timestamp = int(self.clock() * 1000)
        der = [c.public_bytes(serialization.Encoding.DER) for c in chain]
        if precert:
            issuer_spki = (
                chain[1]
                .public_key()
                .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
            )
            tbs = ct.tbs_without_extension(chain[0].tbs_certificate_bytes, ct.POISON_OID)
            signed_entry = ct.precert_signed_entry(ct.issuer_key_hash(issuer_spki), tbs)
            extra = _u24(der[0]) + _u24(b"".join(_u24(d) for d in der[1:]))
        else:
            signed_entry = ct.x509_signed_entry(der[0])
            extra = _u24(b"".join(_u24(d) for d in der[1:]))
        entry_type = ct.EntryType.PRECERT if precert else ct.EntryType.X509
        unsigned = ct.SignedCertificateTimestamp(
            log_id=self.log_id,
            timestamp=timestamp,
            extensions=b"",
            hash_algorithm=4,
            signature_algorithm=3,
            signature=b"",
        )
        signature = self._sign(ct.sct_signature_input(unsigned, entry_type, signed_entry))
        log_id = bytes(32) if self.faults.wrong_log_id else self.log_id
        sct = ct.SignedCertificateTimestamp(
            log_id=log_id,
            timestamp=timestamp,
            extensions=b"",
            hash_algorithm=4,
            signature_algorithm=3,
            signature=signature,
        )
        leaf = b"\x00\x00" + struct.pack(">QH", timestamp, entry_type) + signed_entry + b"\x00\x00"
        with self._lock:
            self.entries.append(_Entry(leaf, extra))
            self.submissions += 1
        return sct.to_json()

    def leaf_hashes(self, size: int | None = None) -> list[bytes]:
        with self._lock:
            entries = list(self.entries)
        return [merkle.leaf_hash(e.leaf_input) for e in entries[: size if size is not None else len(entries)]]

    def sth(self) -> dict[str, Any]:
        leaves = self.leaf_hashes()
        root = merkle.tree_hash(leaves)
        timestamp = int(self.clock() * 1000)
        message = ct.tree_head_signature_input(timestamp, len(leaves), root)
        signature = self.key.sign(message, ec.ECDSA(hashes.SHA256()))
        return {
            "tree_size": len(leaves),
            "timestamp": timestamp,
            "sha256_root_hash": _b64(root),
            "tree_head_signature": _b64(bytes([4, 3]) + len(signature).to_bytes(2, "big") + signature),
        }


class _BadRequest(Exception):
    pass


class _Handler(BaseHTTPRequestHandler):
    owner: TestLog
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stall

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - keep test output quiet
        return

    def do_GET(self) -> None:  # noqa: N802
        self._answer("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._answer("POST")

    def _answer(self, method: str) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        received = time.monotonic()
        status, doc = self._route(method, parts.path, parts.query, body)
        delay = self.owner.faults.delay
        if delay:  # the answer leaves ``delay`` after the request came in, the log's own work included
            time.sleep(max(0.0, delay - (time.monotonic() - received)))
        self._send(status, doc)

    def _route(self, method: str, path: str, query: str, body: bytes) -> tuple[int, dict[str, Any]]:
        if self.owner.faults.status is not None:
            return self.owner.faults.status, {"error": "fault injected"}
        route = _ROUTES.get((method, path.rstrip("/")))
        if route is None:
            return 404, {"error": f"no {method} {path}"}
        try:
            return 200, route(self.owner, {k: v[0] for k, v in parse_qs(query).items()}, body)
        except (_BadRequest, KeyError, ValueError) as exc:
            return 400, {"error": str(exc)}

    def _send(self, status: int, doc: dict[str, Any]) -> None:
        data = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _chain(body: bytes, *, precert: bool) -> list[x509.Certificate]:
    chain = [x509.load_der_x509_certificate(base64.b64decode(c)) for c in json.loads(body)["chain"]]
    if len(chain) < 2:
        raise _BadRequest("the chain must include the issuer")
    poisoned = any(e.oid == ExtensionOID.PRECERT_POISON and e.critical for e in chain[0].extensions)
    if poisoned != precert:
        raise _BadRequest("add-pre-chain takes precertificates, add-chain certificates (RFC 6962 4.1)")
    for child, parent in zip(chain, chain[1:], strict=False):
        try:
            child.verify_directly_issued_by(parent)
        except (InvalidSignature, ValueError, TypeError) as exc:
            raise _BadRequest(f"chain does not verify: {type(exc).__name__} {exc}") from None
    return chain


def _add_chain(log: TestLog, _q: dict[str, str], body: bytes) -> dict[str, Any]:
    return log.add(_chain(body, precert=False), precert=False)


def _add_pre_chain(log: TestLog, _q: dict[str, str], body: bytes) -> dict[str, Any]:
    return log.add(_chain(body, precert=True), precert=True)


def _get_sth(log: TestLog, _q: dict[str, str], _b: bytes) -> dict[str, Any]:
    return log.sth()


def _get_consistency(log: TestLog, q: dict[str, str], _b: bytes) -> dict[str, Any]:
    first, second = int(q["first"]), int(q["second"])
    leaves = log.leaf_hashes()
    if not 0 <= first <= second <= len(leaves):
        raise _BadRequest("bad tree sizes")
    return {"consistency": [_b64(h) for h in merkle.consistency_proof(first, leaves[:second])]}


def _get_proof(log: TestLog, q: dict[str, str], _b: bytes) -> dict[str, Any]:
    wanted, size = base64.b64decode(q["hash"]), int(q["tree_size"])
    leaves = log.leaf_hashes(size)
    if wanted not in leaves:
        raise _BadRequest("hash not in the tree of that size")
    index = leaves.index(wanted)
    return {"leaf_index": index, "audit_path": [_b64(h) for h in merkle.audit_path(index, leaves)]}


def _get_entries(log: TestLog, q: dict[str, str], _b: bytes) -> dict[str, Any]:
    start, end = int(q["start"]), int(q["end"])
    with log._lock:
        chosen = log.entries[start : min(end, start + 255) + 1]
    return {"entries": [{"leaf_input": _b64(e.leaf_input), "extra_data": _b64(e.extra_data)} for e in chosen]}


def _get_roots(log: TestLog, _q: dict[str, str], _b: bytes) -> dict[str, Any]:
    return {"certificates": [_b64(r.public_bytes(serialization.Encoding.DER)) for r in log.roots]}


_ROUTES: dict[tuple[str, str], Callable[[TestLog, dict[str, str], bytes], dict[str, Any]]] = {
    ("POST", "/ct/v1/add-chain"): _add_chain,
    ("POST", "/ct/v1/add-pre-chain"): _add_pre_chain,
    ("GET", "/ct/v1/get-sth"): _get_sth,
    ("GET", "/ct/v1/get-sth-consistency"): _get_consistency,
    ("GET", "/ct/v1/get-proof-by-hash"): _get_proof,
    ("GET", "/ct/v1/get-entries"): _get_entries,
    ("GET", "/ct/v1/get-roots"): _get_roots,
}


def log_list_json(entries: list[tuple[str, dict[str, Any]]]) -> str:
    """A log_list.json v3 with one operator per distinct name: ``[(operator, log.log_list_entry()), ...]``."""
    operators: dict[str, list[dict[str, Any]]] = {}
    for operator, entry in entries:
        operators.setdefault(operator, []).append(entry)
    return json.dumps(
        {
            "version": "1.0",
            "log_list_timestamp": "2026-12-01T00:00:00Z",
            "operators": [
                {"name": name, "email": [f"ct@{name.lower().replace(' ', '')}.example"], "logs": logs}
                for name, logs in operators.items()
            ],
        },
        indent=1,
    )
