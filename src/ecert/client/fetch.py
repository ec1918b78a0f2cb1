"""Fetching a CA's published trust material in one go: roots, cross-certificates, issuing CAs, CRLs and the ARL.

The CA lists them in ``/repository/index.json`` with a SHA-256 each. Every file is checked against that
fingerprint as it arrives, the fingerprints are shown for a person to compare with ones obtained another
way (the CA's notice, a phone call), and only then is anything installed. Nothing is installed when any
file fails, so a store is never left with half a chain.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ecert.client.errors import ClientError
from ecert.client.store import LocalStore
from ecert.core.errors import Conflict

__all__ = [
    "INDEX_PATH",
    "Fetched",
    "FetchedItem",
    "Installed",
    "RepositoryClient",
    "check_pins",
    "fingerprint_text",
    "index_url",
    "install",
]

INDEX_PATH = "/repository/index.json"
MAX_BYTES = 4 << 20  # a CRL of many revocations is a few MiB at most; refuse anything larger
ANCHOR_ROLES = frozenset({"root"})


def index_url(url: str) -> str:
    """The index for what a person pastes: the CA's base URL, its /repository/ page, or the index itself."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ClientError("give the CA's address as http(s)://HOST[/repository/]", value=url)
    path = parts.path.rstrip("/")
    if path.endswith("/index.json"):
        return url.strip()
    if path.endswith("/repository"):
        path = path[: -len("/repository")]
    return f"{parts.scheme}://{parts.netloc}{path}{INDEX_PATH}"


def fingerprint_text(sha256_hex: str) -> str:
    """``AB:CD:...``: how openssl and browsers print a SHA-256 fingerprint."""
    return ":".join(sha256_hex[i : i + 2] for i in range(0, len(sha256_hex), 2)).upper()


@dataclass(frozen=True)
class FetchedItem:
    """One downloaded object whose bytes matched the index's SHA-256."""

    kind: str  # certificate | crl | arl
    role: str
    name: str
    url: str
    sha256: str
    certificate: x509.Certificate | None = None
    crl: x509.CertificateRevocationList | None = None

    @property
    def fingerprint(self) -> str:
        return fingerprint_text(self.sha256)


@dataclass(frozen=True)
class Fetched:
    """Everything the index listed, downloaded and checked; nothing is installed yet."""

    index_url: str
    items: tuple[FetchedItem, ...]

    @property
    def roots(self) -> tuple[FetchedItem, ...]:
        return tuple(i for i in self.items if i.kind == "certificate" and i.role in ANCHOR_ROLES)


class RepositoryClient:
    """Reads a CA's public repository; the transport is injected (``httpx.MockTransport`` in tests)."""

    def __init__(self, *, transport: httpx.BaseTransport | None = None, timeout: float = 30.0) -> None:
        self._http = httpx.Client(transport=transport, timeout=timeout, trust_env=False, follow_redirects=False)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RepositoryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get(self, url: str) -> bytes:
        """The body of ``url``, or one sentence saying why not (unreachable, HTTP error, too large)."""
        try:
            resp = self._http.get(url)
        except httpx.HTTPError as exc:
            raise ClientError(f"cannot fetch {url}: {type(exc).__name__.replace('Error', ' error').lower()}") from exc
        if resp.status_code != 200:
            raise ClientError(f"cannot fetch {url}: HTTP {resp.status_code}")
        if len(resp.content) > MAX_BYTES:
            raise ClientError(f"{url} is {len(resp.content)} bytes; refusing more than {MAX_BYTES}")
        return resp.content

    def fetch(self, url: str) -> Fetched:
        """Download the index at (or for) ``url`` and every file it lists, checking each SHA-256."""
        where = index_url(url)
        index = _parse_index(self.get(where), where)
        items = [self._item(where, "certificate", e) for e in index.get("certificates", [])]
        items += [self._item(where, str(e.get("kind", "crl")), e) for e in index.get("crls", [])]
        if not any(i.role in ANCHOR_ROLES for i in items):
            raise ClientError(f"the index at {where} lists no root certificate")
        return Fetched(where, tuple(items))

    def _item(self, base: str, kind: str, entry: dict[str, Any]) -> FetchedItem:
        url = urljoin(base, str(entry.get("url", "")))
        want = str(entry.get("sha256", "")).lower()
        data = self.get(url)
        return _checked_item(kind, entry, url, want, data)


def _parse_index(data: bytes, where: str) -> dict[str, Any]:
    import json

    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise ClientError(f"{where} is not a repository index (not JSON)") from exc
    if not isinstance(doc, dict) or doc.get("schema") != 1:
        raise ClientError(f"{where} is not a repository index this version of ecert reads (schema 1)")
    return doc


def _checked_item(kind: str, entry: dict[str, Any], url: str, want: str, data: bytes) -> FetchedItem:
    """Parse one download and refuse it unless its DER hashes to the SHA-256 the index gave."""
    role, name = str(entry.get("role", "")), str(entry.get("name", entry.get("label", "")))
    cert = crl = None
    try:
        if kind == "certificate":
            pem = data.lstrip().startswith(b"-----")
            cert = x509.load_pem_x509_certificate(data) if pem else x509.load_der_x509_certificate(data)
            der = cert.public_bytes(serialization.Encoding.DER)
        else:
            crl = x509.load_pem_x509_crl(data) if data.lstrip().startswith(b"-----") else x509.load_der_x509_crl(data)
            der = crl.public_bytes(serialization.Encoding.DER)
    except ValueError as exc:
        raise ClientError(f"{url} is not a readable {'certificate' if kind == 'certificate' else 'CRL'}") from exc
    got = hashlib.sha256(der).hexdigest()
    if got != want:
        raise ClientError(
            f"{url} does not match the fingerprint the index gives (index {fingerprint_text(want)[:23]}..., "
            f"file {fingerprint_text(got)[:23]}...); nothing was installed"
        )
    return FetchedItem(kind=kind, role=role, name=name, url=url, sha256=got, certificate=cert, crl=crl)


def check_pins(fetched: Fetched, pins: Sequence[str]) -> None:
    """Refuse unless every root fetched is one of the SHA-256 fingerprints the person gave (any spelling)."""
    wanted = {p.replace(":", "").replace(" ", "").lower() for p in pins}
    for root in fetched.roots:
        if root.sha256 not in wanted:
            raise ClientError(
                f"the root {root.name!r} has SHA-256 {root.fingerprint}, which is not a fingerprint you gave; "
                "nothing was installed"
            )


@dataclass(frozen=True)
class Installed:
    """What ``install`` put in the store, and what it left as it was."""

    cas: tuple[str, ...]
    crls: tuple[str, ...]
    notes: tuple[str, ...]


def install(store: LocalStore, fetched: Fetched) -> Installed:
    """Install roots as trust anchors, the rest as intermediates, and import each CRL and the ARL."""
    store.ensure()
    cas: list[str] = []
    crls: list[str] = []
    notes: list[str] = []
    for item in fetched.items:
        if item.certificate is not None:
            entry = store.install_ca(item.certificate, anchor=item.role in ANCHOR_ROLES)
            cas.append(entry.name)
        elif item.crl is not None:
            try:
                crls.append(store.import_crl(item.crl).name)
            except Conflict as exc:
                notes.append(f"{item.name}: {exc}")
    return Installed(tuple(cas), tuple(crls), tuple(notes))
