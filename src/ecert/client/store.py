"""The subscriber's local store: pending requests, issued certificates, CA certificates and CRLs on disk.

Layout (certbot's ``live/NAME/`` files, which admins already know)::

    pending/NAME/{request.csr, key.pem, meta.json}
    live/NAME/{cert.pem, chain.pem, fullchain.pem, privkey.pem, meta.json}
    ca/roots/NAME.pem          trust anchors, installed only on purpose
    ca/intermediates/NAME.pem  issuing CAs and cross-certificates
    crl/NAME.crl               imported CRLs and ARLs (PEM)

Every write goes to a temporary file or directory first and is moved into place with ``os.replace`` or
``os.rename``, so a crash or a refusal never leaves half an entry; keys are 0600 and directories 0700.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from ecert.client.errors import ClientError
from ecert.core.errors import Conflict, NotFound, StorageFailure

__all__ = [
    "CaEntry",
    "CrlEntry",
    "LiveEntry",
    "LocalStore",
    "PendingEntry",
    "atomic_write",
    "default_store_path",
    "load_private_key",
    "safe_name",
    "spki_bytes",
]

KEY_MODE = 0o600
FILE_MODE = 0o644
DIR_MODE = 0o700
_NAME_OK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def default_store_path(env: Mapping[str, str], home: Path | None = None) -> Path:
    """Where the store lives when ``--store`` is not given: ``ECERT_STORE``, else the XDG data dir."""
    if env.get("ECERT_STORE"):
        return Path(env["ECERT_STORE"]).expanduser()
    base = env.get("XDG_DATA_HOME")
    if base:
        return Path(base) / "ecert"
    return (home or Path.home()) / ".local" / "share" / "ecert"


def safe_name(friendly: str) -> str:
    """Turn a friendly name ("Hong Kong Post e-Cert") into a directory name ("Hong-Kong-Post-e-Cert").

    Directory names never contain a path separator or start with a dot, so a name can never
    escape the store.
    """
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", friendly.strip()).strip("-.")[:64]
    if not _NAME_OK.match(slug):
        raise ClientError("the name must contain letters or digits", value=friendly)
    return slug


def spki_bytes(key: Any) -> bytes:
    """The DER SubjectPublicKeyInfo of a public key: how a certificate is matched to its private key."""
    return bytes(key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))


def load_private_key(pem: bytes, passphrase: bytes | None) -> PrivateKeyTypes:
    """Load a stored key, saying plainly whether the passphrase was missing or wrong."""
    try:
        return serialization.load_pem_private_key(pem, password=passphrase)
    except TypeError as exc:
        if passphrase is None:
            raise ClientError("the private key is encrypted: give its passphrase") from exc
        raise ClientError("the private key is not encrypted but a passphrase was given") from exc
    except ValueError as exc:
        raise ClientError("wrong passphrase for the private key (or the key file is damaged)") from exc


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, *, mode: int = FILE_MODE, force: bool = False) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same directory and ``os.replace``.

    The temporary file is created with ``mode`` from the start, so a key is never readable by
    others even for a moment. Refuses to replace an existing file unless ``force``.
    """
    if path.exists() and not force:
        raise Conflict(f"{path} already exists; use --force to replace it", value=str(path))
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise StorageFailure(f"cannot write {path}: {exc.strerror or exc}", value=str(path)) from exc
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _pem_certs(data: bytes) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(data) if data.strip() else []


@dataclass(frozen=True)
class PendingEntry:
    """A request waiting for its certificate: the CSR, the (usually encrypted) key and what was asked."""

    name: str
    path: Path
    meta: Mapping[str, Any]
    csr: x509.CertificateSigningRequest

    @property
    def key_pem(self) -> bytes:
        return (self.path / "key.pem").read_bytes()

    @property
    def csr_pem(self) -> bytes:
        return (self.path / "request.csr").read_bytes()


@dataclass(frozen=True)
class LiveEntry:
    """An issued certificate with its chain (leaf first, root excluded) and key."""

    name: str
    path: Path
    meta: Mapping[str, Any]
    cert: x509.Certificate
    chain: tuple[x509.Certificate, ...] = field(default=())

    @property
    def key_pem(self) -> bytes:
        return (self.path / "privkey.pem").read_bytes()

    @property
    def key_encrypted(self) -> bool:
        return bool(self.meta.get("key_encrypted", False))


@dataclass(frozen=True)
class CaEntry:
    """An installed CA certificate; ``anchor`` roots are trusted, the rest only help build paths."""

    name: str
    path: Path
    cert: x509.Certificate
    anchor: bool


@dataclass(frozen=True)
class CrlEntry:
    """An imported CRL or ARL."""

    name: str
    path: Path
    crl: x509.CertificateRevocationList


def _ca_name(cert: x509.Certificate) -> str:
    """CN plus a fingerprint prefix: the old and the new sub-CA often share a CN (guide, section D)."""
    from cryptography.hazmat.primitives import hashes

    cns = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    base = str(cns[0].value) if cns else cert.subject.rfc4514_string()
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", base).strip("-.")[:48] or "ca"
    return f"{slug}-{cert.fingerprint(hashes.SHA256()).hex()[:8]}"


def is_self_signed(cert: x509.Certificate) -> bool:
    """A self-issued certificate whose signature its own key verifies: a root."""
    if cert.subject != cert.issuer:
        return False
    try:
        cert.verify_directly_issued_by(cert)
    except Exception:  # noqa: BLE001 - any failure means "not a self-signed root"
        return False
    return True


class LocalStore:
    """The files of one subscriber; every method takes and returns values, never prompts."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    # -- layout --------------------------------------------------------------------------------
    @property
    def pending_dir(self) -> Path:
        return self.root / "pending"

    @property
    def live_dir(self) -> Path:
        return self.root / "live"

    @property
    def roots_dir(self) -> Path:
        return self.root / "ca" / "roots"

    @property
    def intermediates_dir(self) -> Path:
        return self.root / "ca" / "intermediates"

    @property
    def crl_dir(self) -> Path:
        return self.root / "crl"

    def ensure(self) -> None:
        """Create the store (0700) or say in one line why it cannot be written; never half-create it."""
        if self.root.exists() and not self.root.is_dir():
            raise StorageFailure(
                f"cannot use the store at {self.root}: it is a file, not a directory", value=str(self.root)
            )
        try:
            for d in (self.pending_dir, self.live_dir, self.roots_dir, self.intermediates_dir, self.crl_dir):
                d.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
            probe = tempfile.NamedTemporaryFile(dir=self.root, prefix=".probe-", delete=True)
            probe.close()
        except OSError as exc:
            raise StorageFailure(
                f"cannot write the store at {self.root}: {exc.strerror or exc}", value=str(self.root)
            ) from exc

    # -- entries written as whole directories ----------------------------------------------------
    def _write_dir(self, parent: Path, name: str, files: Mapping[str, tuple[bytes, int]], force: bool) -> Path:
        """Write a whole entry into a temporary directory, then rename it into place."""
        self.ensure()
        target = parent / name
        if target.exists() and not force:
            raise Conflict(f"{target} already exists; use --force to replace it", value=name)
        try:
            tmp = Path(tempfile.mkdtemp(dir=parent, prefix=f".{name}."))
        except OSError as exc:
            raise StorageFailure(f"cannot write {parent}: {exc.strerror or exc}") from exc
        try:
            os.chmod(tmp, DIR_MODE)
            for fname, (data, mode) in files.items():
                atomic_write(tmp / fname, data, mode=mode)
            old = None
            if target.exists():
                old = parent / f".{name}.old"
                if old.exists():
                    shutil.rmtree(old)
                os.rename(target, old)
            os.rename(tmp, target)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        _fsync_dir(parent)
        return target

    def write_pending(
        self, name: str, *, csr_pem: bytes, key_pem: bytes, meta: Mapping[str, Any], force: bool = False
    ) -> PendingEntry:
        """Store a new request; the key file is 0600 whether or not it is encrypted."""
        path = self._write_dir(
            self.pending_dir,
            safe_name(name),
            {
                "request.csr": (csr_pem, FILE_MODE),
                "key.pem": (key_pem, KEY_MODE),
                "meta.json": (json.dumps(dict(meta), indent=2, sort_keys=True).encode(), FILE_MODE),
            },
            force,
        )
        return self.pending_entry(path.name)

    def write_live(
        self,
        name: str,
        *,
        cert: x509.Certificate,
        chain: list[x509.Certificate],
        key_pem: bytes,
        meta: Mapping[str, Any],
        force: bool = False,
    ) -> LiveEntry:
        """Store an issued certificate as certbot does: cert, chain, fullchain and privkey files."""
        pem = serialization.Encoding.PEM
        cert_pem = cert.public_bytes(pem)
        chain_pem = b"".join(c.public_bytes(pem) for c in chain)
        readme = (
            b"cert.pem       the server certificate alone\n"
            b"chain.pem      the CA certificates that a server sends after it\n"
            b"fullchain.pem  cert.pem followed by chain.pem (nginx ssl_certificate, Apache SSLCertificateFile)\n"
            b"privkey.pem    the private key (0600)\n"
        )
        path = self._write_dir(
            self.live_dir,
            safe_name(name),
            {
                "cert.pem": (cert_pem, FILE_MODE),
                "chain.pem": (chain_pem, FILE_MODE),
                "fullchain.pem": (cert_pem + chain_pem, FILE_MODE),
                "privkey.pem": (key_pem, KEY_MODE),
                "meta.json": (json.dumps(dict(meta), indent=2, sort_keys=True).encode(), FILE_MODE),
                "README": (readme, FILE_MODE),
            },
            force,
        )
        return self.live_entry(path.name)

    def update_live_chain(
        self, name: str, chain: list[x509.Certificate], meta_updates: Mapping[str, Any] | None = None
    ) -> LiveEntry:
        """Rewrite ``chain.pem`` and ``fullchain.pem`` of a live entry (after a CA was installed).

        Each file is replaced atomically; ``fullchain.pem`` is written last, so a server reading it
        never sees a chain that ``chain.pem`` does not also hold. The key and ``cert.pem`` are untouched.
        """
        entry = self.live_entry(name)
        pem = serialization.Encoding.PEM
        cert_pem = entry.cert.public_bytes(pem)
        chain_pem = b"".join(c.public_bytes(pem) for c in chain)
        atomic_write(entry.path / "chain.pem", chain_pem, mode=FILE_MODE, force=True)
        atomic_write(entry.path / "fullchain.pem", cert_pem + chain_pem, mode=FILE_MODE, force=True)
        if meta_updates:
            meta = {**entry.meta, **meta_updates}
            data = json.dumps(meta, indent=2, sort_keys=True).encode()
            atomic_write(entry.path / "meta.json", data, mode=FILE_MODE, force=True)
        return self.live_entry(name)

    def remove_pending(self, name: str) -> None:
        """Drop a pending request once its certificate is live (its key has moved there)."""
        path = self.pending_dir / safe_name(name)
        if path.is_dir():
            shutil.rmtree(path)

    # -- reading ---------------------------------------------------------------------------------
    @staticmethod
    def _meta(path: Path) -> dict[str, Any]:
        try:
            return dict(json.loads((path / "meta.json").read_text()))
        except (OSError, ValueError):
            return {}

    def pending(self) -> list[PendingEntry]:
        if not self.pending_dir.is_dir():
            return []
        return [self.pending_entry(p.name) for p in sorted(self.pending_dir.iterdir()) if self._is_entry(p)]

    def live(self) -> list[LiveEntry]:
        if not self.live_dir.is_dir():
            return []
        return [self.live_entry(p.name) for p in sorted(self.live_dir.iterdir()) if self._is_entry(p)]

    @staticmethod
    def _is_entry(p: Path) -> bool:
        return p.is_dir() and not p.name.startswith(".")

    def pending_entry(self, name: str) -> PendingEntry:
        path = self.pending_dir / safe_name(name)
        if not (path / "request.csr").is_file():
            raise NotFound(f"no pending request named {name!r} in {self.root}", value=name)
        csr = x509.load_pem_x509_csr((path / "request.csr").read_bytes())
        return PendingEntry(name=path.name, path=path, meta=self._meta(path), csr=csr)

    def live_entry(self, name: str) -> LiveEntry:
        path = self.live_dir / safe_name(name)
        if not (path / "cert.pem").is_file():
            raise NotFound(f"no certificate named {name!r} in {self.root}", value=name)
        cert = x509.load_pem_x509_certificate((path / "cert.pem").read_bytes())
        chain = _pem_certs((path / "chain.pem").read_bytes()) if (path / "chain.pem").exists() else []
        return LiveEntry(name=path.name, path=path, meta=self._meta(path), cert=cert, chain=tuple(chain))

    # -- CA certificates -------------------------------------------------------------------------
    def cas(self) -> list[CaEntry]:
        out: list[CaEntry] = []
        for d, anchor in ((self.roots_dir, True), (self.intermediates_dir, False)):
            if d.is_dir():
                for p in sorted(d.glob("*.pem")):
                    out.append(CaEntry(p.stem, p, x509.load_pem_x509_certificate(p.read_bytes()), anchor))
        return out

    def roots(self) -> list[x509.Certificate]:
        return [c.cert for c in self.cas() if c.anchor]

    def intermediates(self) -> list[x509.Certificate]:
        return [c.cert for c in self.cas() if not c.anchor]

    def install_ca(self, cert: x509.Certificate, *, anchor: bool | None = None, force: bool = False) -> CaEntry:
        """Install a CA certificate; self-signed ones become trust anchors unless told otherwise.

        A cross-certificate (same subject as a root, signed by another CA) is not self-signed, so
        it lands with the intermediates, where the verifier uses it to reach the other root.
        """
        bc = _basic_constraints(cert)
        if bc is None or not bc.ca:
            raise ClientError(
                "this is not a CA certificate (basicConstraints cA is not TRUE); "
                "use 'ecert request complete' for a server certificate",
                rule="RFC 5280 4.2.1.9",
            )
        if anchor is None:
            anchor = is_self_signed(cert)
        self.ensure()
        name = _ca_name(cert)
        d = self.roots_dir if anchor else self.intermediates_dir
        path = d / f"{name}.pem"
        if path.exists() and not force:
            return CaEntry(name, path, cert, anchor)  # already installed: idempotent
        atomic_write(path, cert.public_bytes(serialization.Encoding.PEM), force=True)
        return CaEntry(name, path, cert, anchor)

    def remove_ca(self, name: str) -> CaEntry:
        """Remove an installed CA certificate by its store name, or by CN when that is unambiguous."""
        entries = self.cas()
        exact = [e for e in entries if e.name == name]
        if not exact:
            exact = [e for e in entries if e.name.startswith(name) or _cn(e.cert) == name]
        if not exact:
            raise NotFound(f"no installed CA certificate named {name!r}", value=name)
        if len(exact) > 1:
            names = ", ".join(e.name for e in exact)
            raise Conflict(f"{name!r} matches several CA certificates ({names}); give the full name", value=name)
        exact[0].path.unlink()
        return exact[0]

    # -- CRLs ------------------------------------------------------------------------------------
    def crls(self) -> list[CrlEntry]:
        if not self.crl_dir.is_dir():
            return []
        out = []
        for p in sorted(self.crl_dir.glob("*.crl")):
            out.append(CrlEntry(p.stem, p, x509.load_pem_x509_crl(p.read_bytes())))
        return out

    def import_crl(self, crl: x509.CertificateRevocationList) -> CrlEntry:
        """Store a CRL; a newer CRL from the same issuer replaces the older one (one per issuer)."""
        from cryptography.hazmat.primitives import hashes

        self.ensure()
        digest = hashes.Hash(hashes.SHA256())
        digest.update(crl.issuer.public_bytes())
        cns = crl.issuer.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        base = re.sub(r"[^A-Za-z0-9._-]+", "-", str(cns[0].value) if cns else "crl").strip("-.")[:48] or "crl"
        name = f"{base}-{digest.finalize().hex()[:8]}"
        path = self.crl_dir / f"{name}.crl"
        if path.exists():
            old = x509.load_pem_x509_crl(path.read_bytes())
            if old.last_update_utc > crl.last_update_utc:
                raise Conflict(
                    f"a newer CRL from this issuer is already imported (issued {old.last_update_utc:%Y-%m-%d})",
                    value=name,
                )
        atomic_write(path, crl.public_bytes(serialization.Encoding.PEM), force=True)
        return CrlEntry(name, path, crl)


def _basic_constraints(cert: x509.Certificate) -> x509.BasicConstraints | None:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return None


def _cn(cert: x509.Certificate) -> str:
    cns = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return str(cns[0].value) if cns else ""
