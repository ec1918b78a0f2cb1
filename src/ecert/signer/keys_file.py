"""The file key backend: CA keys as passphrase-encrypted PKCS#8 PEM files in one directory.

Each key is ``<directory>/<label>.key`` (key_ref ``file:<label>.key``), mode 0600, encrypted with
PBES2 (PBKDF2-HMAC-SHA256, AES-256-CBC). The passphrase is held only in memory and never written
beside the keys; it comes from a secrets file or the environment (see ``resolve_passphrase``).
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from ecert.core.errors import KeyBackendError
from ecert.signer.keystore import KeyBackend, KeySpec, check_label

__all__ = ["FileKeyBackend", "KEY_REF_PREFIX"]

KEY_REF_PREFIX = "file:"
_SUFFIX = ".key"
# PBKDF2 rounds for when cryptography lets us choose them for PKCS#8 (it does not yet: see _encryption).
_KDF_ROUNDS = 600_000


def _encryption(passphrase: bytes) -> serialization.KeySerializationEncryption:
    """The strongest PKCS#8 encryption this cryptography offers.

    cryptography 50 accepts ``encryption_builder()`` only for OpenSSH and PKCS#12 and raises
    ValueError for PKCS#8; then ``BestAvailableEncryption`` gives PBES2 with PBKDF2-HMAC-SHA256 and
    AES-256-CBC. When a later release allows the builder for PKCS#8, the higher round count is
    picked up without a code change.
    """
    try:
        from cryptography.hazmat.primitives.serialization.pkcs12 import PBES

        return (
            serialization.PrivateFormat.PKCS8.encryption_builder()
            .kdf_rounds(_KDF_ROUNDS)
            .key_cert_algorithm(PBES.PBESv2SHA256AndAES256CBC)
            .build(passphrase)
        )
    except (ValueError, TypeError, AttributeError, ImportError):
        return serialization.BestAvailableEncryption(passphrase)


def _generate(spec: KeySpec) -> PrivateKeyTypes:
    if spec.algorithm == "RSA":
        assert spec.size is not None  # KeySpec guarantees it
        return rsa.generate_private_key(public_exponent=65537, key_size=spec.size)
    return ec.generate_private_key(spec.ec_curve)


class FileKeyBackend(KeyBackend):
    """CA keys in encrypted files under ``directory``, all protected by one ``passphrase``."""

    kind = "file"

    def __init__(self, directory: Path, passphrase: bytes) -> None:
        if not isinstance(passphrase, bytes) or not passphrase:
            raise KeyBackendError("the file key backend needs a non-empty passphrase (bytes)")
        self._directory = Path(directory)
        self._passphrase = passphrase

    def __repr__(self) -> str:  # never show the passphrase
        return f"FileKeyBackend(directory={str(self._directory)!r})"

    @property
    def directory(self) -> Path:
        return self._directory

    def _path_for(self, key_ref: str) -> Path:
        """Map ``file:<name>.key`` to a path, refusing anything that would leave the directory."""
        if not isinstance(key_ref, str) or not key_ref.startswith(KEY_REF_PREFIX):
            raise KeyBackendError(f"not a file key reference (expected '{KEY_REF_PREFIX}<name>.key')", value=key_ref)
        name = key_ref[len(KEY_REF_PREFIX) :]
        if not name.endswith(_SUFFIX):
            raise KeyBackendError("file key reference must end in '.key'", value=key_ref)
        try:
            check_label(name[: -len(_SUFFIX)])
        except KeyBackendError:
            raise KeyBackendError("file key reference names a path outside the key directory", value=key_ref) from None
        base = self._directory.resolve()
        path = (base / name).resolve()
        if path.parent != base:  # a symlink pointing elsewhere
            raise KeyBackendError("file key reference names a path outside the key directory", value=key_ref)
        return path

    def create_key(self, label: str, spec: KeySpec) -> str:
        """Generate a key for ``spec`` and write it encrypted; refuse if ``label`` is already taken."""
        check_label(label)
        key_ref = f"{KEY_REF_PREFIX}{label}{_SUFFIX}"
        self._directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = self._path_for(key_ref)
        if path.exists() or path.is_symlink():
            raise KeyBackendError("a key with this label already exists; refusing to overwrite it", value=key_ref)
        key = _generate(spec)
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, _encryption(self._passphrase)
        )
        self._write_new(path, pem, key_ref)
        return key_ref

    def _write_new(self, path: Path, data: bytes, key_ref: str) -> None:
        """Write ``data`` to ``path`` atomically with mode 0600, never replacing an existing file.

        The bytes go to a temp file in the same directory (created 0600 from the start), are
        fsynced, then linked into place: ``os.link`` fails if the name exists, so two ceremonies
        racing for one label cannot overwrite each other. Where hard links are unsupported we fall
        back to a check and ``os.replace``.
        """
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        tmp = Path(tmp_name)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise KeyBackendError(
                    "a key with this label already exists; refusing to overwrite it", value=key_ref
                ) from None
            except OSError as exc:
                if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
                    raise
                if path.exists():
                    raise KeyBackendError(
                        "a key with this label already exists; refusing to overwrite it", value=key_ref
                    ) from None
                os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def load_key(self, key_ref: str) -> PrivateKeyTypes:
        """Decrypt and return the key; a wrong passphrase is reported by key_ref, never by passphrase."""
        path = self._path_for(key_ref)
        try:
            st = path.stat()
            data = path.read_bytes()
        except FileNotFoundError:
            raise KeyBackendError("no such key file", value=key_ref) from None
        except OSError as exc:
            raise KeyBackendError(f"cannot read key file: {exc.strerror}", value=key_ref) from None
        if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise KeyBackendError(
                f"key file is readable by others (mode {stat.S_IMODE(st.st_mode):04o}); chmod 600 it",
                value=key_ref,
            )
        try:
            return serialization.load_pem_private_key(data, password=self._passphrase)
        except TypeError:
            # cryptography: "Password was given but private key is not encrypted."
            raise KeyBackendError("key file is not encrypted; refusing to use it", value=key_ref) from None
        except ValueError:
            raise KeyBackendError("cannot decrypt key file: wrong passphrase or damaged file", value=key_ref) from None

    def delete_key(self, key_ref: str) -> None:
        """Remove the key file (the caller's ceremony decides whether a backup must exist first)."""
        path = self._path_for(key_ref)
        try:
            path.unlink()
        except FileNotFoundError:
            raise KeyBackendError("no such key file", value=key_ref) from None
