"""The subscriber's local store: pending requests, issued certificates, CA certificates and CRLs on disk.

Layout (certbot's ``live/NAME/`` files, which admins already know)::

    pending/NAME/{request.csr, key.pem, meta.json}
    archive/NAME/{cert1.pem, chain1.pem, fullchain1.pem, privkey1.pem, meta1.json, cert2.pem, ...}
    live/NAME -> .NAME.vN      the current version (a relative symlink, switched by one rename)
    live/.NAME.vN/{cert.pem, chain.pem, fullchain.pem, privkey.pem, meta.json} -> ../../archive/NAME/*N.*
    ca/roots/NAME.pem          trust anchors, installed only on purpose
    ca/intermediates/NAME.pem  issuing CAs and cross-certificates
    crl/NAME.crl               imported CRLs and ARLs (PEM)

Every write goes to a temporary file or directory first and is moved into place with ``os.replace`` or
``os.rename``, so a crash or a refusal never leaves half an entry; keys are 0600 and directories 0700.

Issued certificates keep their history as certbot's lineages do, with one difference: certbot switches
each ``live/NAME/*.pem`` link on its own, so a server reloading at that moment can pair a new
certificate with the old key. Here ``live/NAME`` is itself a symlink to a directory of links for one
version; a new version gets a new link directory and ``live/NAME`` is replaced by ``rename(2)``, which
is atomic, so ``live/NAME`` is never missing and never mixes two versions. A store written before
versions existed (``live/NAME`` a plain directory) is read as it is and becomes version 1 when the next
version is added.
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
    "VERSIONED_FILES",
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
# The files of one version: live name -> archive stem (certbot's names; meta.json carries ours).
VERSIONED_FILES = {
    "cert.pem": "cert",
    "chain.pem": "chain",
    "fullchain.pem": "fullchain",
    "privkey.pem": "privkey",
    "meta.json": "meta",
}
_README = (
    b"cert.pem       the server certificate alone\n"
    b"chain.pem      the CA certificates that a server sends after it\n"
    b"fullchain.pem  cert.pem followed by chain.pem (nginx ssl_certificate, Apache SSLCertificateFile)\n"
    b"privkey.pem    the private key (0600)\n"
    b"Each is a link into ../../archive/NAME/, which keeps every version; 'ecert list' counts them.\n"
)
_ARCHIVE_FILE = re.compile(r"^cert(\d+)\.pem$")


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
    version: int = 1
    files: Path | None = None  # the directory the files were read from (one version), if not ``path``

    @property
    def key_pem(self) -> bytes:
        """The key of this very version, even if ``live/NAME`` has moved on since it was read."""
        return ((self.files or self.path) / "privkey.pem").read_bytes()

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

    @property
    def archive_dir(self) -> Path:
        return self.root / "archive"

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
        """Store an issued certificate; an existing one is kept in the archive and the new one becomes current.

        Without ``force`` an existing name is refused, so a second certificate never replaces the first by
        accident; with it the old version stays in ``archive/NAME/`` (certbot's lineage).
        """
        slug = safe_name(name)
        if self._live_exists(slug) and not force:
            raise Conflict(f"{self.live_dir / slug} already exists; use --force to add a new version", value=slug)
        return self.add_version(slug, cert=cert, chain=chain, key_pem=key_pem, meta=meta)

    def add_version(
        self,
        name: str,
        *,
        cert: x509.Certificate,
        chain: list[x509.Certificate],
        key_pem: bytes,
        meta: Mapping[str, Any],
    ) -> LiveEntry:
        """Archive a new version of ``name`` and make it current with one atomic switch of ``live/NAME``.

        The archive files are written first (a crash leaves an unused version, never a broken live
        entry); renewal builds on this call.
        """
        slug = safe_name(name)
        self.ensure()
        self._migrate_plain_live(slug)
        archive = self.archive_dir / slug
        archive.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        number = max(self.versions(slug), default=0) + 1
        pem = serialization.Encoding.PEM
        cert_pem = cert.public_bytes(pem)
        chain_pem = b"".join(c.public_bytes(pem) for c in chain)
        contents = {
            "cert": (cert_pem, FILE_MODE),
            "chain": (chain_pem, FILE_MODE),
            "fullchain": (cert_pem + chain_pem, FILE_MODE),
            "privkey": (key_pem, KEY_MODE),
            "meta": (_meta_bytes({**meta, "version": number}), FILE_MODE),
        }
        for stem, (data, mode) in contents.items():
            atomic_write(archive / _archive_name(stem, number), data, mode=mode)
        self._switch_live(slug, number)
        return self.live_entry(slug)

    def versions(self, name: str) -> list[int]:
        """The version numbers kept for ``name``, oldest first; a store from before versions has [1]."""
        slug = safe_name(name)
        archive = self.archive_dir / slug
        found = sorted(
            int(m.group(1))
            for p in (archive.iterdir() if archive.is_dir() else ())
            if (m := _ARCHIVE_FILE.match(p.name))
        )
        if not found and (self.live_dir / slug / "cert.pem").is_file():
            return [1]
        return found

    def current(self, name: str) -> LiveEntry:
        """The version ``live/NAME`` points at now."""
        return self.live_entry(name)

    def _live_exists(self, slug: str) -> bool:
        return (self.live_dir / slug).is_symlink() or (self.live_dir / slug).exists()

    def _switch_live(self, slug: str, number: int) -> None:
        """Build ``live/.NAME.vN`` (relative links into the archive), then rename a fresh link over ``live/NAME``."""
        links = self.live_dir / f".{slug}.v{number}"
        if links.exists():
            shutil.rmtree(links)
        links.mkdir(mode=DIR_MODE)
        for live_name, stem in VERSIONED_FILES.items():
            os.symlink(Path("..", "..", "archive", slug, _archive_name(stem, number)), links / live_name)
        atomic_write(links / "README", _README.replace(b"NAME", slug.encode()), force=True)
        tmp = self.live_dir / f".{slug}.link-{os.getpid()}"
        tmp.unlink(missing_ok=True)
        os.symlink(links.name, tmp)
        os.replace(tmp, self.live_dir / slug)  # rename(2): readers see the old version or the new, never nothing
        _fsync_dir(self.live_dir)
        self._prune_link_dirs(slug, keep={number, number - 1})

    def _prune_link_dirs(self, slug: str, keep: set[int]) -> None:
        """Drop link directories of versions before the previous one (a reader may still be in the previous)."""
        for d in self.live_dir.glob(f".{glob_escape(slug)}.v*"):
            suffix = d.name.rsplit(".v", 1)[-1]
            if suffix.isdigit() and int(suffix) not in keep:
                shutil.rmtree(d, ignore_errors=True)

    def _migrate_plain_live(self, slug: str) -> None:
        """Turn a pre-versions ``live/NAME`` directory into version 1 without a moment where it is missing.

        Its files are copied into the archive as version 1 and a link directory made for them; then the
        plain directory and the new link are swapped with ``renameat2(RENAME_EXCHANGE)`` where the kernel
        has it (Linux 3.15+), else renamed aside and replaced within microseconds.
        """
        plain = self.live_dir / slug
        if plain.is_symlink() or not plain.is_dir():
            return
        archive = self.archive_dir / slug
        archive.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        for live_name, stem in VERSIONED_FILES.items():
            src = plain / live_name
            if src.is_file():
                mode = KEY_MODE if stem == "privkey" else FILE_MODE
                atomic_write(archive / _archive_name(stem, 1), src.read_bytes(), mode=mode, force=True)
        links = self.live_dir / f".{slug}.v1"
        if links.exists():
            shutil.rmtree(links)
        links.mkdir(mode=DIR_MODE)
        for live_name, stem in VERSIONED_FILES.items():
            os.symlink(Path("..", "..", "archive", slug, _archive_name(stem, 1)), links / live_name)
        atomic_write(links / "README", _README.replace(b"NAME", slug.encode()), force=True)
        tmp = self.live_dir / f".{slug}.link-{os.getpid()}"
        tmp.unlink(missing_ok=True)
        os.symlink(links.name, tmp)
        if _exchange(tmp, plain):
            shutil.rmtree(tmp)  # tmp is now the old plain directory
        else:
            aside = self.live_dir / f".{slug}.plain"
            os.rename(plain, aside)
            os.rename(tmp, plain)
            shutil.rmtree(aside, ignore_errors=True)
        _fsync_dir(self.live_dir)

    def update_live_chain(
        self, name: str, chain: list[x509.Certificate], meta_updates: Mapping[str, Any] | None = None
    ) -> LiveEntry:
        """Rewrite the chain of the current version (after a CA was installed); not a new version.

        Each archive file is replaced atomically; ``fullchain`` is written last, so a server reading it
        never sees a chain that ``chain.pem`` does not also hold. The key and ``cert.pem`` are untouched.
        """
        entry = self.live_entry(name)
        files = entry.files or entry.path
        pem = serialization.Encoding.PEM
        cert_pem = entry.cert.public_bytes(pem)
        chain_pem = b"".join(c.public_bytes(pem) for c in chain)
        atomic_write((files / "chain.pem").resolve(), chain_pem, mode=FILE_MODE, force=True)
        atomic_write((files / "fullchain.pem").resolve(), cert_pem + chain_pem, mode=FILE_MODE, force=True)
        if meta_updates:
            meta = {**entry.meta, **meta_updates}
            atomic_write((files / "meta.json").resolve(), _meta_bytes(meta), mode=FILE_MODE, force=True)
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
        """The current version, read from the directory ``live/NAME`` resolves to at this moment.

        Resolving once means a switch while we read cannot pair one version's certificate with
        another's chain or key.
        """
        path = self.live_dir / safe_name(name)
        files = path.resolve() if path.is_symlink() else path
        if not (files / "cert.pem").is_file():
            raise NotFound(f"no certificate named {name!r} in {self.root}", value=name)
        cert = x509.load_pem_x509_certificate((files / "cert.pem").read_bytes())
        chain = _pem_certs((files / "chain.pem").read_bytes()) if (files / "chain.pem").exists() else []
        meta = self._meta(files)
        version = int(meta.get("version", 1)) if str(meta.get("version", 1)).isdigit() else 1
        return LiveEntry(
            name=path.name, path=path, meta=meta, cert=cert, chain=tuple(chain), version=version, files=files
        )

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


def _archive_name(stem: str, number: int) -> str:
    return f"{stem}{number}.json" if stem == "meta" else f"{stem}{number}.pem"


def _meta_bytes(meta: Mapping[str, Any]) -> bytes:
    return json.dumps(dict(meta), indent=2, sort_keys=True).encode()


def glob_escape(text: str) -> str:
    """A store name inside a glob pattern: safe names hold no glob characters but '[' is escaped anyway."""
    return re.sub(r"([*?\[])", r"[\1]", text)


_RENAME_EXCHANGE = 2


def _exchange(a: Path, b: Path) -> bool:
    """Swap two directory entries atomically with Linux ``renameat2(RENAME_EXCHANGE)``; False if unavailable."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    rc = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE)
    return bool(rc == 0)


def _basic_constraints(cert: x509.Certificate) -> x509.BasicConstraints | None:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return None


def _cn(cert: x509.Certificate) -> str:
    cns = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return str(cns[0].value) if cns else ""
