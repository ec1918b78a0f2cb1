"""What every ``ecert`` command shares: the run's state and dependencies, output, errors and secrets.

One job: the plumbing between typer and a command body, so that each command module holds only its
commands. Like ``subscriber.py`` it imports only typer and light ``ecert`` modules at the top; rich and
cryptography are imported by the helpers that use them, when a command runs.

Two seams are looked up on this module when called, so a test replaces them in one place: ``now`` (the
clock every command reads) and ``stdin_is_terminal`` (whether a hidden prompt can be asked). Command
modules call them as ``client_shared.now()`` rather than importing the function.
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

from ecert.client.errors import ClientError, exit_code_for
from ecert.core.errors import EcertError

if TYPE_CHECKING:
    import httpx
    from cryptography import x509
    from rich.console import Console
    from rich.table import Table

    from ecert.client.store import LocalStore

SCHEMA = 1

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


def deps_of(ctx: typer.Context) -> ClientDeps:
    """The dependencies given to this run (``main`` and tests put a ClientDeps in the context's ``obj``)."""
    found = ctx.find_object(ClientDeps)
    return found if found is not None else ClientDeps()


def console(stderr: bool = False) -> Console:
    """Colour only on a terminal and never with NO_COLOR (rich honours both). No emoji codes: a fingerprint
    such as ``A4:CD:1C`` printed ``A4💿1C``, and the person comparing it with the CA's page saw a mismatch."""
    from rich.console import Console

    return Console(
        stderr=stderr, highlight=False, soft_wrap=True, emoji=False, no_color=bool(os.environ.get("NO_COLOR"))
    )


def new_table(title: str, columns: Sequence[str]) -> Table:
    """A rich table with these column headings (rich is imported only when a command prints one)."""
    from rich.table import Table

    table = Table(title=title)
    for col in columns:
        table.add_column(col)
    return table


def fail(message: str, code: int = 1) -> None:
    """One line on stderr, whatever the message held (a CA's problem detail may span lines)."""
    console(stderr=True).print(f"error: {' '.join(message.split())}", markup=False, soft_wrap=True)
    raise typer.Exit(code)


def warn(message: str) -> None:
    """One line on stderr that does not stop the command."""
    console(stderr=True).print(f"warning: {' '.join(message.split())}", markup=False, soft_wrap=True)


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


def handle(fn: F) -> F:
    """Turn our errors into one line on stderr and the documented exit code; add the shared options.

    The command's annotations are evaluated in the module that defines it, so each command module keeps the
    names its parameters are annotated with (``Path``, ``Annotated``, the ``*Opt`` aliases) importable at
    run time, not only under TYPE_CHECKING.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _apply_shared(kwargs)
        try:
            return fn(*args, **kwargs)
        except EcertError as exc:
            fail(str(exc), exit_code_for(exc))
        except OSError as exc:  # missing file, permission, full disk: the OS's words and the file
            where = f": {exc.filename}" if exc.filename else ""
            fail(f"{exc.strerror or exc}{where}")
        except KeyboardInterrupt:
            fail("interrupted; nothing more was written")

    signature = inspect.signature(fn, eval_str=True)
    wrapper.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[*signature.parameters.values(), *_shared_parameters()]
    )
    return wrapper  # type: ignore[return-value]


def now() -> datetime:
    """The time every command works with (tests set their own clock here)."""
    return datetime.now(UTC)


def emit_json(data: dict[str, Any]) -> None:
    """The ``--json`` output: one document, with the schema version readers check first."""
    typer.echo(json.dumps({"schema": SCHEMA, **data}, indent=2, ensure_ascii=False, default=str))


def read_secret_file(path: Path | None) -> bytes | None:
    """A secret from a file for scripts (without the trailing newline), or None when no file was given."""
    if path is None:
        return None
    data = path.read_bytes().rstrip(b"\r\n")
    if not data:
        raise ClientError(f"{path} is empty")
    return data


def stdin_is_terminal() -> bool:
    """Whether a hidden prompt can be asked at all (tests that type answers replace this)."""
    return sys.stdin is not None and sys.stdin.isatty()


def require_terminal(what: str, option: str) -> None:
    """Refuse before calling getpass without a terminal.

    getpass falls back to reading stdin with echo and prints ``GetPassWarning`` and "Password input may
    be echoed" before any error of ours; a script gets one clean line naming the option instead.
    """
    if not stdin_is_terminal():
        raise ClientError(f"cannot ask for the {what.lower()}: input is not a terminal; pass it with {option}")


def new_secret(path: Path | None, what: str, option: str = "--passphrase-file") -> bytes:
    """A new password: from a file for scripts, else prompted twice and never echoed."""
    secret = read_secret_file(path)
    if secret is not None:
        return secret
    require_terminal(what, option)
    value = typer.prompt(what, hide_input=True, confirmation_prompt=True)
    if not value:
        raise ClientError(f"the {what.lower()} must not be empty")
    return str(value).encode()


def existing_secret(path: Path | None, what: str, option: str = "--passphrase-file") -> bytes:
    """A password that already exists: from a file for scripts, else prompted once and never echoed."""
    secret = read_secret_file(path)
    if secret is not None:
        return secret
    require_terminal(what, option)
    return str(typer.prompt(what, hide_input=True)).encode()


def load_entry_key(entry: Any, passphrase_file: Path | None) -> Any:
    """A stored entry's private key, asking for its passphrase only when the key is encrypted."""
    from ecert.client.store import load_private_key

    pem = entry.key_pem
    encrypted = b"ENCRYPTED" in pem.split(b"\n", 1)[0]
    passphrase = existing_secret(passphrase_file, "Key passphrase") if encrypted else None
    return load_private_key(pem, passphrase)


def san_dns_names(cert: x509.Certificate) -> list[str]:
    """The DNS names of a certificate's subjectAltName (none without the extension)."""
    from cryptography import x509

    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [str(n) for n in san.get_values_for_type(x509.DNSName)]


AllowIncompleteOpt = Annotated[
    bool,
    typer.Option(
        "--allow-incomplete-chain",
        help="Go on (with a warning) when the chain does not reach an installed root or cross-certificate.",
    ),
]
