"""CA key backends behind one interface: the key spec, the backend contract, the passphrase and the factory.

Services never hold key material: they keep a ``key_ref`` string in the database and ask a
backend for a signing object when they sign. Two backends exist, encrypted PKCS#8 files
(:mod:`ecert.signer.keys_file`) and a PKCS#11 token (:mod:`ecert.signer.keys_pkcs11`); both hand
back an object that cryptography's certificate, CRL and OCSP builders accept as a private key.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes

from ecert.core.errors import BadKey, ConfigError, KeyBackendError

if TYPE_CHECKING:
    from ecert.settings import Settings
    from ecert.signer.keys_file import FileKeyBackend
    from ecert.signer.keys_pkcs11 import Pkcs11KeyBackend

__all__ = [
    "KeySpec",
    "KeyBackend",
    "FileKeyBackend",
    "Pkcs11KeyBackend",
    "check_label",
    "resolve_passphrase",
    "make_backend",
    "backend_from_settings",
]

# BR 6.1.5: RSA moduli of at least 2048 bits (divisible by 8); ECDSA on P-256 or P-384 (P-521 is
# allowed by the BRs but not by the browser root programs' common subset, so we do not offer it).
RSA_SIZES = (2048, 3072, 4096)
EC_CURVES: dict[str, ec.EllipticCurve] = {"P-256": ec.SECP256R1(), "P-384": ec.SECP384R1()}

_SPEC_RE = re.compile(
    r"""^\s*(?:
        (?P<rsa>rsa)[-_ ]?(?P<size>\d+)
      | (?:ec|ecdsa)?[-_ ]?(?:p-?|secp)(?P<curve>256|384)(?:r1)?
      | (?:ec|ecdsa)?[-_ ]?prime(?P<prime>256)v1
    )\s*$""",
    re.IGNORECASE | re.VERBOSE,
)

# A label becomes a file name or a CKA_LABEL: keep it to characters that are safe in both and can
# never climb out of a directory.
_LABEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class KeySpec:
    """What kind of key pair to create: ``KeySpec("RSA", size=2048)`` or ``KeySpec("EC", curve="P-256")``.

    Checked when built, so a spec that exists is one the key policy allows (BR 6.1.5).
    """

    algorithm: Literal["RSA", "EC"]
    size: int | None = None
    curve: str | None = None

    def __post_init__(self) -> None:
        if self.algorithm == "RSA":
            if self.size not in RSA_SIZES or self.curve is not None:
                raise BadKey(
                    f"RSA keys must be {', '.join(map(str, RSA_SIZES))} bits",
                    rule="BR 6.1.5",
                    value=self.size,
                )
        elif self.algorithm == "EC":
            if self.curve not in EC_CURVES or self.size is not None:
                raise BadKey(f"EC keys must use one of {', '.join(EC_CURVES)}", rule="BR 6.1.5", value=self.curve)
        else:
            raise BadKey("key algorithm must be RSA or EC", rule="BR 6.1.5", value=self.algorithm)

    @classmethod
    def parse(cls, text: str) -> KeySpec:
        """Read the short forms operators type: rsa2048, rsa-4096, ec-p256, p384, secp384r1.

        Anything else is refused naming BR 6.1.5, whose key sizes and curves are the only ones offered.
        """
        match = _SPEC_RE.match(text)
        if not match:
            raise BadKey(
                "unknown key spec; use rsa2048, rsa3072, rsa4096, ec-p256 or ec-p384",
                rule="BR 6.1.5",
                value=text,
            )
        if match["rsa"]:
            return cls("RSA", size=int(match["size"]))
        return cls("EC", curve=f"P-{match['curve'] or match['prime']}")

    @property
    def ec_curve(self) -> ec.EllipticCurve:
        """The cryptography curve object of an EC spec."""
        if self.curve is None:
            raise BadKey("not an EC key spec", rule="BR 6.1.5", value=str(self))
        return EC_CURVES[self.curve]

    def __str__(self) -> str:
        if self.algorithm == "RSA":
            return f"rsa{self.size}"
        return f"ec-{str(self.curve).replace('-', '').lower()}"


def check_label(label: str) -> str:
    """Refuse a key label that could not be used safely as a file name and a token label."""
    if not isinstance(label, str) or not _LABEL_RE.match(label):
        raise KeyBackendError(
            "key label must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit",
            value=label,
        )
    return label


class KeyBackend(ABC):
    """Where CA private keys live. A backend creates keys, names them by ``key_ref`` and signs with them.

    The ``key_ref`` is an opaque string the store keeps beside the CA record; it never contains
    secrets. ``load_key`` returns a cryptography private-key object; for a token it is a proxy
    whose ``sign()`` calls the token and whose ``private_bytes()`` refuses.
    """

    kind: str

    @abstractmethod
    def create_key(self, label: str, spec: KeySpec) -> str:
        """Generate a new key pair called ``label`` and return its ``key_ref``; never replaces a key."""

    @abstractmethod
    def load_key(self, key_ref: str) -> PrivateKeyTypes:
        """Return a signing object for ``key_ref`` usable by the certificate, CRL and OCSP builders."""

    def public_key(self, key_ref: str) -> PublicKeyTypes:
        """Return the public half of ``key_ref`` (for the CA certificate and key-match checks)."""
        return self.load_key(key_ref).public_key()

    def delete_key(self, key_ref: str) -> None:
        """Destroy ``key_ref``. Optional: backends that cannot delete say so."""
        raise KeyBackendError(f"the {self.kind} key backend cannot delete keys", value=key_ref)

    def close(self) -> None:  # noqa: B027 - optional hook, nothing to release by default
        """Release sessions or handles; the backend may not be used afterwards."""


def resolve_passphrase(env: Mapping[str, str], env_name: str, file: Path | None) -> bytes:
    """Find the passphrase that protects CA key files: the file if one is named, else the variable.

    ``main()`` passes ``os.environ`` in; this module never reads the environment itself. The
    file wins so that a secrets mount can override a stray variable. One trailing newline is
    stripped because editors and ``echo`` add one.
    """
    if file is not None:
        try:
            raw = Path(file).read_bytes()
        except OSError as exc:
            raise KeyBackendError(
                f"cannot read key passphrase file {file}: {exc.strerror or type(exc).__name__}",
                value=str(file),
            ) from None
        passphrase = raw[:-2] if raw.endswith(b"\r\n") else raw[:-1] if raw.endswith(b"\n") else raw
        if not passphrase:
            raise KeyBackendError(f"key passphrase file {file} is empty", value=str(file))
        return passphrase
    value = env.get(env_name)
    if value:
        return value.encode("utf-8")
    raise KeyBackendError(f"no passphrase: set {env_name} or key_passphrase_file", value=env_name)


def make_backend(
    kind: str,
    *,
    directory: Path | None = None,
    passphrase: bytes | None = None,
    module_path: str | None = None,
    token_label: str | None = None,
    user_pin: str | None = None,
) -> KeyBackend:
    """Build the backend named ``kind`` ("file" or "pkcs11") from the arguments that backend needs."""
    if kind == "file":
        if directory is None or passphrase is None:
            raise ConfigError("the file key backend needs a directory and a passphrase", value=kind)
        from ecert.signer.keys_file import FileKeyBackend

        return FileKeyBackend(directory, passphrase)
    if kind == "pkcs11":
        if not module_path or not token_label or user_pin is None:
            raise ConfigError("the pkcs11 key backend needs a module path, a token label and a PIN", value=kind)
        from ecert.signer.keys_pkcs11 import Pkcs11KeyBackend

        return Pkcs11KeyBackend(module_path, token_label, user_pin)
    raise ConfigError("key backend must be 'file' or 'pkcs11'", value=kind)


def backend_from_settings(settings: Settings, env: Mapping[str, str], *, key_dir: Path | None = None) -> KeyBackend:
    """Build the configured backend: files under ``data_dir/keys`` (or ``key_dir``), or the PKCS#11 token.

    Secrets come from ``env`` (``os.environ`` in ``main()``) under the names the settings give.
    """
    if settings.key_backend == "file":
        passphrase = resolve_passphrase(env, settings.key_passphrase_env, settings.key_passphrase_file)
        return make_backend("file", directory=key_dir or settings.data_dir / "keys", passphrase=passphrase)
    pin = env.get(settings.pkcs11_pin_env)
    if not pin:
        raise KeyBackendError(f"no PKCS#11 PIN: set {settings.pkcs11_pin_env}", value=settings.pkcs11_pin_env)
    return make_backend(
        "pkcs11", module_path=settings.pkcs11_module, token_label=settings.pkcs11_token_label, user_pin=pin
    )


def __getattr__(name: str) -> Any:
    """Re-export the two backends lazily, so importing the interface does not load PKCS#11."""
    if name == "FileKeyBackend":
        from ecert.signer.keys_file import FileKeyBackend

        return FileKeyBackend
    if name == "Pkcs11KeyBackend":
        from ecert.signer.keys_pkcs11 import Pkcs11KeyBackend

        return Pkcs11KeyBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
