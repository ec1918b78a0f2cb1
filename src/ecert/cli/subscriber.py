"""The ``ecert`` command: a server administrator's tool for keys, requests, chains, backups and deployment.

Thin by design: each command parses its arguments, calls ``ecert.client`` and prints. Errors become one
line on stderr and an exit code: 0 ok, 1 failure, 2 usage, 3 pending (retry later), 4 verification failed.

Start-up matters (``ecert --help`` is run by people and by scripts many times a day): this module and the
command modules import only typer and the light ``ecert.client.choices`` at the top; cryptography, httpx
and rich are imported by the commands that use them.

This module is the entry point: it builds the typer apps, keeps ``list`` and ``main``, and registers every
command in one table below, in the order ``ecert --help`` lists them. The commands live by group:
``client_request`` (request new/complete/submit), ``client_ca`` (ca, crl), ``client_verify`` (verify,
check), ``client_files`` (export, import, deploy), ``client_acme`` (acme, renew); what they share is in
``client_shared``.
"""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from ecert.cli import client_acme, client_ca, client_files, client_request, client_shared, client_verify
from ecert.cli.client_shared import STATE, ClientDeps, console, emit_json, handle, new_table, san_dns_names
from ecert.client.choices import DcvMethodChoice

__all__ = ["ClientDeps", "DcvMethodChoice", "app", "main"]

EXPIRING_DAYS = 30

app = typer.Typer(
    name="ecert",
    help="Keys, certificate requests, chains, backups and server files for e-Cert (Server) certificates.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: readable in a pipe, a log or a narrow terminal
)
request_app = typer.Typer(
    help="Make, submit and complete certificate requests.", no_args_is_help=True, rich_markup_mode=None
)
ca_app = typer.Typer(
    help="Install and remove CA certificates (guide section D).", no_args_is_help=True, rich_markup_mode=None
)
crl_app = typer.Typer(
    help="Import CRLs and the ARL (guide section D, steps 11-17).", no_args_is_help=True, rich_markup_mode=None
)
acme_app = typer.Typer(
    help="ACME accounts for renewing by itself (External Account Binding from the CA's portal).",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(request_app, name="request")
app.add_typer(ca_app, name="ca")
app.add_typer(crl_app, name="crl")
app.add_typer(acme_app, name="acme")


StoreOpt = Annotated[
    Path | None,
    typer.Option(
        "--store",
        envvar="ECERT_STORE",
        help="Store directory (default: $XDG_DATA_HOME/ecert).",
        show_default=False,
    ),
]


@app.callback()
def _root(
    store: StoreOpt = None,
    json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output on read commands.")] = False,
) -> None:
    STATE.set_store(store)
    STATE.json = json_out


# -- list ----------------------------------------------------------------------------------------
def _state_of(not_after: datetime, now: datetime) -> str:
    if now > not_after:
        return "expired"
    if (not_after - now).days <= EXPIRING_DAYS:
        return "expiring"
    return "issued"


@handle
def list_cmd() -> None:
    """Show pending requests and issued certificates: store name, friendly name, names, state, expiry."""
    store, now = STATE.store, client_shared.now()
    rows: list[dict[str, Any]] = []
    for p in store.pending():
        rows.append(
            {
                "name": p.name,
                "friendly_name": str(p.meta.get("friendly_name") or p.name),
                "names": list(p.meta.get("names", [])),
                "state": "pending",
                "not_after": None,
                "versions": 0,
            }
        )
    for e in store.live():
        rows.append(
            {
                "name": e.name,
                "friendly_name": str(e.meta.get("friendly_name") or e.name),
                "names": san_dns_names(e.cert),
                "state": _state_of(e.cert.not_valid_after_utc, now),
                "not_after": e.cert.not_valid_after_utc.isoformat(),
                "version": e.version,
                "versions": len(store.versions(e.name)),
            }
        )
    if STATE.json:
        emit_json({"store": str(store.root), "entries": rows})
        return
    table = new_table(f"ecert store {store.root}", ("Name", "Friendly name", "Names", "State", "Expires", "Versions"))
    for r in rows:
        # The store name is what every other command takes; the friendly name is what the person called it.
        versions = str(r["versions"]) if r["versions"] else ""
        table.add_row(
            r["name"], r["friendly_name"], ", ".join(r["names"]), r["state"], (r["not_after"] or "")[:10], versions
        )
    console().print(table)


# -- the command table ---------------------------------------------------------------------------
# Registered here, not by decorators in the command modules: the order of these lines is the order of
# 'ecert --help', and it must not hang on the order of imports (which the import sorter may change).
app.command("list", short_help="Show the requests and certificates in the store.")(list_cmd)
app.command("verify", short_help="Verify a certificate's chain, revocation and host name.")(client_verify.verify_cmd)
app.command("export", short_help="Back up a certificate and its key as a PFX (section F).")(client_files.export_cmd)
app.command("import", short_help="Restore a PFX backup into the store (section G).")(client_files.import_cmd)
app.command("deploy", short_help="Write the files nginx, Apache, HAProxy, IIS or Java take.")(client_files.deploy_cmd)
app.command("renew", short_help="Renew certificates over ACME when due (for cron or a systemd timer).")(
    client_acme.renew_cmd
)
app.command("check", short_help="Judge the chain a live server serves.")(client_verify.check_cmd)

request_app.command("new", short_help="Make a key and a CSR (guide section B).")(client_request.request_new)
request_app.command("complete", short_help="Store the CA's certificate with its key (section E).")(
    client_request.request_complete
)
request_app.command("submit", short_help="Do the portal journey through the CA's API (section C).")(
    client_request.request_submit
)

ca_app.command("install")(client_ca.ca_install)
ca_app.command("fetch", short_help="Download and install the CA's roots, chain, CRLs and ARL in one go.")(
    client_ca.ca_fetch
)
ca_app.command("remove")(client_ca.ca_remove)
ca_app.command("list")(client_ca.ca_list)
crl_app.command("import")(client_ca.crl_import)

acme_app.command("register", short_help="Make an account key and register it with EAB.")(client_acme.acme_register)
acme_app.command("list", short_help="Show the stored ACME accounts.")(client_acme.acme_list)
acme_app.command("order", short_help="Obtain a first certificate over ACME into a new lineage.")(client_acme.acme_order)


def main(deps: ClientDeps | None = None) -> None:
    """Console-script entry point (``ecert``): usage errors too become one line (exit code 2)."""
    command = typer.main.get_command(app)
    try:
        code = command.main(prog_name="ecert", standalone_mode=False, obj=deps or ClientDeps())
    except (typer.Abort, KeyboardInterrupt):  # Ctrl-C, or end of input at a prompt
        if sys.stdin is not None and not sys.stdin.isatty():
            sys.stderr.write(  # on a line of its own: getpass leaves its prompt line open
                "\nerror: a prompt got no answer (input is not a terminal); scripts pass secrets with "
                "--passphrase-file, --password-file or --pin-file\n"
            )
        else:
            sys.stderr.write("error: interrupted; nothing more was written\n")
        sys.exit(1)
    except typer.TyperException as exc:  # typer's own click: UsageError, BadParameter, NoArgsIsHelpError...
        text = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        code = int(getattr(exc, "exit_code", 1))
        if type(exc).__name__ == "NoArgsIsHelpError":  # a bare group: its help, as click prints it
            sys.stderr.write(text + "\n")
            sys.exit(code)
        ctx = getattr(exc, "ctx", None)
        hint = f" (see '{ctx.command_path} --help')" if code == 2 and ctx is not None else ""
        sys.stderr.write(f"error: {' '.join(text.split())}{hint}\n")
        sys.exit(code)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
