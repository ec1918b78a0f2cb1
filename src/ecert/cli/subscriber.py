"""The ``ecert`` command: a server administrator's tool for keys, requests, chains, backups and deployment.

Thin by design: each command parses its arguments, calls ``ecert.client`` and prints. Errors become one
line on stderr and an exit code: 0 ok, 1 failure, 2 usage, 3 pending (retry later), 4 verification failed.

Start-up matters (``ecert --help`` is run by people and by scripts many times a day): this module imports
only typer and the light ``ecert.client.choices`` at the top; cryptography, httpx and rich are imported by
the commands that use them.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from ecert.client.choices import DEFAULT_KEY_TYPE, DcvMethodChoice, DeployFormat, KeyType
from ecert.client.errors import ClientError, exit_code_for
from ecert.core.errors import EcertError, NotFound

if TYPE_CHECKING:
    import httpx
    from cryptography import x509
    from rich.console import Console
    from rich.table import Table

    from ecert.client.complete import Completion
    from ecert.client.store import LocalStore

__all__ = ["ClientDeps", "DcvMethodChoice", "app", "main"]

SCHEMA = 1
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

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class ClientDeps:
    """What the commands reach the outside world with; tests pass their own (``CliRunner.invoke(obj=...)``).

    ``transport`` goes into every HTTP client the commands make (``httpx.Client(transport=...)``):
    ``httpx.MockTransport`` in tests, the real network otherwise.
    """

    transport: httpx.BaseTransport | None = None


class _State:
    """The options every command shares; the store object is made when a command first needs it."""

    def __init__(self) -> None:
        self.store_path: Path | None = None
        self.json = False
        self._store: LocalStore | None = None

    def set_store(self, path: Path | None) -> None:
        self.store_path, self._store = path, None

    @property
    def store(self) -> LocalStore:
        if self._store is None:
            from ecert.client.store import LocalStore, default_store_path

            self._store = LocalStore(self.store_path or default_store_path(os.environ))
        return self._store


STATE = _State()


def _deps(ctx: typer.Context) -> ClientDeps:
    """The dependencies given to this run (``main`` and tests put a ClientDeps in the context's ``obj``)."""
    found = ctx.find_object(ClientDeps)
    return found if found is not None else ClientDeps()


def _console(stderr: bool = False) -> Console:
    """Colour only on a terminal and never with NO_COLOR (rich honours both)."""
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True, no_color=bool(os.environ.get("NO_COLOR")))


def _table(title: str, columns: Sequence[str]) -> Table:
    from rich.table import Table

    table = Table(title=title)
    for col in columns:
        table.add_column(col)
    return table


def _fail(message: str, code: int = 1) -> None:
    """One line on stderr, whatever the message held (a CA's problem detail may span lines)."""
    _console(stderr=True).print(f"error: {' '.join(message.split())}", markup=False, soft_wrap=True)
    raise typer.Exit(code)


def _shared_parameters() -> list[inspect.Parameter]:
    """``--store`` and ``--json`` for every subcommand, so ``ecert list --store DIR`` works as ``ecert --store DIR
    list`` does (a value after the subcommand wins)."""
    kw = inspect.Parameter.KEYWORD_ONLY
    store_opt = typer.Option("--store", help="Store directory (also accepted before the command).", show_default=False)
    json_opt = typer.Option("--json", help="Machine-readable output on read commands.")
    return [
        inspect.Parameter("late_store", kw, default=None, annotation=Annotated[Path | None, store_opt]),
        inspect.Parameter("late_json", kw, default=False, annotation=Annotated[bool, json_opt]),
    ]


def _apply_shared(kwargs: dict[str, Any]) -> None:
    store, json_out = kwargs.pop("late_store", None), kwargs.pop("late_json", False)
    if store is not None:
        STATE.set_store(Path(store))
    if json_out:
        STATE.json = True


def _handle(fn: F) -> F:
    """Turn our errors into one line on stderr and the documented exit code; add the shared options."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _apply_shared(kwargs)
        try:
            return fn(*args, **kwargs)
        except EcertError as exc:
            _fail(str(exc), exit_code_for(exc))
        except OSError as exc:  # missing file, permission, full disk: the OS's words and the file
            where = f": {exc.filename}" if exc.filename else ""
            _fail(f"{exc.strerror or exc}{where}")
        except KeyboardInterrupt:
            _fail("interrupted; nothing more was written")

    signature = inspect.signature(fn, eval_str=True)
    wrapper.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[*signature.parameters.values(), *_shared_parameters()]
    )
    return wrapper  # type: ignore[return-value]


def _now() -> datetime:
    return datetime.now(UTC)


def _emit_json(data: dict[str, Any]) -> None:
    typer.echo(json.dumps({"schema": SCHEMA, **data}, indent=2, ensure_ascii=False, default=str))


def _read_secret_file(path: Path | None) -> bytes | None:
    if path is None:
        return None
    data = path.read_bytes().rstrip(b"\r\n")
    if not data:
        raise ClientError(f"{path} is empty")
    return data


def _stdin_is_terminal() -> bool:
    """Whether a hidden prompt can be asked at all (tests that type answers replace this)."""
    return sys.stdin is not None and sys.stdin.isatty()


def _require_terminal(what: str, option: str) -> None:
    """Refuse before calling getpass without a terminal.

    getpass falls back to reading stdin with echo and prints ``GetPassWarning`` and "Password input may
    be echoed" before any error of ours; a script gets one clean line naming the option instead.
    """
    if not _stdin_is_terminal():
        raise ClientError(f"cannot ask for the {what.lower()}: input is not a terminal; pass it with {option}")


def _new_secret(path: Path | None, what: str, option: str = "--passphrase-file") -> bytes:
    """A new password: from a file for scripts, else prompted twice and never echoed."""
    secret = _read_secret_file(path)
    if secret is not None:
        return secret
    _require_terminal(what, option)
    value = typer.prompt(what, hide_input=True, confirmation_prompt=True)
    if not value:
        raise ClientError(f"the {what.lower()} must not be empty")
    return str(value).encode()


def _existing_secret(path: Path | None, what: str, option: str = "--passphrase-file") -> bytes:
    secret = _read_secret_file(path)
    if secret is not None:
        return secret
    _require_terminal(what, option)
    return str(typer.prompt(what, hide_input=True)).encode()


def _load_entry_key(entry: Any, passphrase_file: Path | None) -> Any:
    from ecert.client.store import load_private_key

    pem = entry.key_pem
    encrypted = b"ENCRYPTED" in pem.split(b"\n", 1)[0]
    passphrase = _existing_secret(passphrase_file, "Key passphrase") if encrypted else None
    return load_private_key(pem, passphrase)


AllowIncompleteOpt = Annotated[
    bool,
    typer.Option(
        "--allow-incomplete-chain",
        help="Go on (with a warning) when the chain does not reach an installed root or cross-certificate.",
    ),
]


def _warn(message: str) -> None:
    """One line on stderr that does not stop the command."""
    _console(stderr=True).print(f"warning: {' '.join(message.split())}", markup=False, soft_wrap=True)


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


@app.command("list", short_help="Show the requests and certificates in the store.")
@_handle
def list_cmd() -> None:
    """Show pending requests and issued certificates: store name, friendly name, names, state, expiry."""
    store, now = STATE.store, _now()
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
                "names": _san_names(e.cert),
                "state": _state_of(e.cert.not_valid_after_utc, now),
                "not_after": e.cert.not_valid_after_utc.isoformat(),
                "version": e.version,
                "versions": len(store.versions(e.name)),
            }
        )
    if STATE.json:
        _emit_json({"store": str(store.root), "entries": rows})
        return
    table = _table(f"ecert store {store.root}", ("Name", "Friendly name", "Names", "State", "Expires", "Versions"))
    for r in rows:
        # The store name is what every other command takes; the friendly name is what the person called it.
        versions = str(r["versions"]) if r["versions"] else ""
        table.add_row(
            r["name"], r["friendly_name"], ", ".join(r["names"]), r["state"], (r["not_after"] or "")[:10], versions
        )
    _console().print(table)


def _san_names(cert: x509.Certificate) -> list[str]:
    from cryptography import x509

    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [str(n) for n in san.get_values_for_type(x509.DNSName)]


# -- request new ---------------------------------------------------------------------------------
@request_app.command("new", short_help="Make a key and a CSR (guide section B).")
@_handle
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
    passphrase = None if no_encrypt else _new_secret(passphrase_file, "Key passphrase")
    req = build_request(spec, passphrase)
    entry = store.write_pending(
        friendly_name, csr_pem=req.csr_pem, key_pem=req.key_pem, meta=req.meta(spec, _now()), force=force
    )
    if out is not None:
        from ecert.client.store import atomic_write

        atomic_write(out, req.csr_pem, force=force)
    if STATE.json:
        _emit_json(
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
    con = _console()
    table = _table(f"New request {entry.name}", ("Name (in the certificate)", "As you read it"))
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
@request_app.command("complete", short_help="Store the CA's certificate with its key (section E).")
@_handle
def request_complete(
    file: Annotated[Path, typer.Argument(help="The certificate: .cer (PEM or DER), .p7b, or a chain PEM.")],
    force: Annotated[bool, typer.Option("--force", help="Replace an issued certificate of the same name.")] = False,
) -> None:
    """Match the CA's certificate to its pending key and store it (guide section E)."""
    from ecert.client.complete import complete_request

    done = complete_request(STATE.store, file.read_bytes(), now=_now(), source=str(file), force=force)
    _print_completion(done)


def _print_completion(done: Completion) -> None:
    e = done.entry
    if STATE.json:
        _emit_json(
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
    con = _console()
    con.print(f"Completed {e.name}: {', '.join(_san_names(e.cert))}", markup=False)
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
        self.con = _console(stderr=True)

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
        table = _table("The certificate the CA issued", ("Field", "Value"))
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


@request_app.command("submit", short_help="Do the portal journey through the CA's API (section C).")
@_handle
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
    with ApiClient(ca_url, transport=_deps(ctx).transport) as api:
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
            now=_now,
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
        _require_terminal("PIN", "--pin-file")
        pin = str(typer.prompt("PIN", hide_input=True))
    elif str(path) == "-":
        pin = sys.stdin.readline().rstrip("\r\n")
    else:
        pin = path.read_text(encoding="utf-8").rstrip("\r\n")
    if not pin.strip():
        raise ClientError("the PIN is empty; it is on the PIN envelope from the CA")
    return pin


# -- CA certificates and CRLs --------------------------------------------------------------------
@ca_app.command("install")
@_handle
def ca_install(
    file: Annotated[Path, typer.Argument(help="CA certificate(s): PEM, DER or .p7b.")],
    root: Annotated[
        bool | None,
        typer.Option(
            "--root/--intermediate",
            help="Trust as a root, or only use to build paths (default: self-signed → root).",
        ),
    ] = None,
) -> None:
    """Install a sub-CA, cross-certificate or root (guide section D, steps 5-10)."""
    from ecert.client.chain import refresh_live_chains
    from ecert.client.complete import load_certificates

    store = STATE.store
    store.ensure()
    certs = load_certificates(file.read_bytes(), source=str(file))
    entries = [store.install_ca(c, anchor=root) for c in certs]
    refreshed = refresh_live_chains(store, now=_now())  # certificates completed before this CA was here
    if STATE.json:
        _emit_json(
            {"installed": [{"name": e.name, "root": e.anchor} for e in entries], "chains_updated": list(refreshed)}
        )
        return
    for e in entries:
        _console().print(f"Installed {'root (trusted)' if e.anchor else 'intermediate'} {e.name}", markup=False)
    for name in refreshed:
        _console().print(f"Updated the chain of {name} (live/{name}/chain.pem, fullchain.pem)", markup=False)


@ca_app.command("fetch", short_help="Download and install the CA's roots, chain, CRLs and ARL in one go.")
@_handle
def ca_fetch(
    ctx: typer.Context,
    url: Annotated[str, typer.Argument(help="The CA's address, e.g. https://ca.example.hk or its /repository/ page.")],
    root_sha256: Annotated[
        list[str] | None,
        typer.Option(
            "--root-sha256",
            help="The root's SHA-256 fingerprint as obtained another way; install only if it matches (repeat).",
        ),
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Trust the fetched roots without asking (scripts).")] = False,
) -> None:
    """Fetch the published roots, cross-certificate, issuing CAs, CRLs and ARL, show their SHA-256 fingerprints,
    and install them so that 'ecert verify' works.

    A root becomes trusted only when you confirm its fingerprint (or pass it with --root-sha256, or --yes).
    """
    from ecert.client.chain import refresh_live_chains
    from ecert.client.fetch import RepositoryClient, check_pins, install

    with RepositoryClient(transport=_deps(ctx).transport) as client:
        fetched = client.fetch(url)
    if not STATE.json:
        _show_fetched(fetched)
    if root_sha256:
        check_pins(fetched, root_sha256)
    elif not yes:
        _confirm_roots(fetched)
    done = install(STATE.store, fetched)
    refreshed = refresh_live_chains(STATE.store, now=_now())
    if STATE.json:
        _emit_json(
            {
                "index": fetched.index_url,
                "items": [
                    {"kind": i.kind, "role": i.role, "name": i.name, "url": i.url, "sha256": i.sha256}
                    for i in fetched.items
                ],
                "installed_cas": list(done.cas),
                "imported_crls": list(done.crls),
                "chains_updated": list(refreshed),
                "notes": list(done.notes),
            }
        )
        return
    con = _console()
    con.print(f"Installed {len(done.cas)} CA certificates and {len(done.crls)} revocation lists", markup=False)
    for name in refreshed:
        con.print(f"Updated the chain of {name} (live/{name}/chain.pem, fullchain.pem)", markup=False)
    for note in done.notes:
        con.print(f"note: {note}", markup=False)


def _show_fetched(fetched: Any) -> None:
    """One row per file with its SHA-256, for a person to compare with the CA's published fingerprints."""
    labels = {
        "root": "Root CA (trust anchor)",
        "cross": "Cross-certificate",
        "ov": "Issuing CA",
        "ev": "Issuing CA (EV)",
    }
    con = _console()
    con.print(f"Fetched from {fetched.index_url}; compare each SHA-256 with the CA's published one:", markup=False)
    for item in fetched.items:  # one line each: a fingerprint wrapped by a table is hard to compare
        what = labels.get(item.role, item.role) if item.kind == "certificate" else item.kind.upper()
        con.print(f"  {what}: {item.name}\n    SHA-256 {item.fingerprint}", markup=False)


def _confirm_roots(fetched: Any) -> None:
    """Ask before trusting a root fetched over the network; refuse cleanly where nobody can answer."""
    if not _stdin_is_terminal():
        raise ClientError(
            "a root fetched over the network is trusted only on purpose: compare its SHA-256 above with the CA's "
            "published one and pass it with --root-sha256 (or --yes)"
        )
    names = ", ".join(r.name for r in fetched.roots)
    if not typer.confirm(f"Trust {names} as a root, with the SHA-256 shown above?", default=False):
        raise ClientError("nothing was installed")


@ca_app.command("remove")
@_handle
def ca_remove(name: Annotated[str, typer.Argument(help="Store name (see 'ecert ca list') or CN.")]) -> None:
    """Remove an installed CA certificate, e.g. the old sub-CA (guide section D)."""
    e = STATE.store.remove_ca(name)
    _console().print(f"Removed {e.name}", markup=False)


@ca_app.command("list")
@_handle
def ca_list() -> None:
    """Show installed CA certificates."""
    entries = STATE.store.cas()
    rows: list[dict[str, Any]] = [
        {
            "name": e.name,
            "root": e.anchor,
            "subject": e.cert.subject.rfc4514_string(),
            "issuer": e.cert.issuer.rfc4514_string(),
            "not_after": e.cert.not_valid_after_utc.isoformat(),
        }
        for e in entries
    ]
    if STATE.json:
        _emit_json({"cas": rows})
        return
    table = _table("Installed CA certificates", ("Name", "Kind", "Issuer", "Expires"))
    for r in rows:
        table.add_row(r["name"], "root" if r["root"] else "intermediate", r["issuer"], r["not_after"][:10])
    _console().print(table)


@crl_app.command("import")
@_handle
def crl_import(file: Annotated[Path, typer.Argument(help="A CRL or ARL, PEM or DER.")]) -> None:
    """Import a CRL or the ARL so that 'verify' can check revocation."""
    from cryptography import x509

    data = file.read_bytes()
    try:
        crl = x509.load_pem_x509_crl(data) if data.lstrip().startswith(b"-----") else x509.load_der_x509_crl(data)
    except ValueError as exc:
        raise ClientError(f"{file} is not a readable CRL (PEM or DER); it may be truncated") from exc
    e = STATE.store.import_crl(crl)
    _console().print(f"Imported CRL {e.name} ({len(list(crl))} revoked entries)", markup=False)


CtLogListOpt = Annotated[
    Path | None,
    typer.Option(
        "--ct-log-list",
        help="Chrome's log_list.json (v3): verify the certificate's embedded SCTs and judge it by Chrome's and "
        "Apple's CT policies (default: CT not checked).",
    ),
]
RequireCtOpt = Annotated[
    bool,
    typer.Option("--require-ct", help="A certificate that fails either CT policy fails verification (exit 4)."),
]


def _ct_logs(path: Path | None, require: bool) -> Any:
    """The log list to judge SCTs by, or None; ``--require-ct`` without one is a usage error."""
    if path is None:
        if require:
            raise typer.BadParameter("--require-ct needs --ct-log-list FILE", param_hint="--require-ct")
        return None
    from ecert.client.ct_policy import load_log_list

    return load_log_list(path)


def _ct_verdict(report: Any, require: bool) -> None:
    """Exit 4 when CT is required and either browser policy is not met; otherwise CT only informs."""
    if require and not report.met:
        _fail("Certificate Transparency is required and the certificate does not meet both policies", 4)


# -- verify --------------------------------------------------------------------------------------
@app.command("verify", short_help="Verify a certificate's chain, revocation and host name.")
@_handle
def verify_cmd(
    target: Annotated[str, typer.Argument(help="An issued certificate's name, or a certificate file.")],
    hostname: Annotated[str | None, typer.Option(help="Host name to check (default: the common name).")] = None,
    ct_log_list: CtLogListOpt = None,
    require_ct: RequireCtOpt = False,
) -> None:
    """Build and verify the chain to an installed root, check CRLs and the ARL, and explain failures."""
    from ecert.client.complete import load_certificates
    from ecert.client.verify import transparency_of, verify_certificate

    ct_logs = _ct_logs(ct_log_list, require_ct)

    store = STATE.store
    chain: list[x509.Certificate] = []
    try:
        entry = store.live_entry(target)
        leaf, chain = entry.cert, list(entry.chain)
    except NotFound:
        path = Path(target)
        if not path.is_file():
            raise
        certs = load_certificates(path.read_bytes(), source=target)
        leaf, chain = certs[0], certs[1:]
    host = hostname or _default_host(leaf)
    result = verify_certificate(
        leaf,
        hostname=host,
        roots=store.roots(),
        intermediates=[*chain, *store.intermediates()],
        crls=[c.crl for c in store.crls()],
        now=_now(),
    )
    subjects = [c.subject.rfc4514_string() for c in result.chain]
    ct = transparency_of(result, ct_logs, now=_now())
    if STATE.json:
        _emit_json(
            {
                "ok": True,
                "hostname": host,
                "chain": subjects,
                "via_cross": result.via_cross,
                "notes": list(result.revocation_notes),
                "ct": ct.to_json(),
            }
        )
        _ct_verdict(ct, require_ct)
        return
    con = _console()
    con.print(f"OK: valid for {host} until {leaf.not_valid_after_utc:%Y-%m-%d}", markup=False)
    for i, s in enumerate(subjects):
        con.print(f"  {'  ' * i}{s}", markup=False)
    if result.via_cross:
        con.print("The path goes through the cross-certificate.")
    for note in result.revocation_notes:
        con.print(f"note: {note}", markup=False)
    for line in ct.lines():
        con.print(line, markup=False)
    _ct_verdict(ct, require_ct)


def _default_host(leaf: x509.Certificate) -> str:
    from cryptography import x509

    names = _san_names(leaf)
    cns = leaf.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    host = str(cns[0].value) if cns else (names[0] if names else "")
    return host[2:] if host.startswith("*.") else host


# -- export / import -----------------------------------------------------------------------------
@app.command("export", short_help="Back up a certificate and its key as a PFX (section F).")
@_handle
def export_cmd(
    name: Annotated[str, typer.Argument(help="The issued certificate to back up.")],
    pfx: Annotated[Path, typer.Option("--pfx", help="The .pfx file to write.")],
    legacy: Annotated[
        bool, typer.Option("--legacy", help="3DES + SHA-1 MAC for Windows Server 2012-2016 / Exchange 2010.")
    ] = False,
    password_file: Annotated[Path | None, typer.Option(help="Read the PFX password from a file.")] = None,
    passphrase_file: Annotated[Path | None, typer.Option(help="Read the stored key's passphrase from a file.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing file.")] = False,
    allow_incomplete_chain: AllowIncompleteOpt = False,
) -> None:
    """Back up key, certificate and chain as a PFX (guide section F). AES-256 + PBKDF2-SHA256 by default."""
    from ecert.client.chain import plan_for_live
    from ecert.client.pkcs12 import export_pfx
    from ecert.client.store import KEY_MODE, atomic_write

    entry = STATE.store.live_entry(name)
    if pfx.exists() and not force:
        raise ClientError(f"{pfx} already exists; use --force to replace it")
    plan = plan_for_live(STATE.store, entry, now=_now())
    if not plan.complete:
        if not allow_incomplete_chain:
            raise plan.refusal(entry.name)
        _warn(f"{plan.gap(entry.name)}; the backup holds only the chain found")
    key = _load_entry_key(entry, passphrase_file)
    password = _new_secret(password_file, "PFX password", "--password-file")
    data = export_pfx(
        key,
        entry.cert,
        plan.backup(),
        password,
        friendly_name=str(entry.meta.get("friendly_name", entry.name)),
        legacy=legacy,
    )
    atomic_write(pfx, data, mode=KEY_MODE, force=force)
    kind = "3DES/SHA-1 (legacy)" if legacy else "AES-256-CBC, PBKDF2-SHA256, SHA-256 MAC"
    _console().print(f"Wrote {pfx} ({kind})", markup=False)


@app.command("import", short_help="Restore a PFX backup into the store (section G).")
@_handle
def import_cmd(
    file: Annotated[Path, typer.Argument(help="The .pfx/.p12 backup.")],
    name: Annotated[str | None, typer.Option(help="Store name (default: the PFX's friendly name or CN).")] = None,
    password_file: Annotated[Path | None, typer.Option(help="Read the PFX password from a file.")] = None,
    no_encrypt: Annotated[bool, typer.Option("--no-encrypt", help="Store the key unencrypted (0600).")] = False,
    passphrase_file: Annotated[Path | None, typer.Option(help="Read the new key passphrase from a file.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an issued certificate of the same name.")] = False,
) -> None:
    """Restore a PFX into the store (guide section G); refuses unsafe files and writes nothing then."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    from ecert.client.chain import build_chain
    from ecert.client.pkcs12 import import_pfx
    from ecert.client.store import safe_name

    store = STATE.store
    store.ensure()
    data = file.read_bytes()
    restored = import_pfx(data, _existing_secret(password_file, "PFX password", "--password-file"))
    cns = restored.cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    entry_name = safe_name(name or restored.friendly_name or (str(cns[0].value) if cns else "imported"))
    if (store.live_dir / entry_name).exists() and not force:
        raise ClientError(f"a certificate named {entry_name!r} is already in the store; use --force or --name")
    passphrase = None if no_encrypt else _new_secret(passphrase_file, "New key passphrase")
    enc: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption()
    )
    key_pem = restored.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)
    for ca in restored.chain:
        try:
            store.install_ca(ca, anchor=False)
        except ClientError:
            pass
    chain = list(
        build_chain(restored.cert, [*restored.chain, *store.intermediates(), *store.roots()], now=_now()).intermediates
    )
    san_names = _san_names(restored.cert)
    meta = {
        "friendly_name": restored.friendly_name or entry_name,
        "names": san_names,
        "key_encrypted": passphrase is not None,
        "imported": _now().isoformat(),
        "source": str(file),
    }
    entry = store.write_live(entry_name, cert=restored.cert, chain=chain, key_pem=key_pem, meta=meta, force=force)
    names = ", ".join(san_names) or "no DNS names in the certificate"
    _console().print(f"Imported {entry.name} (version {entry.version}): {names}", markup=False)


# -- deploy --------------------------------------------------------------------------------------
@app.command("deploy", short_help="Write the files nginx, Apache, HAProxy, IIS or Java take.")
@_handle
def deploy_cmd(
    name: Annotated[str, typer.Argument(help="The issued certificate to deploy.")],
    fmt: Annotated[DeployFormat, typer.Option("--format", help="Which server's files to write.")],
    out: Annotated[Path, typer.Option("--out", help="Directory to write into.")],
    cross: Annotated[
        bool | None,
        typer.Option("--cross/--no-cross", help="Append the cross-certificate (default: when one is installed)."),
    ] = None,
    legacy: Annotated[bool, typer.Option("--legacy", help="Legacy PFX (3DES/SHA-1) for --format pfx.")] = False,
    password_file: Annotated[Path | None, typer.Option(help="Password for pfx/jks output, from a file.")] = None,
    passphrase_file: Annotated[Path | None, typer.Option(help="Read the stored key's passphrase from a file.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace existing files.")] = False,
    allow_incomplete_chain: AllowIncompleteOpt = False,
) -> None:
    """Write the files a server takes: nginx, apache, haproxy, pem, pfx or jks (keys 0600).

    The chain is built from the CA certificates installed now; a chain that does not reach a root is
    refused unless --allow-incomplete-chain.
    """
    from ecert.client.deploy import deploy

    store = STATE.store
    entry = store.live_entry(name)
    key = _load_entry_key(entry, passphrase_file)
    password = (
        _new_secret(password_file, "Keystore password", "--password-file")
        if fmt in (DeployFormat.PFX, DeployFormat.JKS)
        else None
    )
    result = deploy(
        fmt,
        entry,
        key,
        out,
        pool=[*store.intermediates(), *store.roots()],
        via_cross=cross,
        password=password,
        legacy=legacy,
        force=force,
        allow_incomplete=allow_incomplete_chain,
        now=_now(),
    )
    if result.warning:
        _warn(result.warning)
    _remember_deploy(entry, fmt, out, cross, legacy, password_file, allow_incomplete_chain)
    if STATE.json:
        _emit_json(
            {
                "files": [str(p) for p in result.files],
                "via_cross": result.via_cross,
                "chain": list(result.chain_subjects),
                "chain_complete": result.chain_complete,
            }
        )
        return
    con = _console()
    for p in result.files:
        con.print(f"Wrote {p}", markup=False)
    con.print(
        "Chain: "
        + (" → ".join(result.chain_subjects) or "(none)")
        + (" — via the cross-certificate" if result.via_cross else " — not via a cross-certificate"),
        markup=False,
    )
    if result.snippet:
        con.print(result.snippet, markup=False)


def _remember_deploy(
    entry: Any,
    fmt: DeployFormat,
    out: Path,
    cross: bool | None,
    legacy: bool,
    password_file: Path | None,
    allow_incomplete: bool,
) -> None:
    """Record what was deployed in the lineage's metadata, so 'ecert renew' writes the same files again."""
    from ecert.client.redeploy import DeployRecord, record_deploy

    record = DeployRecord(
        format=fmt,
        out=Path(os.path.abspath(out)),
        cross=cross,
        legacy=legacy,
        password_file=Path(os.path.abspath(password_file)) if password_file else None,
        allow_incomplete=allow_incomplete,
    )
    record_deploy(STATE.store, entry, record)


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


@acme_app.command("register", short_help="Make an account key and register it with EAB.")
@_handle
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
        now=_now(),
        ca_bundle=ca,
        force=force,
    )
    if STATE.json:
        _emit_json({"directory": account.directory, "account": account.uri, "path": str(account.path)})
        return
    _console().print(f"Registered {account.uri}", markup=False)
    _console().print(f"Account key: {account.path / 'key.pem'}", markup=False)


@acme_app.command("list", short_help="Show the stored ACME accounts.")
@_handle
def acme_list() -> None:
    """Show the stored ACME accounts: directory, account URL and where the key is."""
    from ecert.client.acme_account import list_accounts

    rows = [{"directory": a.directory, "account": a.uri, "path": str(a.path)} for a in list_accounts(STATE.store)]
    if STATE.json:
        _emit_json({"accounts": rows})
        return
    table = _table("ACME accounts", ("Directory", "Account", "Path"))
    for r in rows:
        table.add_row(r["directory"], r["account"], r["path"])
    _console().print(table)


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


@acme_app.command("order", short_help="Obtain a first certificate over ACME into a new lineage.")
@_handle
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
    entry = obtain(STATE.store, friendly_name, list(name), generate_key(key_type), opts, now=_now())
    if STATE.json:
        _emit_json(
            {"name": entry.name, "version": entry.version, "not_after": entry.cert.not_valid_after_utc.isoformat()}
        )
        return
    _console().print(f"Issued {entry.name}: {', '.join(_san_names(entry.cert))} (live/{entry.name})", markup=False)


@app.command("renew", short_help="Renew certificates over ACME when due (for cron or a systemd timer).")
@_handle
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
        passphrase=_read_secret_file(passphrase_file),
    )
    now = _now()
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
        _emit_json({"results": [r.to_json() for r in results]})
        return
    con = _console()
    for r in results:
        if r.status.value == "failed":
            _console(stderr=True).print(f"{r.name}: FAILED: {' '.join(str(r.error).split())}", markup=False)
            continue
        con.print(_renewal_line(r), markup=False)
        for d in r.deployed:
            failed = f": FAILED {d.error}" if d.error else ""
            con.print(f"  deployed {d.record.format.value} to {d.record.out}{failed}", markup=False)
        if r.hook_error:
            _console(stderr=True).print(f"{r.name}: {' '.join(r.hook_error.split())}", markup=False)
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


# -- check ---------------------------------------------------------------------------------------
@app.command("check", short_help="Judge the chain a live server serves.")
@_handle
def check_cmd(
    url: Annotated[str, typer.Argument(help="https://HOST[:PORT]")],
    servername: Annotated[str | None, typer.Option(help="SNI / host name to check (default: HOST).")] = None,
    timeout: Annotated[float, typer.Option(help="Connect timeout in seconds.")] = 10.0,
    ct_log_list: CtLogListOpt = None,
    require_ct: RequireCtOpt = False,
) -> None:
    """Connect to a server and judge what it serves: chain, order, host name, expiry, key in the store, and
    (given a log list) its Certificate Transparency."""
    from ecert.client.check import check_server

    ct_logs = _ct_logs(ct_log_list, require_ct)
    r = check_server(url, STATE.store, now=_now(), server_name=servername, timeout=timeout, ct_logs=ct_logs)
    if STATE.json:
        _emit_json(
            {
                "host": r.host,
                "port": r.port,
                "served": list(r.served),
                "in_order": r.in_order,
                "complete": r.complete,
                "incomplete_reason": r.incomplete_reason,
                "hostname_ok": r.hostname_ok,
                "days_left": r.days_left,
                "not_after": r.not_after,
                "store_match": r.store_match,
                "verified": r.verified,
                "problem": r.problem,
                "reason": r.problem_reason,
                "notes": list(r.notes),
                "ct": r.ct.to_json(),
            }
        )
    else:
        con = _console()
        table = _table(f"{r.host}:{r.port}", ("Check", "Result"))
        table.add_row("Served chain", " → ".join(r.served))
        table.add_row("In order", "yes" if r.in_order else "NO")
        table.add_row("Complete", "yes" if r.complete else f"NO: {r.incomplete_reason}")
        table.add_row("Host name", "matches" if r.hostname_ok else "DOES NOT MATCH")
        table.add_row("Expires", f"{r.not_after[:10]} ({r.days_left} days)")
        table.add_row("Key in store", r.store_match or "no")
        table.add_row("Verified", "yes" if r.verified else f"NO: {r.problem}")
        con.print(table)
        for n in r.notes:
            con.print(f"note: {n}", markup=False)
        for line in r.ct.lines():
            con.print(line, markup=False)
    if not r.ok:
        raise typer.Exit(4)
    _ct_verdict(r.ct, require_ct)


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
