"""ACME accounts and their External Account Binding credentials (RFC 8555 7.3, 7.3.4).

Every account speaks for one vetted application: the operator makes an EAB credential for the application,
the subscriber's ACME client binds it once to its account key, and the account is born inside the same
transaction as the bind and its audit event, so a refused request leaves nothing behind.
"""

from __future__ import annotations

import base64
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy.orm import Session

from ..core.acme_portal import (
    EabShown,
    PortalEabBlock,
    check_eab_configured,
    check_portal_eab,
    eab_shown,
    portal_eab_block,
)
from ..core.acme_rules import (
    EAB_UNUSED_LIFETIME,
    AccountAction,
    AccountStatus,
    AcmeRefusal,
    EabAction,
    EabStatus,
    ProblemType,
    account_move,
    application_unfit_for_acme,
    check_eab_usable,
    eab_move,
)
from ..core.errors import ConfigError, Conflict, NotFound
from ..store import acme as store
from ..store import acme_eab_listing as listing
from ..store import audit
from ..store.applications import get_application
from ..store.models import Application
from ..store.models_acme import AcmeAccount, AcmeEabCredential
from . import process_cache
from .applications import _load_by_reference, application_names
from .context import Context
from .refusals import record_refusal

__all__ = [
    "AccountLine",
    "AccountView",
    "AcmeOverview",
    "EabLine",
    "EabBinding",
    "EabMade",
    "NewAccountRequest",
    "account_view",
    "acme_overview",
    "acme_overview_by_reference",
    "deactivate_account",
    "directory_url",
    "make_eab",
    "make_eab_for_operator",
    "make_eab_for_subscriber",
    "new_account",
    "update_contact",
]


@dataclass(frozen=True)
class EabMade:
    """A new credential as the operator hands it to the subscriber; ``hmac_key`` is shown once and not kept plain."""

    reference_number: str
    kid: str
    hmac_key: str  # base64url, as certbot's --eab-hmac-key and lego's --hmac take it
    expires_at: datetime

    def __repr__(self) -> str:
        return f"EabMade(reference_number={self.reference_number!r}, kid={self.kid!r}, expires_at={self.expires_at})"


@dataclass(frozen=True)
class EabBinding:
    """The parsed externalAccountBinding of a newAccount request; ``verify_mac`` checks its MAC with a key.

    web/acme/verify.py builds it (all JOSE stays there); this module finds the key and decides.
    """

    kid: str
    verify_mac: Callable[[bytes], bool]


@dataclass(frozen=True)
class NewAccountRequest:
    jwk: dict[str, Any]  # the outer JWS's public key, as JSON
    thumbprint: str  # RFC 7638, SHA-256, base64url
    contact: tuple[str, ...]
    only_return_existing: bool
    eab: EabBinding | None
    client: str


@dataclass(frozen=True)
class AccountView:
    id: int
    status: str
    jwk: dict[str, Any]
    contact: tuple[str, ...]
    application_id: int
    created_at: datetime


def _view(row: AcmeAccount | store.AccountFields) -> AccountView:
    return AccountView(
        id=row.id,
        status=row.status,
        jwk=dict(row.jwk),
        contact=tuple(row.contact or ()),
        application_id=row.application_id,
        created_at=row.created_at,
    )


# --- sealing the MAC keys ---------------------------------------------------------------------------


def _wrapping_key(secret: str | None) -> AESGCM:
    """AES-256-GCM under a key derived from the operator's wrapping secret (named by ECERT_ACME_EAB_SECRET)."""
    if not secret:
        raise ConfigError(
            "no EAB wrapping secret: set ECERT_ACME_EAB_SECRET (or the variable ECERT_ACME_EAB_SECRET_ENV "
            "names), or run this beside `ecert-ca serve`, which keeps one in the data directory",
            rule="RFC 8555 7.3.4",
        )
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"ecert acme eab v1").derive(secret.encode())
    return AESGCM(key)


def _seal(secret: str | None, kid: str, hmac_key: bytes) -> bytes:
    nonce = os.urandom(12)
    return nonce + _wrapping_key(secret).encrypt(nonce, hmac_key, kid.encode())


def _unseal(secret: str | None, kid: str, sealed: bytes) -> bytes:
    try:
        return _wrapping_key(secret).decrypt(sealed[:12], sealed[12:], kid.encode())
    except InvalidTag:
        raise ConfigError("the EAB wrapping secret does not open this credential", value=kid) from None


# --- the operator makes credentials -----------------------------------------------------------------


def _hmac_key() -> bytes:
    """256 random bits whose base64url form does not start with "-": pasted after --eab-hmac-key (certbot,
    ecert) or --hmac (lego), such a key is read as an option and the command fails (1 key in 64)."""
    while True:
        key = secrets.token_bytes(32)
        if key[0] >> 2 != 62:  # 62 is "-" in the base64url alphabet
            return key


def make_eab(ctx: Context, reference_number: str, *, wrap_secret: str | None, actor: str) -> EabMade:
    """A new EAB credential for an application in force; it binds once and is void after EAB_UNUSED_LIFETIME."""
    now = ctx.clock()
    kid = "ecert-" + secrets.token_urlsafe(12)
    hmac_key = _hmac_key()
    sealed = _seal(wrap_secret, kid, hmac_key)
    with ctx.transaction() as session:
        row = _load_by_reference(session, reference_number)
        why = application_unfit_for_acme(row.state, row.subscription_end, now)
        if why:
            raise Conflict(
                f"no ACME credential for this application: {why}", rule="RFC 8555 7.3.4", value=row.reference_number
            )
        store.add_eab_credential(
            session,
            kid=kid,
            application_id=row.id,
            hmac_key_sealed=sealed,
            status=EabStatus.UNUSED.value,
            created_at=now,
            expires_at=now + EAB_UNUSED_LIFETIME,
            created_by=actor,
        )
        audit.append(
            session,
            actor=actor,
            event="acme.eab.created",
            subject=row.reference_number,
            details={"kid": kid, "expires_at": (now + EAB_UNUSED_LIFETIME).isoformat()},
            now=now,
        )
    encoded = base64.urlsafe_b64encode(hmac_key).rstrip(b"=").decode()
    return EabMade(
        reference_number=row.reference_number, kid=kid, hmac_key=encoded, expires_at=now + EAB_UNUSED_LIFETIME
    )


# --- accounts ---------------------------------------------------------------------------------------


def account_view(ctx: Context, account_id: int) -> AccountView | None:
    """The account behind a request's ``kid``: read on every ACME request, so one statement, no transaction."""
    with process_cache.quick_read(ctx) as session:
        row = store.account_fields(session, account_id)
    return _view(row) if row is not None else None


def new_account(ctx: Context, request: NewAccountRequest, *, wrap_secret: str | None) -> tuple[AccountView, bool]:
    """RFC 8555 7.3: the account of this key (created False), or a new one bound through EAB (created True)."""
    with ctx.transaction() as session:
        existing = store.account_by_thumbprint(session, request.thumbprint)
        if existing is not None:  # RFC 8555 7.3.1: the same key finds its account, and nothing is bound
            return _view(existing), False
        if request.only_return_existing:
            raise AcmeRefusal(
                ProblemType.ACCOUNT_DOES_NOT_EXIST,
                "no account exists for this key",
                rule="RFC 8555 7.3.1",
                value=request.thumbprint,
            )
        if request.eab is None:
            raise AcmeRefusal(
                ProblemType.EXTERNAL_ACCOUNT_REQUIRED,
                "this CA requires an external account binding (ask the CA for EAB credentials for your application)",
                status=403,
                rule="RFC 8555 7.3.4",
            )
        credential = _bindable_credential(ctx, session, request.eab, wrap_secret)
        return _view(_create_account(ctx, session, request, credential)), True


def _refused_binding(why: str, value: object) -> AcmeRefusal:
    return AcmeRefusal(
        ProblemType.UNAUTHORIZED,
        f"external account binding refused: {why}",
        status=403,
        rule="RFC 8555 7.3.4",
        value=value,
    )


def _bindable_credential(ctx: Context, session: Session, eab: EabBinding, wrap_secret: str | None) -> AcmeEabCredential:
    """The credential named by the binding, once it is unused, unexpired, of a live application and its MAC holds."""
    now = ctx.clock()
    credential = store.eab_by_kid(session, eab.kid)
    if credential is None:
        raise _refused_binding("unknown kid", eab.kid)
    check_eab_usable(status=credential.status, expires_at=credential.expires_at, now=now)
    application = get_application(session, credential.application_id)
    why = application_unfit_for_acme(application.state, application.subscription_end, now) if application else "gone"
    if why:
        raise _refused_binding(why, eab.kid)
    if not eab.verify_mac(_unseal(wrap_secret, credential.kid, credential.hmac_key_sealed)):
        raise _refused_binding("the MAC does not verify with this kid's key", eab.kid)
    return credential


def _create_account(
    ctx: Context, session: Session, request: NewAccountRequest, credential: AcmeEabCredential
) -> AcmeAccount:
    now = ctx.clock()
    source, target = eab_move(credential.status, EabAction.BIND)
    if not store.bind_eab_credential(session, credential.id, source=source.value, target=target.value, now=now):
        raise _refused_binding("the credential was bound meanwhile", credential.kid)
    row = store.add_account(
        session,
        key_thumbprint=request.thumbprint,
        jwk=request.jwk,
        application_id=credential.application_id,
        eab_credential_id=credential.id,
        status=AccountStatus.VALID.value,
        contact=list(request.contact),
        created_at=now,
        updated_at=now,
        created_from=request.client,
    )
    application = get_application(session, credential.application_id)
    audit.append(
        session,
        actor=f"acme:{request.client}",
        event="acme.account.created",
        subject=application.reference_number if application else None,
        details={
            "account_id": row.id,
            "kid": credential.kid,
            "thumbprint": request.thumbprint,
            "contact": list(request.contact),
        },
        now=now,
    )
    return row


def deactivate_account(ctx: Context, account_id: int, *, client: str) -> AccountView:
    """RFC 8555 7.3.6: the holder deactivates its account; nothing it signs is accepted afterwards."""

    def deactivate(session: Session, row: AcmeAccount, now: datetime) -> bool:
        source, target = account_move(row.status, AccountAction.DEACTIVATE)
        return store.set_account_status(session, account_id, source=source.value, target=target.value, now=now)

    return _change_account(
        ctx, account_id, deactivate, client=client, event="acme.account.deactivated", details={"account_id": account_id}
    )


def update_contact(ctx: Context, account_id: int, contact: tuple[str, ...], *, client: str) -> AccountView:
    """RFC 8555 7.3.2: the holder of a valid account replaces its contact URLs (checked by core.acme_contacts)."""

    def replace(session: Session, row: AcmeAccount, now: datetime) -> bool:
        return store.set_account_contact(
            session, account_id, list(contact), while_status=AccountStatus.VALID.value, now=now
        )

    details = {"account_id": account_id, "contact": list(contact)}
    return _change_account(ctx, account_id, replace, client=client, event="acme.account.updated", details=details)


def _change_account(
    ctx: Context,
    account_id: int,
    change: Callable[[Session, AcmeAccount, datetime], bool],
    *,
    client: str,
    event: str,
    details: dict[str, Any],
) -> AccountView:
    """One change the account's holder asked for, in one transaction: the account must exist, ``change``
    compares and sets (a Conflict when the account moved meanwhile), and the change is audited."""
    now = ctx.clock()
    with ctx.transaction() as session:
        row = store.account_by_id(session, account_id)
        if row is None:
            raise AcmeRefusal(ProblemType.ACCOUNT_DOES_NOT_EXIST, "no such account", value=account_id)
        if not change(session, row, now):
            raise Conflict("the account changed meanwhile", rule="RFC 8555 7.1.6", value=account_id)
        audit.append(session, actor=f"acme:{client}", event=event, subject=str(account_id), details=details, now=now)
        session.refresh(row)
        return _view(row)


# --- what the subscriber sees in the portal, and the operator through the API -------------------------


@dataclass(frozen=True)
class EabLine:
    """One credential as listed: never its key (that was shown once, when it was made)."""

    kid: str
    status: EabShown
    created_at: datetime
    expires_at: datetime
    bound_at: datetime | None
    created_by: str


@dataclass(frozen=True)
class AccountLine:
    """One ACME account bound to the application, with the credential it was bound through."""

    id: int
    status: AccountStatus
    created_at: datetime
    kid: str
    contact: tuple[str, ...]


@dataclass(frozen=True)
class AcmeOverview:
    """An application's ACME side: credentials, accounts, and whether the subscriber may make one now."""

    reference_number: str
    state: str  # the application's (core.application.AppState)
    names: tuple[str, ...]
    rep_email: str
    directory_url: str
    credentials: tuple[EabLine, ...]
    accounts: tuple[AccountLine, ...]
    block: PortalEabBlock | None  # None: the portal offers "make a credential"


def directory_url(ctx: Context) -> str:
    """The ACME directory subscribers' clients are given: the CA's public base URL + /acme/directory."""
    return ctx.settings.base_url.rstrip("/") + "/acme/directory"


def _eab_line(row: AcmeEabCredential, now: datetime) -> EabLine:
    return EabLine(
        kid=row.kid,
        status=eab_shown(row.status, row.expires_at, now),
        created_at=row.created_at,
        expires_at=row.expires_at,
        bound_at=row.bound_at,
        created_by=row.created_by,
    )


def _account_line(row: AcmeAccount, kids: dict[int, str]) -> AccountLine:
    return AccountLine(
        id=row.id,
        status=AccountStatus(row.status),
        created_at=row.created_at,
        kid=kids.get(row.eab_credential_id, ""),
        contact=tuple(row.contact or ()),
    )


def _block(ctx: Context, application: Application, unused_live: int, now: datetime) -> PortalEabBlock | None:
    return portal_eab_block(
        allowed=ctx.settings.acme_portal_eab,
        configured=bool(ctx.acme_secret),
        state=application.state,
        subscription_end=application.subscription_end,
        now=now,
        unused_live=unused_live,
    )


def _overview(ctx: Context, session: Session, application: Application) -> AcmeOverview:
    now = ctx.clock()
    rows = listing.eab_credentials_listed(session, application.id)
    credentials = [_eab_line(row, now) for row in rows]
    kids = {row.id: row.kid for row in rows}
    accounts = tuple(_account_line(row, kids) for row in listing.accounts_listed(session, application.id))
    unused_live = sum(1 for c in credentials if c.status is EabShown.UNUSED)
    return AcmeOverview(
        reference_number=application.reference_number,
        state=str(application.state),
        names=application_names(application),
        rep_email=application.rep_email,
        directory_url=directory_url(ctx),
        credentials=tuple(credentials),
        accounts=accounts,
        block=_block(ctx, application, unused_live, now),
    )


def acme_overview(ctx: Context, application_id: int) -> AcmeOverview:
    """The portal's "Automatic renewal (ACME)" page for the logged-in application; it reads, never writes."""
    with ctx.read() as session:
        application = get_application(session, application_id)
        if application is None:
            raise NotFound("no such application", value=application_id)
        return _overview(ctx, session, application)


def acme_overview_by_reference(ctx: Context, reference_number: str) -> AcmeOverview:
    """The same view for the operator API, by reference number."""
    with ctx.read() as session:
        return _overview(ctx, session, _load_by_reference(session, reference_number))


def make_eab_for_subscriber(ctx: Context, application_id: int, *, actor: str) -> EabMade:
    """A credential the logged-in subscriber makes in the portal, when core.acme_portal allows it (audited).

    The check reads in its own transaction before :func:`make_eab` writes; a race between two clicks can at
    worst add one unused credential past the cap, which expires by itself, so no lock is taken for it.
    """
    overview = acme_overview(ctx, application_id)
    unused_live = sum(1 for c in overview.credentials if c.status is EabShown.UNUSED)
    if overview.block is not None:  # BR 5.4.1: a refused attempt is logged too, with why (never a key)
        record_refusal(
            ctx,
            event="acme.eab.refused",
            actor=actor,
            subject=overview.reference_number,
            details={"why": overview.block.value, "state": overview.state, "unused": unused_live},
        )
    check_portal_eab(overview.block, state=overview.state, unused_live=unused_live)
    return make_eab(ctx, overview.reference_number, wrap_secret=ctx.acme_secret, actor=actor)


def make_eab_for_operator(ctx: Context, reference_number: str, *, actor: str) -> EabMade:
    """The operator API's credential: refused (403) when the CA has no wrapping secret, before anything else."""
    check_eab_configured(bool(ctx.acme_secret))
    return make_eab(ctx, reference_number, wrap_secret=ctx.acme_secret, actor=actor)
