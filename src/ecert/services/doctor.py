"""`ecert-ca doctor`: check a configuration before it goes live, one line per check with what to do.

Each check returns a :class:`Check` and never raises: a check that breaks is itself a problem to report
(a database at an old revision makes later checks fail too; the first problem says why).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from ..core.ca_lifecycle import CaStatus
from ..core.errors import EcertError
from ..core.rule_dates import remote_perspectives_required
from ..store import db, ops, repo
from ..validation.dns import DnsClient
from ..validation.probe import probe_health, probe_resolver
from . import publication
from .ceremony import check_public_base_url, load_private_key
from .context import Context

__all__ = ["OCSP_IS_FOREVER", "Check", "run_checks"]

OCSP_IS_FOREVER = (
    "the OCSP URL goes into each certificate at issuance and cannot be added later: "
    "decide before the first certificate is issued"
)


@dataclass(frozen=True)
class Check:
    """One line of the doctor's report; ``fix`` says what to do when ``ok`` is False."""

    name: str
    ok: bool
    detail: str
    fix: str | None = None


@dataclass(frozen=True)
class Options:
    signed_name: str = "."  # a DNSSEC-signed name every validating resolver authenticates (the root)
    expect_ocsp: bool | None = None
    acme_secret_kept: bool = False  # the ACME secret came from the data directory, not from its variable


def _problem(name: str, detail: str, fix: str) -> Check:
    return Check(name, False, detail, fix)


def check_resolvers(ctx: Context, opts: Options) -> list[Check]:
    """BR 3.2.2.8.1 and 3.2.2.4: DCV and CAA need recursive resolvers that validate DNSSEC (RA and AD set)."""
    out: list[Check] = []
    for spec in ctx.settings.dns_resolvers:
        probe = probe_resolver(spec, opts.signed_name)
        name = f"resolver {spec}"
        if probe.error is not None:
            out.append(
                _problem(
                    name,
                    f"no answer: {probe.error}",
                    "point ECERT_DNS_RESOLVERS at a reachable recursive, validating resolver (e.g. unbound)",
                )
            )
        elif not probe.recursive:
            out.append(
                _problem(
                    name,
                    "not recursive (no RA flag): an authoritative server cannot see dead "
                    "delegations or CAA above a zone",
                    "use a recursive resolver",
                )
            )
        elif not probe.validating:
            out.append(
                _problem(
                    name,
                    f"does not validate DNSSEC (no AD flag for {opts.signed_name}, rcode {probe.rcode})",
                    'turn on DNSSEC validation (unbound: module-config "validator iterator" with a trust anchor)',
                )
            )
        else:
            out.append(Check(name, True, f"recursive and validating (RA, AD for {opts.signed_name})"))
    return out or [_problem("resolvers", "none configured", "set ECERT_DNS_RESOLVERS")]


def check_base_url(ctx: Context, opts: Options) -> list[Check]:
    """BR 7.1.2.11.2: the AIA and CRL URLs in every certificate name a public host that answers."""
    base = ctx.settings.base_url
    try:
        check_public_base_url(base)
    except EcertError as exc:
        return [_problem("base URL", str(exc), "set ECERT_BASE_URL to http://<a public name you serve>")]
    host = urlsplit(base).hostname or ""
    addresses, _ = DnsClient(ctx.settings.dns_resolvers).addresses(host)
    if not addresses:
        return [
            _problem(
                "base URL",
                f"{host} does not resolve through the configured resolvers: relying "
                "parties could not fetch CRLs or CA certificates",
                f"publish A/AAAA records for {host}",
            )
        ]
    return [Check("base URL", True, f"{base} is public and {host} resolves ({addresses[0]})")]


def check_keys(ctx: Context, opts: Options) -> list[Check]:
    """Every CA key held here opens with the configured passphrase or PIN (a wrong one fails at 3 a.m. otherwise)."""
    with ctx.read() as session:
        rows = [r for r in repo.list_cas(session) if r.key_ref and r.status != CaStatus.REVOKED]
    out: list[Check] = []
    for row in rows:
        try:
            load_private_key(ctx, row)
        except EcertError as exc:
            out.append(
                _problem(
                    f"key {row.label}",
                    f"cannot be opened: {exc}",
                    f"check {ctx.settings.key_passphrase_env} / ECERT_KEY_PASSPHRASE_FILE or the token",
                )
            )
            continue
        out.append(Check(f"key {row.label}", True, f"opens ({row.key_ref})"))
    return out or [_problem("keys", "no CA key here", "run `ecert-ca init`")]


def check_migrations(ctx: Context, opts: Options) -> list[Check]:
    current = db.current_revision(ctx.engine)
    heads = ops.migration_heads()
    if current not in heads:
        return [
            _problem(
                "database schema",
                f"at revision {current}, the code expects {', '.join(heads)}",
                "back up the database, then run any ecert-ca command (each migrates at start)",
            )
        ]
    return [Check("database schema", True, f"at head ({current})")]


def _fresh(kind: str, row_next_update: datetime, now: datetime) -> Check:
    if row_next_update <= now:
        return _problem(
            kind,
            f"stale: its nextUpdate {row_next_update:%d/%m/%Y %H:%M} UTC has passed",
            "run `ecert-ca jobs run-once` and keep the service (its jobs) running",
        )
    return Check(kind, True, f"fresh until {row_next_update:%d/%m/%Y %H:%M} UTC")


def check_crls(ctx: Context, opts: Options) -> list[Check]:
    """BR 4.9.7: each issuing CA's CRL and the root's ARL are published and not past nextUpdate."""
    now = ctx.clock()
    out: list[Check] = []
    with ctx.read() as session:
        roots = [r.label for r in repo.list_cas(session, role="root") if r.status != CaStatus.REVOKED]
    targets = [(f"CRL {label}", label, False) for label in publication.issuing_cas(ctx)]
    targets += [(f"ARL {label}", label, True) for label in roots]
    for kind, label, arl in targets:
        try:
            out.append(_fresh(kind, publication.latest_crl(ctx, label, arl=arl).next_update, now))
        except EcertError:
            out.append(_problem(kind, "never published", "run `ecert-ca crl publish`"))
    return out


def check_ocsp(ctx: Context, opts: Options) -> list[Check]:
    """OCSP on or off as intended, and when on, a fresh response for every certificate (BR 4.9.10)."""
    enabled = ctx.settings.ocsp_enabled
    state = "on" if enabled else "off"
    if opts.expect_ocsp is not None and opts.expect_ocsp != enabled:
        return [
            _problem(
                "OCSP",
                f"is {state}, but you expect it {'on' if opts.expect_ocsp else 'off'}; " + OCSP_IS_FOREVER,
                f"set ECERT_OCSP_ENABLED={'true' if opts.expect_ocsp else 'false'}",
            )
        ]
    if not enabled:
        return [Check("OCSP", True, f"off: certificates carry no OCSP URL; {OCSP_IS_FOREVER}")]
    with ctx.read() as session:
        gaps = ops.ocsp_gaps(session, ctx.clock())
    if gaps:
        listed = ", ".join(f"{label}: {count}" for label, count in sorted(gaps.items()))
        return [
            _problem(
                "OCSP",
                f"on, but certificates lack a fresh response ({listed})",
                "run `ecert-ca ocsp refresh` and keep the service (its jobs) running",
            )
        ]
    return [Check("OCSP", True, f"on, every certificate has a fresh response; {OCSP_IS_FOREVER}")]


def check_perspectives(ctx: Context, opts: Options) -> list[Check]:
    """BR 3.2.2.9: enough remote perspectives configured, each answering, and the shared secret present."""
    urls = ctx.settings.perspective_urls
    needed = remote_perspectives_required(ctx.clock())
    out: list[Check] = []
    if len(urls) < needed:
        out.append(
            _problem(
                "perspectives",
                f"{len(urls)} configured, BR 3.2.2.9 asks for {needed} remote ones",
                "add ECERT_PERSPECTIVE_URLS",
            )
        )
    if urls and not ctx.perspective_secret:
        out.append(
            _problem(
                "perspectives",
                f"{ctx.settings.perspective_secret_env} is not set: answers cannot be authenticated",
                f"set {ctx.settings.perspective_secret_env}",
            )
        )
    for url in urls:
        error = probe_health(url)
        out.append(
            Check(f"perspective {url}", True, "answers")
            if error is None
            else _problem(f"perspective {url}", f"unreachable: {error}", "start it, or fix the URL")
        )
    return out


def check_acme(ctx: Context, opts: Options) -> list[Check]:
    """The ACME secret (EAB keys sealed, nonces signed with it): present, and where it comes from. One kept in
    the data directory serves one host; hosts sharing a database must share the value, or refuse each other's."""
    name = ctx.settings.acme_eab_secret_env
    if not ctx.acme_secret:
        return [_problem("ACME", "no secret: ACME answers only errors", f"set {name}, or start `ecert-ca serve`")]
    if opts.acme_secret_kept:
        shared = "; hosts sharing this database need the same value in " + name if _on_a_server(ctx) else ""
        return [Check("ACME", True, f"secret kept in the data directory (secrets/acme-secret){shared}")]
    return [Check("ACME", True, f"secret from {name}")]


def _on_a_server(ctx: Context) -> bool:
    return ctx.engine.dialect.name != "sqlite"


CHECKS: tuple[Callable[[Context, Options], list[Check]], ...] = (
    check_migrations,
    check_resolvers,
    check_base_url,
    check_keys,
    check_crls,
    check_ocsp,
    check_perspectives,
    check_acme,
)


def run_checks(
    ctx: Context, *, signed_name: str = ".", expect_ocsp: bool | None = None, acme_secret_kept: bool = False
) -> list[Check]:
    """Every check, in order; one that breaks is reported as a problem, never raised."""
    opts = Options(signed_name=signed_name, expect_ocsp=expect_ocsp, acme_secret_kept=acme_secret_kept)
    out: list[Check] = []
    for check in CHECKS:
        try:
            out.extend(check(ctx, opts))
        except Exception as exc:  # noqa: BLE001 - the doctor reports, it never stops half-way
            name = check.__name__.removeprefix("check_")
            out.append(
                _problem(
                    name,
                    f"could not be checked: {type(exc).__name__}: {str(exc)[:200]}",
                    "fix the problems above first",
                )
            )
    return out
