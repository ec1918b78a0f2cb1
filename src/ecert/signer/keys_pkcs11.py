"""The PKCS#11 key backend: CA keys generated and kept on a token (softhsm2 in tests, an HSM in production).

A key_ref is ``pkcs11:label=<label>``. ``load_key`` returns a subclass of cryptography's
``RSAPrivateKey`` or ``EllipticCurvePrivateKey`` whose ``sign()`` calls the token, so the
certificate, CRL and OCSP builders sign through the HSM without the key ever leaving it.

Two PKCS#11 facts shape this module. Login is per application and token, not per session: a
second ``C_Login`` fails with CKR_USER_ALREADY_LOGGED_IN and any ``C_Logout`` logs every session
out. So one login session per (module, token) is kept for the life of the process, and each
backend opens its own PIN-less session that inherits the login. And softhsm2 2.6.1 lacks
CKM_ECDSA_SHA256 and friends, so ECDSA hashes in Python and signs the digest with CKM_ECDSA.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn, Self, TypeVar

import pkcs11
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa, utils
from cryptography.hazmat.primitives.asymmetric.padding import AsymmetricPadding, PKCS1v15
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes
from cryptography.utils import Buffer
from pkcs11 import Attribute, KeyType, Mechanism, MechanismFlag, ObjectClass
from pkcs11.util.ec import encode_ec_public_key, encode_named_curve_parameters

from ecert.core.errors import KeyBackendError
from ecert.signer.keystore import KeyBackend, KeySpec, check_label

__all__ = ["Pkcs11KeyBackend", "Pkcs11RSAPrivateKey", "Pkcs11ECPrivateKey", "KEY_REF_PREFIX"]

KEY_REF_PREFIX = "pkcs11:label="

_CURVE_OIDS = {"P-256": "secp256r1", "P-384": "secp384r1"}

# BR 7.1.3.2: SHA-1 signatures are forbidden, so only the SHA-2 family is offered.
_RSA_MECHANISMS: dict[type[hashes.HashAlgorithm], Mechanism] = {
    hashes.SHA256: Mechanism.SHA256_RSA_PKCS,
    hashes.SHA384: Mechanism.SHA384_RSA_PKCS,
    hashes.SHA512: Mechanism.SHA512_RSA_PKCS,
}
# DER DigestInfo prefixes (RFC 8017 section 9.2, note 1) for signing a Prehashed digest with CKM_RSA_PKCS.
_DIGEST_INFO_PREFIX: dict[str, bytes] = {
    "sha256": bytes.fromhex("3031300d060960864801650304020105000420"),
    "sha384": bytes.fromhex("3041300d060960864801650304020205000430"),
    "sha512": bytes.fromhex("3051300d060960864801650304020305000440"),
}
_ALLOWED_HASHES = tuple(_RSA_MECHANISMS)

# Errors after which a fresh session and a fresh login may succeed. The login is redone for all of
# them: after a token restart the login session is as dead as ours, and a token that logged us
# out hides its private objects (a lookup then finds nothing rather than failing).
_SESSION_ERRORS: tuple[type[Exception], ...] = (
    pkcs11.exceptions.SessionHandleInvalid,
    pkcs11.exceptions.SessionClosed,
    pkcs11.exceptions.UserNotLoggedIn,
    pkcs11.exceptions.DeviceRemoved,
    pkcs11.exceptions.TokenNotPresent,
    pkcs11.exceptions.KeyHandleInvalid,
    pkcs11.exceptions.ObjectHandleInvalid,
)

T = TypeVar("T")


def _refuse(what: str) -> NoReturn:
    raise KeyBackendError(f"{what} is not possible: the private key stays on the PKCS#11 token")


def _check_hash(algorithm: hashes.HashAlgorithm) -> None:
    if not isinstance(algorithm, _ALLOWED_HASHES):
        raise KeyBackendError(
            "only SHA-256, SHA-384 and SHA-512 signatures are offered",
            rule="BR 7.1.3.2",
            value=algorithm.name,
        )


def _digest(data: bytes, algorithm: hashes.HashAlgorithm | utils.Prehashed) -> tuple[bytes, hashes.HashAlgorithm]:
    """Hash ``data`` (or accept it as a digest when ``Prehashed``) and return it with its hash algorithm."""
    if isinstance(algorithm, utils.Prehashed):
        inner = algorithm._algorithm
        _check_hash(inner)
        if len(data) != inner.digest_size:
            raise KeyBackendError("prehashed data has the wrong length for its hash", value=len(data))
        return data, inner
    _check_hash(algorithm)
    h = hashes.Hash(algorithm)
    h.update(data)
    return h.finalize(), algorithm


@dataclass(frozen=True)
class _Login:
    session: Any  # pkcs11.Session opened with the user PIN; kept open so the token stays logged in
    pin_digest: bytes


_logins: dict[tuple[str, str], _Login] = {}
_logins_lock = threading.Lock()


def _pin_digest(pin: str) -> bytes:
    return hashlib.sha256(b"ecert-pkcs11-pin\0" + pin.encode("utf-8")).digest()


class Pkcs11KeyBackend(KeyBackend):
    """CA keys on the PKCS#11 token labelled ``token_label`` in ``module_path``, used with ``user_pin``.

    Thread-safe: one session per backend, used under a lock, reopened (with a fresh login if the
    token was logged out) when an operation finds it closed.
    """

    kind = "pkcs11"

    def __init__(self, module_path: str, token_label: str, user_pin: str) -> None:
        self._module_path = module_path
        self._token_label = token_label
        self._pin_digest = _pin_digest(user_pin)
        self._user_pin = user_pin
        self._lock = threading.RLock()
        self._session: Any = None
        self._handles: dict[str, Any] = {}
        try:
            self._lib = pkcs11.lib(module_path)
            self._token = self._lib.get_token(token_label=token_label)
        except pkcs11.exceptions.NoSuchToken:
            raise KeyBackendError("no PKCS#11 token with this label", value=token_label) from None
        except pkcs11.exceptions.PKCS11Error as exc:
            raise KeyBackendError(f"cannot load PKCS#11 module: {type(exc).__name__}", value=module_path) from None
        self._login_key = (
            module_path,
            self._token.serial.hex() if isinstance(self._token.serial, bytes) else str(self._token.serial),
        )
        with self._lock:
            self._open()  # fail at start-up, not at the first signature, when the PIN is wrong

    def __repr__(self) -> str:  # never show the PIN
        return f"Pkcs11KeyBackend(module_path={self._module_path!r}, token_label={self._token_label!r})"

    # -- sessions -----------------------------------------------------------------------------

    def _ensure_login(self) -> None:
        with _logins_lock:
            login = _logins.get(self._login_key)
            if login is not None:
                if not hmac.compare_digest(login.pin_digest, self._pin_digest):
                    raise KeyBackendError(
                        "this process is logged in to the token with a different PIN", value=self._token_label
                    )
                return
            try:
                session = self._token.open(rw=True, user_pin=self._user_pin)
            except (
                pkcs11.exceptions.PinIncorrect,
                pkcs11.exceptions.PinLenRange,
                pkcs11.exceptions.PinInvalid,
            ):
                raise KeyBackendError("PKCS#11 login failed: wrong PIN", value=self._token_label) from None
            except pkcs11.exceptions.PinLocked:
                raise KeyBackendError("PKCS#11 login failed: the PIN is locked", value=self._token_label) from None
            except pkcs11.exceptions.PKCS11Error as exc:
                raise KeyBackendError(f"PKCS#11 login failed: {type(exc).__name__}", value=self._token_label) from None
            _logins[self._login_key] = _Login(session, self._pin_digest)

    def _drop_login(self, seen: _Login | None) -> None:
        """Forget the login ``seen`` when an operation began, unless another backend already renewed it."""
        with _logins_lock:
            login = _logins.get(self._login_key)
            if login is None or login is not seen:
                return
            del _logins[self._login_key]
        try:
            login.session.close()
        except pkcs11.exceptions.PKCS11Error:
            pass

    def _open(self) -> Any:
        if self._session is None:
            self._ensure_login()
            try:
                self._session = self._token.open(rw=True)
            except pkcs11.exceptions.PKCS11Error as exc:
                raise KeyBackendError(
                    f"cannot open a PKCS#11 session: {type(exc).__name__}", value=self._token_label
                ) from None
            self._handles.clear()
        return self._session

    def _discard_session(self) -> None:
        session, self._session = self._session, None
        self._handles.clear()
        if session is not None:
            try:
                session.close()
            except pkcs11.exceptions.PKCS11Error:
                pass

    def _run(self, what: str, operation: Callable[[Any], T]) -> T:
        """Run ``operation(session)`` under the lock, on a fresh session (and login) if the old one was lost.

        Three attempts: the first may find the session gone, the second may race another backend
        renewing the login, the third runs on a fresh session and login.
        """
        with self._lock:
            for attempt in (1, 2, 3):
                session = self._open()
                seen = _logins.get(self._login_key)
                try:
                    return operation(session)
                except _SESSION_ERRORS as exc:
                    if attempt == 3:
                        raise KeyBackendError(f"PKCS#11 {what} failed: {type(exc).__name__}") from None
                    self._discard_session()
                    self._drop_login(seen)
                except KeyBackendError:
                    raise
                except pkcs11.exceptions.PKCS11Error as exc:
                    raise KeyBackendError(f"PKCS#11 {what} failed: {type(exc).__name__}") from None
            raise AssertionError("unreachable")

    def close(self) -> None:
        """Close this backend's session; the process-wide login stays so other backends keep working."""
        with self._lock:
            self._discard_session()

    # -- keys ---------------------------------------------------------------------------------

    @staticmethod
    def _label_of(key_ref: str) -> str:
        if not isinstance(key_ref, str) or not key_ref.startswith(KEY_REF_PREFIX):
            raise KeyBackendError(f"not a PKCS#11 key reference (expected '{KEY_REF_PREFIX}<label>')", value=key_ref)
        return check_label(key_ref[len(KEY_REF_PREFIX) :])

    @staticmethod
    def _find(session: Any, object_class: ObjectClass, label: str) -> list[Any]:
        return list(session.get_objects({Attribute.CLASS: object_class, Attribute.LABEL: label}))

    def create_key(self, label: str, spec: KeySpec) -> str:
        """Generate a key pair on the token: token objects, private key sensitive and never extractable."""
        check_label(label)
        key_ref = f"{KEY_REF_PREFIX}{label}"
        key_id = os.urandom(16)
        private_template: dict[Attribute, Any] = {
            Attribute.TOKEN: True,
            Attribute.PRIVATE: True,
            Attribute.SENSITIVE: True,
            Attribute.EXTRACTABLE: False,
            Attribute.SIGN: True,
            Attribute.DECRYPT: False,
            Attribute.UNWRAP: False,
            Attribute.DERIVE: False,
        }
        public_template: dict[Attribute, Any] = {
            Attribute.TOKEN: True,
            Attribute.VERIFY: True,
            Attribute.ENCRYPT: False,
            Attribute.WRAP: False,
        }

        def generate(session: Any) -> None:
            if self._find(session, ObjectClass.PRIVATE_KEY, label) or self._find(
                session, ObjectClass.PUBLIC_KEY, label
            ):
                raise KeyBackendError("a key with this label already exists on the token; refusing", value=key_ref)
            common = dict(
                id=key_id,
                label=label,
                store=True,
                capabilities=MechanismFlag.SIGN | MechanismFlag.VERIFY,
                public_template=public_template,
                private_template=private_template,
            )
            if spec.algorithm == "RSA":
                public_template[Attribute.PUBLIC_EXPONENT] = b"\x01\x00\x01"  # 65537, minimal big-endian bytes
                session.generate_keypair(KeyType.RSA, spec.size, **common)
            else:
                params = session.create_domain_parameters(
                    KeyType.EC,
                    {Attribute.EC_PARAMS: encode_named_curve_parameters(_CURVE_OIDS[str(spec.curve)])},
                    local=True,
                )
                params.generate_keypair(**common)

        self._run("key generation", generate)
        return key_ref

    def _public_from_token(self, session: Any, label: str, private: Any) -> PublicKeyTypes:
        if private.key_type == KeyType.RSA:
            # MODULUS and PUBLIC_EXPONENT are readable on a sensitive RSA private key.
            n = int.from_bytes(private[Attribute.MODULUS], "big")
            e = int.from_bytes(private[Attribute.PUBLIC_EXPONENT], "big")
            return rsa.RSAPublicNumbers(e, n).public_key()
        publics = self._find(session, ObjectClass.PUBLIC_KEY, label)
        if len(publics) != 1:
            raise KeyBackendError("expected exactly one public key object for this label", value=label)
        return serialization.load_der_public_key(encode_ec_public_key(publics[0]))

    def load_key(self, key_ref: str) -> PrivateKeyTypes:
        """Return a token-backed private key for ``key_ref``; it signs on the token and refuses export."""
        label = self._label_of(key_ref)

        def lookup(session: Any) -> PrivateKeyTypes:
            privates = self._find(session, ObjectClass.PRIVATE_KEY, label)
            if not privates:
                raise KeyBackendError("no such key on the token", value=key_ref)
            if len(privates) > 1:
                raise KeyBackendError("more than one private key with this label on the token", value=key_ref)
            private = privates[0]
            self._handles[label] = private
            public = self._public_from_token(session, label, private)
            if private.key_type == KeyType.RSA:
                assert isinstance(public, rsa.RSAPublicKey)
                return Pkcs11RSAPrivateKey(self, label, public)
            if private.key_type == KeyType.EC:
                assert isinstance(public, ec.EllipticCurvePublicKey)
                return Pkcs11ECPrivateKey(self, label, public)
            raise KeyBackendError("token key is neither RSA nor EC", value=key_ref)

        return self._run("key lookup", lookup)

    def delete_key(self, key_ref: str) -> None:
        """Destroy both halves of the key pair on the token."""
        label = self._label_of(key_ref)

        def destroy(session: Any) -> None:
            objects = self._find(session, ObjectClass.PRIVATE_KEY, label) + self._find(
                session, ObjectClass.PUBLIC_KEY, label
            )
            if not objects:
                raise KeyBackendError("no such key on the token", value=key_ref)
            for obj in objects:
                obj.destroy()
            self._handles.pop(label, None)

        self._run("key deletion", destroy)

    def sign_raw(self, label: str, data: bytes, mechanism: Mechanism) -> bytes:
        """Sign ``data`` with the private key ``label`` using ``mechanism``; the token does the work."""

        def sign(session: Any) -> bytes:
            handle = self._handles.get(label)
            if handle is None:
                privates = self._find(session, ObjectClass.PRIVATE_KEY, label)
                if len(privates) != 1:
                    raise KeyBackendError("no single private key with this label on the token", value=label)
                handle = self._handles[label] = privates[0]
            return bytes(handle.sign(data, mechanism=mechanism))

        return self._run("signature", sign)


class _TokenKey:
    """What both token-key classes share: the private key never leaves the token, and copies are the key."""

    def private_bytes(
        self,
        encoding: serialization.Encoding,
        format: serialization.PrivateFormat,
        encryption_algorithm: serialization.KeySerializationEncryption,
    ) -> bytes:
        _refuse("exporting the private key")

    def __copy__(self) -> Self:
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> Self:
        return self


class Pkcs11RSAPrivateKey(_TokenKey, rsa.RSAPrivateKey):
    """An RSA private key on a token: PKCS#1 v1.5 signatures through the token, nothing else."""

    def __init__(self, backend: Pkcs11KeyBackend, label: str, public: rsa.RSAPublicKey) -> None:
        self._backend = backend
        self._label = label
        self._public = public

    def __repr__(self) -> str:
        return f"<Pkcs11RSAPrivateKey label={self._label!r} bits={self.key_size}>"

    def sign(
        self,
        data: bytes,
        padding: AsymmetricPadding,
        algorithm: hashes.HashAlgorithm | utils.Prehashed | utils.NoDigestInfo,
    ) -> bytes:
        if not isinstance(padding, PKCS1v15):
            raise KeyBackendError(
                "the PKCS#11 backend signs RSA with PKCS#1 v1.5 padding only, not PSS", value=padding.name
            )
        if isinstance(algorithm, utils.NoDigestInfo):
            raise KeyBackendError("RSA signatures without a DigestInfo are not offered", value="NoDigestInfo")
        if isinstance(algorithm, utils.Prehashed):
            digest, inner = _digest(data, algorithm)
            return self._backend.sign_raw(self._label, _DIGEST_INFO_PREFIX[inner.name] + digest, Mechanism.RSA_PKCS)
        _check_hash(algorithm)
        return self._backend.sign_raw(self._label, bytes(data), _RSA_MECHANISMS[type(algorithm)])

    @property
    def key_size(self) -> int:
        return self._public.key_size

    def public_key(self) -> rsa.RSAPublicKey:
        return self._public

    def decrypt(self, ciphertext: bytes, padding: AsymmetricPadding) -> bytes:
        _refuse("decryption with a CA key")

    def private_numbers(self) -> rsa.RSAPrivateNumbers:
        _refuse("reading the private numbers")


class Pkcs11ECPrivateKey(_TokenKey, ec.EllipticCurvePrivateKey):
    """An EC private key on a token: ECDSA over a digest computed here (softhsm2 lacks CKM_ECDSA_SHA256)."""

    def __init__(self, backend: Pkcs11KeyBackend, label: str, public: ec.EllipticCurvePublicKey) -> None:
        self._backend = backend
        self._label = label
        self._public = public

    def __repr__(self) -> str:
        return f"<Pkcs11ECPrivateKey label={self._label!r} curve={self.curve.name}>"

    def sign(self, data: Buffer, signature_algorithm: ec.EllipticCurveSignatureAlgorithm) -> bytes:
        if not isinstance(signature_algorithm, ec.ECDSA):
            raise KeyBackendError("only ECDSA signatures are offered", value=type(signature_algorithm).__name__)
        digest, _ = _digest(bytes(data), signature_algorithm.algorithm)
        raw = self._backend.sign_raw(self._label, digest, Mechanism.ECDSA)
        half = len(raw) // 2
        # PKCS#11 returns r || s; X.509 wants the DER SEQUENCE of two INTEGERs (RFC 5480 section 2.2.3).
        return utils.encode_dss_signature(int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big"))

    @property
    def curve(self) -> ec.EllipticCurve:
        return self._public.curve

    @property
    def key_size(self) -> int:
        return self._public.key_size

    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self._public

    def exchange(self, algorithm: ec.ECDH, peer_public_key: ec.EllipticCurvePublicKey) -> bytes:
        _refuse("key agreement with a CA key")

    def private_numbers(self) -> ec.EllipticCurvePrivateNumbers:
        _refuse("reading the private numbers")
