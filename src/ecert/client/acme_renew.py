"""Renewing a stored certificate over ACME: ask whether it is time, order the same names, store a new version.

The steps, one function each: read the lineage and its account; ask ARI (RFC 9773) for the CA's window, or
fall back to two thirds of the lifetime; make the key (new by default); order with ``replaces``; prove
control (``acme_challenges``); finalize and download; add the version to the store (the previous one is
kept, ``live/NAME`` switches at once); write again what ``ecert deploy`` wrote. The protocol is certbot's
``acme.client.ClientV2``; the one field it lacks on newOrder, ``replaces``, comes from a subclass.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import fcntl
import hashlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from acme import client as acme_client
from acme import crypto_util, messages
from acme import errors as acme_errors
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from josepy.errors import DeserializationError
from josepy.json_util import field as jose_field

from ecert.client.acme_account import AcmeAccount, connect, find_account
from ecert.client.acme_challenges import ChallengeOptions, published
from ecert.client.errors import ClientError
from ecert.client.redeploy import Redeployed, redeploy, run_deploy_hook
from ecert.client.store import LiveEntry, LocalStore, is_self_signed, load_private_key, spki_bytes
from ecert.core.errors import EcertError

__all__ = [
    "Decision",
    "RenewOptions",
    "RenewResult",
    "RenewStatus",
    "RenewalWindow",
    "ReplacingNewOrder",
    "ari_cert_id",
    "decide",
    "obtain",
    "renew",
    "renew_all",
]

LIFETIME_FRACTION = 2 / 3  # renew when two thirds of the lifetime have passed (Let's Encrypt's and ARI's default)
ORDER_TIMEOUT = dt.timedelta(seconds=90)
DEFAULT_RETRY = dt.timedelta(hours=6)  # RFC 9773 4.3.3: without Retry-After, ask again in about six hours


class RenewStatus(StrEnum):
    RENEWED = "renewed"
    NOT_DUE = "not-due"  # the lifetime rule says later: exit 0
    NOT_YET = "not-yet"  # the CA's ARI window says later: exit 3
    DUE = "due"  # due, and ``check_only`` asked only whether: exit 0
    FAILED = "failed"


class ReplacingNewOrder(messages.NewOrder):
    """newOrder with RFC 9773 section 5's ``replaces``: the ARI certificate id of the certificate this renews."""

    replaces: str | None = jose_field("replaces", omitempty=True)


@dataclass(frozen=True)
class RenewalWindow:
    """The CA's suggested window (RFC 9773 4.2) and when to ask again."""

    start: dt.datetime
    end: dt.datetime
    retry_after: dt.datetime | None = None
    explanation: str | None = None


@dataclass(frozen=True)
class Decision:
    """Whether to renew now, when, and on whose word (``ari``, ``lifetime`` or ``force``)."""

    due: bool
    at: dt.datetime
    source: str


@dataclass(frozen=True)
class RenewOptions:
    """What the person asked for; ``server`` and ``ca_bundle`` override what the lineage and account remember."""

    challenges: ChallengeOptions = field(default_factory=ChallengeOptions)
    force: bool = False
    reuse_key: bool = False
    check_only: bool = False
    deploy_hook: str | None = None
    profile: str | None = None  # draft-aaron-acme-profiles; None: the lineage's, else the CA's default
    server: str | None = None
    ca_bundle: str | None = None
    passphrase: bytes | None = None
    timeout: dt.timedelta = ORDER_TIMEOUT


@dataclass(frozen=True)
class RenewResult:
    """The outcome for one lineage, as ``--json`` prints it."""

    name: str
    status: RenewStatus
    decision: Decision | None = None
    version: int | None = None
    not_after: dt.datetime | None = None
    replaces: str | None = None
    deployed: tuple[Redeployed, ...] = ()
    error: str | None = None
    notes: tuple[str, ...] = ()
    hook_error: str | None = None

    @property
    def deploy_failed(self) -> bool:
        """Renewed, but a server was not given the new files (or not reloaded): a cron job must hear of it."""
        return self.hook_error is not None or any(r.error for r in self.deployed)

    def to_json(self) -> dict[str, Any]:
        d = self.decision
        return {
            "name": self.name,
            "status": self.status.value,
            "due_at": d.at.isoformat() if d else None,
            "decided_by": d.source if d else None,
            "version": self.version,
            "not_after": self.not_after.isoformat() if self.not_after else None,
            "replaces": self.replaces,
            "deployed": [
                {
                    "format": r.record.format.value,
                    "out": str(r.record.out),
                    "files": [str(p) for p in r.files],
                    "error": r.error,
                }
                for r in self.deployed
            ],
            "error": self.error,
            "hook_error": self.hook_error,
            "notes": list(self.notes),
        }


# -- when ----------------------------------------------------------------------------------------
def ari_cert_id(cert: x509.Certificate) -> str:
    """RFC 9773 4.1: base64url(AKI keyIdentifier) "." base64url(DER serial bytes), no padding."""
    try:
        aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    except x509.ExtensionNotFound as exc:
        raise ClientError("the certificate has no authority key identifier, so ARI cannot name it") from exc
    if aki is None:
        raise ClientError("the certificate's authority key identifier has no keyIdentifier, so ARI cannot name it")
    serial = cert.serial_number
    serial_der = serial.to_bytes((serial.bit_length() + 8) // 8, "big", signed=True)  # room for the sign bit
    return f"{_b64url(aki)}.{_b64url(serial_der)}"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _point_in_window(window: RenewalWindow, cert: x509.Certificate) -> dt.datetime:
    """A time inside the window chosen by the certificate's serial (RFC 9773 4.2 asks for a spread).

    Uniform over the window across certificates, yet the same on every run for one certificate: a daily
    cron job does not flip between "due" and "not yet" as a fresh random draw would.
    """
    digest = hashlib.sha256(cert.serial_number.to_bytes(20, "big", signed=True)).digest()
    fraction = int.from_bytes(digest[:8], "big") / 2**64
    return window.start + (window.end - window.start) * fraction


def decide(cert: x509.Certificate, now: dt.datetime, window: RenewalWindow | None, *, force: bool = False) -> Decision:
    """Renew now with ``force``; else at the ARI point when the CA gave a window; else at two thirds of the lifetime.

    An expired certificate is due whatever the window says (RFC 9773 4.3: never ask ARI about it).
    """
    if force:
        return Decision(True, now, "force")
    not_before, not_after = cert.not_valid_before_utc, cert.not_valid_after_utc
    if not_after <= now:
        return Decision(True, not_after, "expired")
    if window is not None:
        at = _point_in_window(window, cert)
        return Decision(now >= at, at, "ari")
    at = not_before + (not_after - not_before) * LIFETIME_FRACTION
    return Decision(now >= at, at, "lifetime")


def _has(directory: messages.Directory, name: str) -> bool:
    try:
        directory[name]
    except KeyError:
        return False
    return True


def fetch_window(client: acme_client.ClientV2, cert: x509.Certificate, now: dt.datetime) -> RenewalWindow | None:
    """GET renewalInfo/CERT-ID when the directory offers it (RFC 9773 4.3); None when it does not."""
    if not _has(client.directory, "renewalInfo") or cert.not_valid_after_utc <= now:
        return None
    url = f"{str(client.directory['renewalInfo']).rstrip('/')}/{ari_cert_id(cert)}"
    try:
        resp = client.net.get(url, content_type="application/json")
        info = messages.RenewalInfo.from_json(resp.json())
    except (acme_errors.Error, messages.Error, OSError, ValueError, DeserializationError) as exc:
        raise ClientError(f"the ACME server's renewalInfo answer could not be read ({url}): {exc}") from exc
    window = info.suggested_window
    retry = acme_client.ClientV2.retry_after(resp, int(DEFAULT_RETRY.total_seconds()))
    return RenewalWindow(
        start=_aware(window.start),
        end=_aware(window.end),
        retry_after=retry.replace(tzinfo=dt.UTC) if retry.tzinfo is None else retry,
        explanation=resp.json().get("explanationURL"),
    )


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


# -- the key and the CSR -------------------------------------------------------------------------
def _key_like(cert: x509.Certificate) -> PrivateKeyTypes:
    """A fresh key of the same type and size as the certificate's: the server's clients already accept it."""
    public = cert.public_key()
    if isinstance(public, ec.EllipticCurvePublicKey):
        return ec.generate_private_key(public.curve)
    if isinstance(public, rsa.RSAPublicKey):
        return rsa.generate_private_key(public_exponent=65537, key_size=public.key_size)
    raise ClientError(f"cannot renew a certificate with a {type(public).__name__} key; only RSA and EC")


def _plain_pem(key: PrivateKeyTypes) -> bytes:
    # Unencrypted and 0600, as certbot keeps it: an unattended renewal cannot type a passphrase.
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _renewal_key(entry: LiveEntry, opts: RenewOptions) -> tuple[PrivateKeyTypes, bytes, bool]:
    """(key, PEM to store, stored encrypted?): a new key by default, the lineage's own with ``reuse_key``."""
    if not opts.reuse_key:
        key = _key_like(entry.cert)
        return key, _plain_pem(key), False
    pem = entry.key_pem
    encrypted = b"ENCRYPTED" in pem.split(b"\n", 1)[0]
    if encrypted and opts.passphrase is None:
        raise ClientError(f"the key of {entry.name} is encrypted: give --passphrase-file to reuse it")
    return load_private_key(pem, opts.passphrase if encrypted else None), pem, encrypted


def _dns_names(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound as exc:
        raise ClientError("the certificate has no subjectAltName: nothing to order") from exc
    return list(san.get_values_for_type(x509.DNSName))


# -- the order -----------------------------------------------------------------------------------
def _new_order(
    client: acme_client.ClientV2, csr_pem: bytes, replaces: str | None, profile: str | None
) -> messages.OrderResource:
    """ClientV2.new_order with ``replaces`` (the library's NewOrder lacks it); the rest as the library does it."""
    names = _csr_names(csr_pem)
    order = ReplacingNewOrder(
        identifiers=[messages.Identifier(typ=messages.IDENTIFIER_FQDN, value=n) for n in names],
        replaces=replaces,
        profile=profile,
    )
    response = client._post(client.directory["newOrder"], order)  # noqa: SLF001 - the library's own POST
    body = messages.Order.from_json(response.json())
    authzrs = [
        client._authzr_from_response(client._post_as_get(url), uri=url)  # noqa: SLF001
        for url in body.authorizations
    ]
    return messages.OrderResource(
        body=body, uri=response.headers.get("Location"), authorizations=authzrs, csr_pem=csr_pem
    )


def _csr_names(csr_pem: bytes) -> list[str]:
    csr = x509.load_pem_x509_csr(csr_pem)
    names, _ = crypto_util.get_identifiers_from_x509(csr.subject, csr.extensions)
    return names


def _issue(
    client: acme_client.ClientV2,
    account: AcmeAccount,
    csr_pem: bytes,
    replaces: str | None,
    opts: RenewOptions,
    profile: str | None = None,
) -> str:
    """Order, prove, finalize; the full chain PEM. ACME's refusals become one sentence of ours."""
    try:
        orderr = _new_order(client, csr_pem, replaces, profile)
        with published(account.key, orderr.authorizations, opts.challenges) as answers:
            for challb, response in answers:
                client.answer_challenge(challb, response)
            deadline = dt.datetime.now() + opts.timeout  # naive local time: what the library compares with
            orderr = client.poll_and_finalize(orderr, deadline)
    except acme_errors.ValidationError as exc:
        raise ClientError(f"the ACME server could not validate: {_authz_failures(exc)}") from exc
    except messages.Error as exc:
        raise ClientError(f"the ACME server refused the order ({exc.typ}): {exc.detail or exc}") from exc
    except acme_errors.TimeoutError as exc:
        raise ClientError(f"the order was not finished within {int(opts.timeout.total_seconds())} s") from exc
    except acme_errors.Error as exc:
        raise ClientError(f"the ACME order failed: {exc}") from exc
    if not orderr.fullchain_pem:
        raise ClientError("the ACME server finished the order without a certificate")
    return str(orderr.fullchain_pem)


def _authz_failures(exc: acme_errors.ValidationError) -> str:
    parts = []
    for authzr in exc.failed_authzrs:
        for challb in authzr.body.challenges:
            if challb.error is not None:
                parts.append(f"{authzr.body.identifier.value}: {challb.error.detail or challb.error.typ}")
    return "; ".join(parts) or "an authorization became invalid"


def _split_chain(fullchain_pem: str, key: PrivateKeyTypes) -> tuple[x509.Certificate, list[x509.Certificate]]:
    """Leaf and intermediates; the leaf must carry our key (a CA answering with someone else's is refused)."""
    certs = x509.load_pem_x509_certificates(fullchain_pem.encode())
    if not certs:
        raise ClientError("the ACME server sent no certificate")
    leaf, rest = certs[0], certs[1:]
    if spki_bytes(leaf.public_key()) != spki_bytes(key.public_key()):
        raise ClientError("the certificate the ACME server sent is not for the key this renewal made")
    return leaf, [c for c in rest if not is_self_signed(c)]  # a root is the client's, not the server's, to send


# -- the lineage ---------------------------------------------------------------------------------
def _acme_meta(meta: Mapping[str, Any]) -> Mapping[str, Any]:
    value = meta.get("acme")
    return value if isinstance(value, Mapping) else {}


def _new_meta(
    old: Mapping[str, Any],
    account: AcmeAccount,
    names: list[str],
    encrypted: bool,
    replaces: str | None,
    now: dt.datetime,
    profile: str | None = None,
) -> dict[str, Any]:
    kept = {k: v for k, v in old.items() if k not in ("version", "serial_hex", "key_encrypted")}
    return {
        **kept,
        "names": names,
        "key_encrypted": encrypted,
        "renewed": now.isoformat(),
        "acme": {"directory": account.directory, "account": account.uri, "replaced": replaces, "profile": profile},
    }


def _open(store: LocalStore, entry: LiveEntry | None, opts: RenewOptions) -> tuple[AcmeAccount, acme_client.ClientV2]:
    server = opts.server or (str(_acme_meta(entry.meta).get("directory") or "") if entry else "") or None
    account = find_account(store, server)
    client = connect(
        account.directory, account.key, ca_bundle=opts.ca_bundle or account.ca_bundle, account_uri=account.uri
    )
    return account, client


def _window(
    client: acme_client.ClientV2, cert: x509.Certificate, now: dt.datetime, notes: list[str]
) -> RenewalWindow | None:
    """The ARI window, or None; an unreadable answer falls back to the lifetime rule (RFC 9773 4.3.3) with a note."""
    try:
        return fetch_window(client, cert, now)
    except ClientError as exc:
        notes.append(f"{exc}; using the lifetime rule")
        return None


def renew(store: LocalStore, name: str, opts: RenewOptions, *, now: dt.datetime) -> RenewResult:
    """Renew ``name`` if due (or forced); never raises for the CA's or the network's refusals, it reports them."""
    try:
        with renewal_lock(store):
            return _renew(store, name, opts, now)
    except (EcertError, OSError) as exc:
        return RenewResult(name, RenewStatus.FAILED, error=str(exc))


@contextlib.contextmanager
def renewal_lock(store: LocalStore) -> Iterator[None]:
    """One renewal at a time per store: a cron job and a timer overlapping must not order twice.

    ``flock`` on ``.renew.lock`` in the store: released by the kernel if the process dies, so a crash
    never leaves the store locked.
    """
    store.ensure()
    with open(store.root / ".renew.lock", "a+b") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise ClientError(f"another 'ecert renew' is running on {store.root}; try again when it ends") from exc
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _renew(store: LocalStore, name: str, opts: RenewOptions, now: dt.datetime) -> RenewResult:
    entry = store.current(name)
    account, client = _open(store, entry, opts)
    notes: list[str] = []
    window = None if opts.force else _window(client, entry.cert, now, notes)
    decision = decide(entry.cert, now, window, force=opts.force)
    if not decision.due:
        status = RenewStatus.NOT_YET if decision.source == "ari" else RenewStatus.NOT_DUE
        return RenewResult(entry.name, status, decision, version=entry.version, notes=tuple(notes))
    if opts.check_only:
        return RenewResult(entry.name, RenewStatus.DUE, decision, version=entry.version, notes=tuple(notes))
    opts.challenges.require_some()
    key, key_pem, encrypted = _renewal_key(entry, opts)
    names = _dns_names(entry.cert)
    replaces = ari_cert_id(entry.cert) if _has(client.directory, "renewalInfo") else None
    profile = opts.profile or _acme_meta(entry.meta).get("profile")
    fullchain = _issue(client, account, crypto_util.make_csr(_plain_pem(key), names), replaces, opts, profile)
    cert, chain = _split_chain(fullchain, key)
    hook = opts.deploy_hook or entry.meta.get("deploy_hook")
    meta = {**_new_meta(entry.meta, account, names, encrypted, replaces, now, profile), "deploy_hook": hook}
    new = store.add_version(entry.name, cert=cert, chain=chain, key_pem=key_pem, meta=meta)
    deployed = tuple(redeploy(store, new, key, now=now))
    hook_error = run_deploy_hook(str(hook), new) if hook else None
    return RenewResult(
        new.name,
        RenewStatus.RENEWED,
        decision,
        version=new.version,
        not_after=cert.not_valid_after_utc,
        replaces=replaces,
        deployed=deployed,
        notes=tuple(notes),
        hook_error=hook_error,
    )


def renew_all(
    store: LocalStore, opts: RenewOptions, *, now: dt.datetime, progress: Callable[[RenewResult], None] | None = None
) -> list[RenewResult]:
    """Every certificate in the store, each on its own: one failure does not stop the others (a cron job's run)."""
    results = []
    for entry in store.live():
        result = renew(store, entry.name, opts, now=now)
        results.append(result)
        if progress is not None:
            progress(result)
    return results


def obtain(
    store: LocalStore,
    name: str,
    names: list[str],
    key: PrivateKeyTypes,
    opts: RenewOptions,
    *,
    now: dt.datetime,
    meta: Mapping[str, Any] | None = None,
) -> LiveEntry:
    """A first certificate over ACME for a new lineage ``name``: the same order path as a renewal, no ``replaces``."""
    account, client = _open(store, None, opts)
    opts.challenges.require_some()
    fullchain = _issue(client, account, crypto_util.make_csr(_plain_pem(key), names), None, opts, opts.profile)
    cert, chain = _split_chain(fullchain, key)
    record = {**(meta or {}), "friendly_name": name, **_new_meta({}, account, names, False, None, now, opts.profile)}
    record.pop("renewed", None)
    record["issued"] = now.isoformat()
    return store.write_live(name, cert=cert, chain=chain, key_pem=_plain_pem(key), meta=record)


def key_from_file(path: Path) -> PrivateKeyTypes:
    """An unencrypted key file, for ``obtain`` with a key the admin already has."""
    return load_private_key(path.read_bytes(), None)
