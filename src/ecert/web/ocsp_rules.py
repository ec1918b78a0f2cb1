"""The OCSP request rules both responders share: decoding, parsing, error answers, on-demand signing.

The main app's fast path (``web/status.py``) and the dedicated responder (``web/ocsp_server.py``)
keep different caches but must refuse and select answers the same way; the rules live here once.
"""

from __future__ import annotations

import base64
import binascii
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.x509 import ocsp
from sqlalchemy.exc import InterfaceError, OperationalError

from ..core.errors import RateLimited
from ..services import publication
from ..services.context import Context
from ..signer.status import build_ocsp_error

__all__ = [
    "CertKey",
    "ERROR_DER",
    "MAX_REQUEST_BYTES",
    "OcspRefused",
    "SIGN_BURST",
    "SIGN_RATE",
    "SUPPORTED_HASHES",
    "TokenBucket",
    "decode_get",
    "parse_request",
    "sign_on_demand",
]

_log = logging.getLogger("ecert.web.ocsp")

MAX_REQUEST_BYTES = 4096  # an OCSP request for one certificate is about 100 bytes
# On-demand signatures (unknown serials, non-SHA-1 CertIDs, certificates newer than the last job pass)
# are rate-limited per process: a flood of random serials must not turn into a flood of signatures.
SIGN_RATE = 50.0
SIGN_BURST = 200.0

SUPPORTED_HASHES: dict[str, hashes.HashAlgorithm] = {
    "sha1": hashes.SHA1(),
    "sha256": hashes.SHA256(),
    "sha384": hashes.SHA384(),
    "sha512": hashes.SHA512(),
}
# RFC 6960 2.3: error responses are unsigned, so they are built once.
ERROR_DER: dict[str, bytes] = {
    name: build_ocsp_error(name) for name in ("malformedRequest", "unauthorized", "tryLater", "internalError")
}


@dataclass(frozen=True, slots=True)
class CertKey:
    """The CertID of a request (RFC 6960 4.1.1): the hash used, the issuer's name and key hashes, the serial."""

    algorithm: str
    issuer_name_hash: bytes
    issuer_key_hash: bytes
    serial: int

    @property
    def issuer(self) -> tuple[str, bytes, bytes]:
        """The key of :func:`ecert.services.publication.issuer_index`."""
        return (self.algorithm, self.issuer_name_hash, self.issuer_key_hash)


class OcspRefused(Exception):
    """A request answered by an unsigned OCSP error (RFC 6960 2.3); ``status`` names it."""

    def __init__(self, status: str) -> None:
        super().__init__(status)
        self.status = status

    @property
    def der(self) -> bytes:
        return ERROR_DER[self.status]


def decode_get(path_part: str) -> bytes | None:
    """RFC 6960 A.1: GET {url}/{url-encoding of base-64 encoding of the DER request}.

    ``path_part`` is the already percent-decoded rest of the path. URL-safe base64 is tolerated, and so
    is a '+' that some clients send unencoded and a proxy turned into a space.
    """
    text = path_part.strip("/").replace("-", "+").replace("_", "/").replace(" ", "+")
    if not text:
        return None
    text += "=" * (-len(text) % 4)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def parse_request(der: bytes | None, *, max_bytes: int = MAX_REQUEST_BYTES) -> CertKey:
    """The CertID of a single-certificate request, or OcspRefused("malformedRequest").

    RFC 5019 2.1.1: one request per OCSPRequest (cryptography refuses more than one); the CertID hash
    must be one we can compute for our issuers.
    """
    if der is None or not der or len(der) > max_bytes:
        raise OcspRefused("malformedRequest")
    try:
        req = ocsp.load_der_ocsp_request(der)
        key = CertKey(req.hash_algorithm.name, req.issuer_name_hash, req.issuer_key_hash, req.serial_number)
    except Exception:  # noqa: BLE001 - any parse failure is a malformed request
        raise OcspRefused("malformedRequest") from None
    if key.algorithm not in SUPPORTED_HASHES:
        raise OcspRefused("malformedRequest")
    return key


def sign_on_demand(ctx: Context, label: str, key: CertKey, limiter: Callable[[], bool]) -> publication.SignedOcsp:
    """The stored response if fresh, otherwise one signed now; blocking (run it in a worker thread).

    A serial the CA never issued gets "unknown", never "good" (BR 4.9.10); a limiter refusal or an
    unreachable database becomes tryLater and any other failure internalError (RFC 6960 2.3), logged here.
    """
    algorithm = SUPPORTED_HASHES[key.algorithm]
    try:
        return publication.sign_ocsp_now(
            ctx,
            label,
            key.serial,
            request_hash=None if isinstance(algorithm, hashes.SHA1) else algorithm,
            limiter=limiter,
        )
    except RateLimited:
        raise OcspRefused("tryLater") from None
    except (OperationalError, InterfaceError):  # the database is away: a state to wait out, not a fault
        _log.error("OCSP: storage unavailable")
        raise OcspRefused("tryLater") from None
    except Exception:  # noqa: BLE001 - logged; the client gets internalError
        _log.exception("OCSP answer failed")
        raise OcspRefused("internalError") from None


class TokenBucket:
    """A thread-safe token bucket: ``rate`` tokens a second, at most ``burst`` saved up."""

    def __init__(self, rate: float = SIGN_RATE, burst: float = SIGN_BURST) -> None:
        self._rate, self._burst = rate, burst
        self._tokens, self._at = burst, time.monotonic()
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate)
            self._at = now
            if self._tokens < 1:
                return False
            self._tokens -= 1
            return True
