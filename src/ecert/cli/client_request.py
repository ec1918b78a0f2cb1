"""``ecert request new / complete / submit``: make a key and a CSR, store the CA's certificate with its key,
or do the portal journey through the CA's API (guide sections B, E and C).

One job: the request commands and what only they need (the submit journey's prompts, ``--webroot`` and the
PIN). The client modules are imported inside each command, to keep ``ecert --help`` fast; the commands are
named and registered in ``subscriber.py``'s command table.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ecert.cli import client_shared
from ecert.cli.client_shared import (
    STATE,
    console,
    deps_of,
    emit_json,
    handle,
    new_secret,
    new_table,
    require_terminal,
    san_dns_names,
)
from ecert.client.choices import DEFAULT_KEY_TYPE, DcvMethodChoice, KeyType
from ecert.client.errors import ClientError

if TYPE_CHECKING:
    from ecert.client.complete import Completion


# -- request new ---------------------------------------------------------------------------------
@handle
def request_new(
    friendly_name: Annotated[str, typer.Argument(help="A name for this request, e.g. 'mail-2026'.")],
    name: Annotated[list[str] | None, typer.Option("--name", "-n", help="A server name (repeat for more).")] = None,
    wildcard: Annotated[
        str | None,
        typer.Option(help="Wildcard domain: 'example.com' or '*.example.com' gives *.example.com and example.com."),
    ] = None,
    common_name: Annotated[str | None, typer.Option(help="Which name is the common name (default: the first).")] = None,
    key_type: Annotated[
        KeyType,
        typer.Option(
            help="Key type. Default rsa2048: Exchange 2010, IIS and older Java clients all handle it. "
            "p256 is recommended for new servers whose clients are current."
        ),
    ] = DEFAULT_KEY_TYPE,
    org: Annotated[str | None, typer.Option("--org", help="Organisation name (the CA uses the application's).")] = None,
    ou: Annotated[
        str | None, typer.Option("--ou", help="Organisational unit (the CA ignores it, BR 7.1.2.7.4).")
    ] = None,
    country: Annotated[str, typer.Option(help="Country code.")] = "HK",
    state: Annotated[str, typer.Option(help="State or province.")] = "Hong Kong",
    locality: Annotated[str, typer.Option(help="City or locality.")] = "Hong Kong",
    out: Annotated[Path | None, typer.Option(help="Also write the CSR (PEM) to this file.")] = None,
    no_encrypt: Annotated[bool, typer.Option("--no-encrypt", help="Store the key unencrypted (still 0600).")] = False,
    passphrase_file: Annotated[Path | None, typer.Option(help="Read the key passphrase from a file.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace a pending request of the same name.")] = False,
) -> None:
    """Make a key and a CSR (guide section B) and keep them as a pending request."""
    from ecert.client.request import RequestSpec, build_request, expand_names
    from ecert.client.store import safe_name

    store = STATE.store
    store.ensure()  # fail on an unwritable store before asking for anything
    target = store.pending_dir / safe_name(friendly_name)
    if target.exists() and not force:
        raise ClientError(f"a pending request named {target.name!r} exists; use --force to replace it")
    spec = RequestSpec(
        friendly_name=friendly_name,
        names=tuple(name or ()),
        wildcard=wildcard,
        common_name=common_name,
        organization=org,
        organizational_unit=ou,
        country=country,
        state=state,
        locality=locality,
        key_type=key_type,
    )
    expand_names(spec)  # refuse bad names before the passphrase prompt
    passphrase = None if no_encrypt else new_secret(passphrase_file, "Key passphrase")
    req = build_request(spec, passphrase)
    entry = store.write_pending(
        friendly_name, csr_pem=req.csr_pem, key_pem=req.key_pem, meta=req.meta(spec, client_shared.now()), force=force
    )
    if out is not None:
        from ecert.client.store import atomic_write

        atomic_write(out, req.csr_pem, force=force)
    if STATE.json:
        emit_json(
            {
                "name": entry.name,
                "csr_path": str(entry.path / "request.csr"),
                "names": list(req.names),
                "unicode_names": list(req.unicode_names),
                "common_name": req.common_name,
                "key_type": key_type.value,
                "key_encrypted": req.key_encrypted,
                "notes": list(req.notes),
            }
        )
        return
    con = console()
    table = new_table(f"New request {entry.name}", ("Name (in the certificate)", "As you read it"))
    for a, u in zip(req.names, req.unicode_names, strict=True):
        table.add_row(a + ("  (common name)" if a == req.common_name else ""), u)
    con.print(table)
    con.print(
        f"Key: {key_type.value}, {'encrypted' if req.key_encrypted else 'NOT encrypted'} ({entry.path / 'key.pem'})",
        markup=False,
    )
    con.print(f"CSR: {entry.path / 'request.csr'}" + (f" and {out}" if out else ""), markup=False)
    for note in req.notes:
        con.print(f"- {note}", markup=False)


# -- request complete ----------------------------------------------------------------------------
@handle
def request_complete(
    file: Annotated[Path, typer.Argument(help="The certificate: .cer (PEM or DER), .p7b, or a chain PEM.")],
    force: Annotated[bool, typer.Option("--force", help="Replace an issued certificate of the same name.")] = False,
) -> None:
    """Match the CA's certificate to its pending key and store it (guide section E)."""
    from ecert.client.complete import complete_request

    done = complete_request(STATE.store, file.read_bytes(), now=client_shared.now(), source=str(file), force=force)
    _print_completion(done)


def _print_completion(done: Completion) -> None:
    e = done.entry
    if STATE.json:
        emit_json(
            {
                "name": e.name,
                "path": str(e.path),
                "serial_hex": format(e.cert.serial_number, "x"),
                "not_after": e.cert.not_valid_after_utc.isoformat(),
                "installed_cas": list(done.installed_cas),
                "chain_complete": done.chain_complete,
                "missing_issuer": done.missing_issuer,
            }
        )
        return
    con = console()
    con.print(f"Completed {e.name}: {', '.join(san_dns_names(e.cert))}", markup=False)
    con.print(f"Files in {e.path}: cert.pem chain.pem fullchain.pem privkey.pem (version {e.version})", markup=False)
    for name in done.installed_cas:
        con.print(f"Installed intermediate CA certificate {name}", markup=False)
    if not done.chain_complete:
        con.print(
            f"note: the issuing CA {done.missing_issuer!r} is not installed, so chain.pem is incomplete; "
            "run 'ecert ca install' with it and the chain files are updated",
            markup=False,
        )
    if e.meta.get("cross_available"):
        con.print("A cross-certificate is installed: 'ecert deploy' will add it to the served chain.")


# -- request submit ------------------------------------------------------------------------------
class _CliUI:
    """Prompts and progress for ``submit`` on a terminal."""

    def __init__(self, yes: bool, use_chinese: bool) -> None:
        self.yes, self.use_chinese = yes, use_chinese
        self.con = console(stderr=True)

    def show_application(self, app: dict[str, Any]) -> None:
        names = app.get("names") or [app.get("server_name")]
        self.con.print(
            f"Application {app.get('reference_number')} ({app.get('state')}): {', '.join(map(str, names))}"
            f" — {app.get('org_name_en')}",
            markup=False,
        )

    def choose_chinese(self, app: dict[str, Any]) -> bool:
        return self.use_chinese and bool(app.get("org_name_zh"))

    def show_dcv(self, started: dict[str, Any]) -> None:
        self.con.print(f"Domain control validation by {started.get('method')}:", markup=False)
        for d in started.get("domains", []):
            if d.get("txt_name"):
                self.con.print(f'  TXT {d["txt_name"]}  "{d.get("txt_value")}"', markup=False)
            elif d.get("file_url"):
                self.con.print(f"  {d['file_url']}", markup=False)
            else:
                self.con.print(f"  {d.get('domain')}", markup=False)

    def wait_for_dns(self, started: dict[str, Any]) -> None:
        if self.yes:
            return
        typer.prompt("Add the TXT records above, then press Enter", default="", show_default=False)

    def ask_email_code(self) -> str:
        return str(typer.prompt("Validation code from the e-mail"))

    def progress(self, message: str) -> None:
        self.con.print(f"… {message}", markup=False)

    def accept_certificate(self, summary: dict[str, Any]) -> str | None:
        table = new_table("The certificate the CA issued", ("Field", "Value"))
        for label, key in (
            ("Serial", "serial_spaced"),
            ("Issued by", "issuer"),
            ("Names", "names"),
            ("Type", "type"),
            ("Valid from", "not_before"),
            ("Valid to", "not_after"),
            ("Days", "validity_days"),
        ):
            value = summary.get(f"{key}_label") or summary.get(key)  # "type_label" reads better than "type"
            table.add_row(label, ", ".join(value) if isinstance(value, list) else str(value))
        self.con.print(table)
        if self.yes:
            return None
        if typer.confirm("Accept this certificate?", default=False):
            return None
        return str(typer.prompt("Reason for rejecting"))


@handle
def request_submit(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The pending request to submit.")],
    reference: Annotated[str, typer.Option("--reference", help="Subscriber reference number.", prompt=True)],
    ca_url: Annotated[str, typer.Option("--ca-url", envvar="ECERT_CA_URL", help="The CA's base URL.")],
    server_name: Annotated[str | None, typer.Option(help="Server name on the application (default: CN).")] = None,
    method: Annotated[
        DcvMethodChoice | None,
        typer.Option(help="DCV method (default: http_file with --webroot, else dns_txt, else email)."),
    ] = None,
    webroot: Annotated[
        list[str] | None,
        typer.Option(
            help="Web root for .well-known/pki-validation/fileauth.txt: DIR for every name, or NAME=DIR "
            "for one name (repeat).",
        ),
    ] = None,
    dns_hook: Annotated[Path | None, typer.Option(help="Script run as 'HOOK add NAME VALUE' per TXT record.")] = None,
    email_local_part: Annotated[
        str | None,
        typer.Option(help="Mailbox for e-mail DCV: admin, administrator, webmaster, hostmaster or postmaster."),
    ] = None,
    use_chinese: Annotated[
        bool, typer.Option("--use-chinese", help="Put the Chinese organisation name in the certificate.")
    ] = False,
    max_wait: Annotated[float, typer.Option(help="Seconds to keep checking DCV.")] = 120.0,
    yes: Annotated[bool, typer.Option("--yes", help="Accept the certificate without asking.")] = False,
    pin_file: Annotated[
        Path | None,
        typer.Option(help="Read the PIN from this file ('-': the first line of stdin), for scripts."),
    ] = None,
) -> None:
    """Do the whole portal journey (guide section C) through the CA's API, then complete the request.

    The PIN is prompted without echo (or read with --pin-file), sent once to log in, and never stored.
    """
    from ecert.client.api import ApiClient
    from ecert.client.submit import DcvOptions, submit_request

    store = STATE.store
    pending = store.pending_entry(name)
    default_root, per_name = _parse_webroots(webroot or [])
    pin = _read_pin(pin_file)  # never echoed, stored or logged
    with ApiClient(ca_url, transport=deps_of(ctx).transport) as api:
        done = submit_request(
            api,
            store,
            pending,
            reference_number=reference,
            pin=pin,
            ui=_CliUI(yes, use_chinese),
            dcv=DcvOptions(
                method=method.value if method else None,
                webroot=default_root,
                webroots=per_name,
                dns_hook=dns_hook,
                email_local_part=email_local_part,
                max_wait_seconds=max_wait,
            ),
            now=client_shared.now,
            server_name=server_name,
        )
    del pin
    _print_completion(done)


def _parse_webroots(items: list[str]) -> tuple[Path | None, dict[str, Path]]:
    """``--webroot DIR`` (every name) and ``--webroot NAME=DIR`` (one name; NAME as the CA spells it)."""
    default: Path | None = None
    per_name: dict[str, Path] = {}
    for item in items:
        name, sep, directory = item.partition("=")
        if sep and "/" not in name and "." in name:
            from ecert.core.names import normalize_dns_name

            per_name[normalize_dns_name(name, allow_wildcard=False)] = Path(directory)
        elif default is not None:
            raise ClientError("give one --webroot DIR for every name, and NAME=DIR for the others")
        else:
            default = Path(item)
    return default, per_name


def _read_pin(path: Path | None) -> str:
    """The PIN from --pin-file (``-`` is stdin's first line) or a prompt that does not echo."""
    if path is None:
        require_terminal("PIN", "--pin-file")
        pin = str(typer.prompt("PIN", hide_input=True))
    elif str(path) == "-":
        pin = sys.stdin.readline().rstrip("\r\n")
    else:
        pin = path.read_text(encoding="utf-8").rstrip("\r\n")
    if not pin.strip():
        raise ClientError("the PIN is empty; it is on the PIN envelope from the CA")
    return pin
