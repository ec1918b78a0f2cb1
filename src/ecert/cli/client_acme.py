"""``ecert acme register / list / order`` and ``ecert renew``: ACME accounts bound with External Account
Binding, a first certificate over ACME, and renewal when due (for cron or a systemd timer).

One job: the ACME side of the tool. The ACME client modules are imported inside the commands; the commands
are named and registered in ``subscriber.py``'s command table.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

from ecert.cli import client_shared
from ecert.cli.client_shared import STATE, console, emit_json, handle, new_table, read_secret_file, san_dns_names
from ecert.client.choices import KeyType
from ecert.client.errors import ClientError

# -- acme and renew ------------------------------------------------------------------------------
ServerOpt = Annotated[
    str | None,
    typer.Option("--server", envvar="ECERT_ACME_SERVER", help="The ACME directory URL (default: the one remembered)."),
]
CaBundleOpt = Annotated[
    Path | None,
    typer.Option(
        "--ca-bundle", help="Roots for the ACME server's own TLS certificate (a private server).", show_default=False
    ),
]


@handle
def acme_register(
    server: Annotated[str, typer.Option("--server", envvar="ECERT_ACME_SERVER", help="The ACME directory URL.")],
    eab_kid: Annotated[str | None, typer.Option("--eab-kid", help="The EAB key id the CA gave you.")] = None,
    eab_hmac_key: Annotated[
        str | None, typer.Option("--eab-hmac-key", help="The EAB HMAC key (base64url), shown once by the CA.")
    ] = None,
    email: Annotated[
        str | None, typer.Option("--email", help="Contact address for expiry and incident notices.")
    ] = None,
    ca_bundle: CaBundleOpt = None,
    force: Annotated[bool, typer.Option("--force", help="Replace a stored account for this server.")] = False,
) -> None:
    """Make a P-256 account key and register it with External Account Binding (RFC 8555 7.3.4).

    The key is kept in the store under accounts/ (0600); the HMAC key is used once and not kept.
    """
    from ecert.client.acme_account import register

    ca = str(os.path.abspath(ca_bundle)) if ca_bundle else None
    account = register(
        STATE.store,
        server,
        eab_kid=eab_kid,
        eab_hmac_key=eab_hmac_key,
        email=email,
        now=client_shared.now(),
        ca_bundle=ca,
        force=force,
    )
    if STATE.json:
        emit_json({"directory": account.directory, "account": account.uri, "path": str(account.path)})
        return
    console().print(f"Registered {account.uri}", markup=False)
    console().print(f"Account key: {account.path / 'key.pem'}", markup=False)


@handle
def acme_list() -> None:
    """Show the stored ACME accounts: directory, account URL and where the key is."""
    from ecert.client.acme_account import list_accounts

    rows = [{"directory": a.directory, "account": a.uri, "path": str(a.path)} for a in list_accounts(STATE.store)]
    if STATE.json:
        emit_json({"accounts": rows})
        return
    table = new_table("ACME accounts", ("Directory", "Account", "Path"))
    for r in rows:
        table.add_row(r["directory"], r["account"], r["path"])
    console().print(table)


def _challenge_options(
    webroot: Path | None, http_port: int | None, http_address: str, dns_hook: Path | None, dns_wait: float
) -> Any:
    from ecert.client.acme_challenges import ChallengeOptions

    return ChallengeOptions(
        webroot=webroot, http_port=http_port, http_address=http_address, dns_hook=dns_hook, dns_wait=dns_wait
    )


WebrootOpt = Annotated[
    Path | None, typer.Option("--webroot", help="Serve http-01 from DIR/.well-known/acme-challenge/.")
]
HttpPortOpt = Annotated[int | None, typer.Option("--http-01-port", help="Answer http-01 with a listener on this port.")]
HttpAddressOpt = Annotated[str, typer.Option("--http-01-address", help="Address for that listener (default: all).")]
DnsHookOpt = Annotated[
    Path | None, typer.Option("--dns-hook", help="dns-01: run 'HOOK add|del _acme-challenge.NAME VALUE'.")
]
DnsWaitOpt = Annotated[float, typer.Option("--dns-wait", help="Seconds to wait after the hook for DNS to spread.")]
ProfileOpt = Annotated[
    str | None, typer.Option("--profile", help="The CA's certificate profile by name (its directory lists them).")
]


@handle
def acme_order(
    friendly_name: Annotated[str, typer.Argument(help="The store name of the new certificate.")],
    name: Annotated[list[str], typer.Option("--name", "-n", help="A server name (repeat for more).")],
    key_type: Annotated[KeyType, typer.Option(help="Key type of the new key.")] = KeyType.P256,
    server: ServerOpt = None,
    ca_bundle: CaBundleOpt = None,
    webroot: WebrootOpt = None,
    http_01_port: HttpPortOpt = None,
    http_01_address: HttpAddressOpt = "",
    dns_hook: DnsHookOpt = None,
    dns_wait: DnsWaitOpt = 0.0,
    profile: ProfileOpt = None,
) -> None:
    """Order a certificate for new names over ACME and store it as live/NAME; 'ecert renew' keeps it fresh."""
    from ecert.client.acme_renew import RenewOptions, obtain
    from ecert.client.request import generate_key

    opts = RenewOptions(
        challenges=_challenge_options(webroot, http_01_port, http_01_address, dns_hook, dns_wait),
        server=server,
        ca_bundle=str(os.path.abspath(ca_bundle)) if ca_bundle else None,
        profile=profile,
    )
    entry = obtain(STATE.store, friendly_name, list(name), generate_key(key_type), opts, now=client_shared.now())
    if STATE.json:
        emit_json(
            {"name": entry.name, "version": entry.version, "not_after": entry.cert.not_valid_after_utc.isoformat()}
        )
        return
    console().print(f"Issued {entry.name}: {', '.join(san_dns_names(entry.cert))} (live/{entry.name})", markup=False)


@handle
def renew_cmd(
    name: Annotated[str | None, typer.Argument(help="The certificate to renew (or --all).")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every certificate in the store that is due.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Renew now, whatever ARI or the lifetime say.")] = False,
    reuse_key: Annotated[bool, typer.Option("--reuse-key", help="Keep the current key (default: a new one).")] = False,
    check: Annotated[bool, typer.Option("--check", help="Only say whether it is due; order nothing.")] = False,
    deploy_hook: Annotated[
        str | None,
        typer.Option(
            "--deploy-hook",
            help="Command run after each renewal, e.g. 'systemctl reload nginx' (no shell; remembered).",
        ),
    ] = None,
    server: ServerOpt = None,
    ca_bundle: CaBundleOpt = None,
    webroot: WebrootOpt = None,
    http_01_port: HttpPortOpt = None,
    http_01_address: HttpAddressOpt = "",
    dns_hook: DnsHookOpt = None,
    dns_wait: DnsWaitOpt = 0.0,
    profile: ProfileOpt = None,
    passphrase_file: Annotated[Path | None, typer.Option(help="Passphrase of the key kept by --reuse-key.")] = None,
) -> None:
    """Renew over ACME when the CA's ARI window (RFC 9773) has come, else at two thirds of the lifetime.

    The new version is stored beside the old one (live/NAME switches at once) and what 'ecert deploy'
    wrote is written again. Exit 0: renewed or not due; 3: the CA's window is later; 1: a failure.
    """
    from ecert.client.acme_renew import RenewOptions, renew, renew_all

    if bool(name) == all_:
        raise ClientError("give one certificate name or --all")
    opts = RenewOptions(
        challenges=_challenge_options(webroot, http_01_port, http_01_address, dns_hook, dns_wait),
        force=force,
        reuse_key=reuse_key,
        check_only=check,
        deploy_hook=deploy_hook,
        profile=profile,
        server=server,
        ca_bundle=str(os.path.abspath(ca_bundle)) if ca_bundle else None,
        passphrase=read_secret_file(passphrase_file),
    )
    now = client_shared.now()
    results = renew_all(STATE.store, opts, now=now) if all_ else [renew(STATE.store, str(name), opts, now=now)]
    _print_renewals(results)
    raise typer.Exit(_renew_exit_code(results, single=not all_))


def _renew_exit_code(results: Sequence[Any], *, single: bool) -> int:
    """1 if any failed (a deploy or its hook too); for one certificate 3 when the CA's window is later; else 0."""
    statuses = {r.status.value for r in results}
    if "failed" in statuses or any(r.deploy_failed for r in results):
        return 1
    if single and "not-yet" in statuses:
        return 3
    return 0


def _print_renewals(results: Sequence[Any]) -> None:
    if STATE.json:
        emit_json({"results": [r.to_json() for r in results]})
        return
    con = console()
    for r in results:
        if r.status.value == "failed":
            console(stderr=True).print(f"{r.name}: FAILED: {' '.join(str(r.error).split())}", markup=False)
            continue
        con.print(_renewal_line(r), markup=False)
        for d in r.deployed:
            failed = f": FAILED {d.error}" if d.error else ""
            con.print(f"  deployed {d.record.format.value} to {d.record.out}{failed}", markup=False)
        if r.hook_error:
            console(stderr=True).print(f"{r.name}: {' '.join(r.hook_error.split())}", markup=False)
        for note in r.notes:
            con.print(f"  note: {note}", markup=False)


def _renewal_line(r: Any) -> str:
    """One line per certificate: what happened, or when it will."""
    when = f"{r.decision.at:%Y-%m-%d %H:%M} UTC" if r.decision else ""
    if r.status.value == "renewed":
        return f"{r.name}: renewed, version {r.version}, valid until {r.not_after:%Y-%m-%d}"
    if r.status.value == "due":
        return f"{r.name}: due since {when} (decided by {r.decision.source})"
    if r.status.value == "not-yet":
        return f"{r.name}: not yet: the CA's renewal window (ARI) comes at {when}"
    return f"{r.name}: not due until {when} (two thirds of its lifetime)"
