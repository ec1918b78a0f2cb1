"""ACME accounts of the subscriber: a P-256 key and the account URL, kept per directory in the local store.

Layout, beside ``live/`` and ``archive/``::

    accounts/HOST[_PORT]/PATH-SLUG/key.pem       the account key (0600), PKCS#8 PEM
    accounts/HOST[_PORT]/PATH-SLUG/account.json  directory URL, account URL, contact, EAB key id, CA bundle

The EAB HMAC key is used once, to bind the account, and never written anywhere: the CA forgets it too
once it is bound (issue 13 point 2). The protocol is certbot's ``acme`` library; nothing here builds JOSE.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from acme import client as acme_client
from acme import errors as acme_errors
from acme import messages
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from josepy.jwa import ES256
from josepy.jwk import JWKEC

from ecert.client.errors import ClientError
from ecert.client.store import DIR_MODE, FILE_MODE, KEY_MODE, LocalStore, atomic_write
from ecert.core.errors import Conflict, NotFound

__all__ = [
    "AcmeAccount",
    "account_dir",
    "connect",
    "find_account",
    "list_accounts",
    "register",
]

USER_AGENT = "ecert-acme (certbot acme library)"
NETWORK_TIMEOUT = 30


@dataclass(frozen=True)
class AcmeAccount:
    """A registered account: enough to sign requests again (key and URL) and to say where it lives."""

    directory: str
    uri: str
    key: JWKEC
    path: Path
    email: str | None = None
    eab_kid: str | None = None
    ca_bundle: str | None = None
    created: str | None = None


def account_dir(store: LocalStore, directory_url: str) -> Path:
    """``accounts/HOST[_PORT]/PATH-SLUG``: one account per directory URL, readable by an admin."""
    parts = urlsplit(directory_url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ClientError("the ACME server must be an https:// directory URL", value=directory_url)
    host = parts.hostname + (f"_{parts.port}" if parts.port else "")
    path = re.sub(r"[^A-Za-z0-9._-]+", "-", parts.path.strip("/")).strip("-.") or "directory"
    return store.root / "accounts" / _slug(host) / path[:64]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.") or "server"


def connect(
    directory_url: str, key: JWKEC, *, ca_bundle: str | None = None, account_uri: str | None = None
) -> acme_client.ClientV2:
    """A ClientV2 for ``directory_url`` signing with ``key`` (ES256); ``account_uri`` set means "as this account".

    ``ca_bundle`` is the file of roots that may sign the server's TLS certificate (a private ACME server);
    None means the system's roots (and ``REQUESTS_CA_BUNDLE`` when set, as for certbot).
    """
    regr = messages.RegistrationResource(body=messages.Registration(), uri=account_uri) if account_uri else None
    net = acme_client.ClientNetwork(
        key,
        account=regr,
        alg=ES256,
        verify_ssl=ca_bundle or True,  # type: ignore[arg-type]  # requests takes a path as well as a bool
        user_agent=USER_AGENT,
        timeout=NETWORK_TIMEOUT,
    )
    try:
        directory = acme_client.ClientV2.get_directory(directory_url, net)
    except (acme_errors.Error, messages.Error, OSError, ValueError) as exc:
        raise ClientError(f"cannot read the ACME directory at {directory_url}: {exc}", value=directory_url) from exc
    return acme_client.ClientV2(directory, net)


def _new_key() -> tuple[JWKEC, bytes]:
    """A P-256 account key: ES256 is in every ACME server's allow-list and apart from any certificate key."""
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return JWKEC(key=key), pem


def register(
    store: LocalStore,
    directory_url: str,
    *,
    eab_kid: str | None,
    eab_hmac_key: str | None,
    email: str | None,
    now: datetime,
    ca_bundle: str | None = None,
    force: bool = False,
) -> AcmeAccount:
    """Make an account key, register it with External Account Binding and store it; nothing is stored on refusal.

    RFC 8555 7.3.4: the binding is an HS256 JWS over the account key, made by ``acme.messages``.
    """
    where = account_dir(store, directory_url)
    if (where / "account.json").exists() and not force:
        raise Conflict(f"an account for {directory_url} is already stored in {where}; use --force to replace it")
    key, key_pem = _new_key()
    client = connect(directory_url, key, ca_bundle=ca_bundle)
    if client.external_account_required() and not (eab_kid and eab_hmac_key):
        raise ClientError("this ACME server requires External Account Binding: give --eab-kid and --eab-hmac-key")
    regr = _new_account(client, key, eab_kid, eab_hmac_key, email)
    record = {
        "directory": directory_url,
        "uri": regr.uri,
        "email": email,
        "eab_kid": eab_kid,
        "ca_bundle": ca_bundle,
        "created": now.isoformat(),
    }
    _write_account(where, key_pem, record)
    return _load(where)


def _new_account(
    client: acme_client.ClientV2, key: JWKEC, kid: str | None, hmac_key: str | None, email: str | None
) -> messages.RegistrationResource:
    """The newAccount request, with the binding when a key id was given; the CA's refusal in its own words."""
    eab = None
    if kid and hmac_key:
        try:
            eab = messages.ExternalAccountBinding.from_data(key.public_key(), kid, hmac_key, client.directory)
        except (ValueError, TypeError) as exc:
            raise ClientError("the EAB HMAC key is not base64url text", value=kid) from exc
    body = messages.NewRegistration.from_data(email=email, terms_of_service_agreed=True, external_account_binding=eab)
    try:
        return client.new_account(body)
    except acme_errors.ConflictError as exc:
        raise Conflict(f"this account key is already registered at {exc}") from exc
    except messages.Error as exc:
        raise ClientError(
            f"the ACME server refused the account ({exc.typ}): {exc.detail or exc}; "
            "check --eab-kid and --eab-hmac-key (the HMAC key as the CA showed it, base64url)",
            value=kid,
        ) from exc


def _write_account(where: Path, key_pem: bytes, record: dict[str, Any]) -> None:
    """Key first (0600), then the record that makes the account visible: a crash leaves no half account."""
    where.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    for parent in (where.parent, where.parent.parent):
        parent.chmod(DIR_MODE)
    atomic_write(where / "key.pem", key_pem, mode=KEY_MODE, force=True)
    atomic_write(
        where / "account.json", json.dumps(record, indent=2, sort_keys=True).encode(), mode=FILE_MODE, force=True
    )


def _load(where: Path) -> AcmeAccount:
    try:
        record = json.loads((where / "account.json").read_text())
        key = serialization.load_pem_private_key((where / "key.pem").read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise ClientError(f"the ACME account in {where} cannot be read: {exc}", value=str(where)) from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ClientError(f"the ACME account key in {where} is not an EC key", value=str(where))
    return AcmeAccount(
        directory=str(record["directory"]),
        uri=str(record["uri"]),
        key=JWKEC(key=key),
        path=where,
        email=record.get("email"),
        eab_kid=record.get("eab_kid"),
        ca_bundle=record.get("ca_bundle"),
        created=record.get("created"),
    )


def list_accounts(store: LocalStore) -> list[AcmeAccount]:
    """Every stored account, in a stable order."""
    return [_load(p.parent) for p in _account_files(store)]


def _account_files(store: LocalStore) -> Iterator[Path]:
    base = store.root / "accounts"
    return iter(sorted(base.glob("*/*/account.json"))) if base.is_dir() else iter(())


def find_account(store: LocalStore, directory_url: str | None) -> AcmeAccount:
    """The account for ``directory_url``; without one, the only stored account (else say what to pass)."""
    if directory_url:
        where = account_dir(store, directory_url)
        if not (where / "account.json").is_file():
            raise NotFound(
                f"no ACME account for {directory_url}; run 'ecert acme register --server {directory_url} ...'",
                value=directory_url,
            )
        return _load(where)
    accounts = list_accounts(store)
    if not accounts:
        raise NotFound("no ACME account is stored; run 'ecert acme register' first")
    if len(accounts) > 1:
        listed = ", ".join(a.directory for a in accounts)
        raise ClientError(f"several ACME accounts are stored ({listed}); choose one with --server")
    return accounts[0]
