"""`ecert-ca`: the operator's command line. It parses, calls services and prints; nothing more."""

from __future__ import annotations

import importlib
import os
import secrets
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

from ..core.errors import EcertError
from . import output

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from pydantic import ValidationError

    from ..settings import Settings
else:

    class _OnFirstUse(ModuleType):
        """A module imported when a command first uses it: `--help` and light commands never pay for it."""

        def __getattr__(self, attr: str) -> Any:
            return getattr(importlib.import_module(self.__name__), attr)

    x509 = _OnFirstUse("cryptography.x509")
    serialization = _OnFirstUse("cryptography.hazmat.primitives.serialization")

__all__ = ["app", "main"]

# Plain help at the top (rich_markup_mode=None): the rich help renderer pulls in a Markdown parser, a third
# of `ecert-ca --help`'s start-up; the command groups keep rich help.
app = typer.Typer(
    help="ecert-ca: run the certificate authority (e-Cert (Server) style).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
ca_app = typer.Typer(help="CA hierarchy: list, show, rollover, ceremonies.", no_args_is_help=True)
app.add_typer(ca_app, name="ca")

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
DEMO_PASSPHRASE_FILE = "secrets/demo-key-passphrase"


def _settings(demo: bool = False) -> Settings:
    from ..settings import load_settings

    settings = load_settings()
    if (
        demo
        and settings.key_backend == "file"
        and not settings.key_passphrase_file
        and settings.key_passphrase_env not in os.environ
    ):
        # Demo convenience only: a random passphrase in a 0600 file outside the key directory.
        path = settings.data_dir / DEMO_PASSPHRASE_FILE
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(32))
        settings = load_settings(key_passphrase_file=path)
    elif not demo and not settings.key_passphrase_file and settings.key_passphrase_env not in os.environ:
        demo_file = settings.data_dir / DEMO_PASSPHRASE_FILE
        if demo_file.exists():
            settings = load_settings(key_passphrase_file=demo_file)
    return settings


@contextmanager
def _context(demo: bool = False, *, acme_secret: bool = False) -> Iterator[Any]:
    """The services' handles for one command; ``acme_secret`` makes the kept ACME secret if there is none yet
    (only a command that seals with it: `acme eab new`)."""
    from ..services.context import build_context

    settings = _settings(demo)
    ctx = build_context(settings, _with_kept_acme_secret(settings, create=acme_secret))
    try:
        yield ctx
    finally:
        ctx.close()


def _config(settings: Settings) -> Any:
    from ..services.ca_config import load_hierarchy_config

    return load_hierarchy_config(settings.hierarchy_config)


def _cert_of(row: Any) -> x509.Certificate:
    return x509.load_der_x509_certificate(row.cert_der)


# --- init -----------------------------------------------------------------------------------------------


@app.command()
def init(
    demo: Annotated[bool, typer.Option("--demo", help="Demo names and a stand-in cross-signing root.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Make the hierarchy: root, OV and EV issuing CAs (and, with --demo, a cross-certificate)."""
    from ..services.ceremony import init_hierarchy

    with _context(demo) as ctx:
        result = init_hierarchy(ctx, _config(ctx.settings), demo=demo)
        if json_out:
            output.emit_json("init", {"created": list(result.created), "already": result.already})
        elif result.already:
            output.console().print("The hierarchy already exists; nothing changed. See `ecert-ca ca list`.")
        else:
            output.console().print(f"Created {', '.join(result.created)} in {ctx.settings.data_dir.resolve()}")


# --- ca ---------------------------------------------------------------------------------------------------


def _ca_rows(ctx: Any) -> list[Any]:
    from ..services.ca_listing import list_cas

    return list_cas(ctx)


@ca_app.command("list")
def ca_list(json_out: JsonOpt = False) -> None:
    """Every CA certificate: roots, cross-certificates, issuing CAs old and new."""
    with _context() as ctx:
        rows = _ca_rows(ctx)
        data = [
            {
                "label": r.label,
                "role": r.role,
                "status": r.status,
                "subject": r.subject_dn,
                "effective_from": r.effective_from,
                "not_after": r.not_after,
            }
            for r in rows
        ]
        if json_out:
            output.emit_json("ca-list", data)
        else:
            output.table(
                "CA certificates",
                ("label", "role", "status", "effective from", "expires", "subject"),
                [(d["label"], d["role"], d["status"], d["effective_from"], d["not_after"], d["subject"]) for d in data],
            )


@ca_app.command("show")
def ca_show(
    label: str,
    pem: Annotated[bool, typer.Option("--pem", help="Print the certificate as PEM.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """One CA certificate's details (or its PEM)."""
    with _context() as ctx:
        row = next((r for r in _ca_rows(ctx) if r.label == label), None)
        if row is None:
            output.fail(f"no CA labelled {label!r}; see `ecert-ca ca list`")
        cert = _cert_of(row)
        if pem:
            sys.stdout.write(cert.public_bytes(serialization.Encoding.PEM).decode())
            return
        data = {
            "label": row.label,
            "role": row.role,
            "status": row.status,
            "subject": row.subject_dn,
            "issuer": cert.issuer.rfc4514_string(),
            "serial": format(cert.serial_number, "x"),
            "not_before": row.not_before,
            "not_after": row.not_after,
            "effective_from": row.effective_from,
            "ski": row.ski_hex,
            "spki_sha256": row.spki_sha256,
            "key_ref": row.key_ref,
        }
        output.emit_json("ca", data) if json_out else output.fields(f"CA {label}", data)


@ca_app.command("rollover")
def ca_rollover(
    role: Annotated[str, typer.Argument(help="ov or ev")],
    label: Annotated[str | None, typer.Option(help="Label of the new CA.")] = None,
    common_name: Annotated[str | None, typer.Option(help="CN of the new CA.")] = None,
    effective_from: Annotated[datetime | None, typer.Option(help="When it starts issuing (UTC).")] = None,
    revoke_old_at: Annotated[
        datetime | None, typer.Option(help="Revoke the old CA(s) into the ARL at this time (UTC), reason superseded.")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """A new issuing CA for ROLE; the old one stops issuing, and is revoked into the ARL when you say."""
    from ..services.ceremony import rollover
    from ..services.revocation import revoke_ca

    def _utc(value: datetime | None) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value

    with _context() as ctx:
        new, old = rollover(
            ctx, _config(ctx.settings), role, label=label, common_name=common_name, effective_from=_utc(effective_from)
        )
        revoked = [revoke_ca(ctx, o.label, "superseded", _utc(revoke_old_at)) for o in old] if revoke_old_at else []
        data = {
            "new": new.label,
            "effective_from": new.effective_from,
            "retired": [o.label for o in old],
            "revocation_scheduled": [{"label": o.label, "at": _utc(revoke_old_at)} for o in old] if revoked else [],
        }
        if json_out:
            output.emit_json("rollover", data)
        else:
            retired = ", ".join(o.label for o in old) or "none"
            output.console().print(
                f"New {role.upper()} issuing CA {new.label}, effective from "
                f"{new.effective_from:%d/%m/%Y}; retired: {retired}"
            )


@ca_app.command("revoke")
def ca_revoke(
    label: str,
    reason: Annotated[str | None, typer.Option(help="superseded, cessationOfOperation, cACompromise, ...")] = None,
    at: Annotated[datetime | None, typer.Option(help="When (UTC); a future date is applied by the jobs.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Revoke an issuing CA certificate into the root's ARL, now or at a date (the end of a rollover)."""
    from ..services.revocation import revoke_ca

    with _context() as ctx:
        when = at.replace(tzinfo=UTC) if at and at.tzinfo is None else at
        result = revoke_ca(ctx, label, reason, when, actor="operator:cli")
        data = {
            "ca": result.label,
            "revoked_at": result.revoked_at,
            "reason": result.reason,
            "scheduled": result.scheduled,
        }
        if json_out:
            output.emit_json("ca-revocation", data)
        else:
            verb = "will be revoked on" if result.scheduled else "revoked on"
            output.console().print(
                f"CA {label} {verb} {result.revoked_at:%d/%m/%Y %H:%M} UTC ({result.reason or 'no reason stated'})"
            )


def _write(path: Path, data: bytes) -> None:
    if path.exists():
        output.fail(f"{path} exists; not overwriting")
    path.write_bytes(data)


@ca_app.command("request")
def ca_request(
    role: Annotated[str, typer.Argument(help="ov or ev")],
    label: Annotated[str, typer.Option(help="Label of the new CA (also its key's label).")],
    common_name: Annotated[str, typer.Option(help="CN of the new CA.")],
    out: Annotated[Path, typer.Option(help="Where to write the PKCS#10 request (PEM).")],
) -> None:
    """Offline-root ceremony 1: make an issuing CA key here and write its request for the root."""
    from ..services.ceremony import make_ca_request

    with _context() as ctx:
        csr = make_ca_request(ctx, _config(ctx.settings), role, label=label, common_name=common_name)
        _write(out, csr.public_bytes(serialization.Encoding.PEM))
        output.console().print(f"Wrote {out}; sign it on the root's machine with `ecert-ca ca sign-request`.")


@ca_app.command("sign-request")
def ca_sign_request(
    csr_file: Annotated[Path, typer.Argument(help="The issuing CA's request (PEM).")],
    role: Annotated[str, typer.Option(help="ov or ev")],
    out: Annotated[Path, typer.Option(help="Where to write the certificate (PEM).")],
    days: int = 1825,
) -> None:
    """Offline-root ceremony 2 (on the root's machine): certify an issuing CA request."""
    from ..services.ceremony import sign_ca_request

    with _context() as ctx:
        try:
            csr = x509.load_pem_x509_csr(csr_file.read_bytes())
        except (OSError, ValueError) as exc:
            output.fail(f"cannot read the request {csr_file}: {exc}")
        cert = sign_ca_request(ctx, csr, role, days=days)
        _write(out, cert.public_bytes(serialization.Encoding.PEM))
        output.console().print(f"Wrote {out}")


@ca_app.command("import")
def ca_import(
    cert_file: Path,
    role: Annotated[str, typer.Option(help="ov or ev")],
    label: Annotated[str, typer.Option(help="The label used with `ca request`.")],
) -> None:
    """Offline-root ceremony 3: install the signed issuing CA certificate."""
    from ..services.ceremony import import_ca_certificate

    with _context() as ctx:
        row = import_ca_certificate(ctx, _load_cert(cert_file), role=role, label=label)
        output.console().print(f"Installed {row.label} ({row.role}), effective from {row.effective_from:%d/%m/%Y}")


@ca_app.command("cross-request")
def ca_cross_request(
    out_dir: Annotated[Path, typer.Option(help="Directory for root.pem and root-request.pem.")],
) -> None:
    """What another root needs to cross-certify ours: our root certificate and a request signed by its key."""
    from ..services.ceremony import cross_request

    with _context() as ctx:
        cert, csr = cross_request(ctx)
        out_dir.mkdir(parents=True, exist_ok=True)
        _write(out_dir / "root.pem", cert.public_bytes(serialization.Encoding.PEM))
        _write(out_dir / "root-request.pem", csr.public_bytes(serialization.Encoding.PEM))
        output.console().print(f"Wrote {out_dir}/root.pem and {out_dir}/root-request.pem")


def _load_cert(path: Path) -> x509.Certificate:
    try:
        data = path.read_bytes()
        return x509.load_pem_x509_certificate(data) if b"-----BEGIN" in data else x509.load_der_x509_certificate(data)
    except (OSError, ValueError) as exc:
        output.fail(f"cannot read a certificate from {path}: {exc}")
        raise  # unreachable


@ca_app.command("import-cross")
def ca_import_cross(
    cross_file: Path,
    external_root: Annotated[Path, typer.Option(help="The other root's certificate.")],
    external_label: Annotated[str, typer.Option(help="A label for the other root.")],
) -> None:
    """Install a cross-certificate for our root issued by another root."""
    from ..services.ceremony import import_cross_certificate

    with _context() as ctx:
        row = import_cross_certificate(
            ctx, _load_cert(cross_file), _load_cert(external_root), external_label=external_label
        )
        output.console().print(f"Installed cross-certificate {row.label}")


# --- cert -------------------------------------------------------------------------------------------------


# --- serve ------------------------------------------------------------------------------------------------


SESSION_SECRET_FILE = "secrets/session-secret"
ACME_SECRET_FILE = "secrets/acme-secret"


def _kept_secret(settings: Settings, env_name: str, relative: str) -> str:
    """The secret configured in ``env_name``, else one kept 0600 in the data dir (made on first need).

    Every process on one data directory then shares it: serve's workers, and the operator's commands beside
    them. Several hosts must be given the same value in the variable instead.
    """
    return os.environ.get(env_name) or _read_kept(settings, relative) or _make_kept(settings, relative)


def _read_kept(settings: Settings, relative: str) -> str | None:
    path = settings.data_dir / relative
    return path.read_text().strip() if path.exists() else None


def _make_kept(settings: Settings, relative: str) -> str:
    path = settings.data_dir / relative
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first: share theirs
        return path.read_text().strip()
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_urlsafe(32))
    return path.read_text().strip()


def _with_kept_acme_secret(settings: Settings, *, create: bool) -> dict[str, str]:
    """This process's environment, with the ACME secret (EAB keys are sealed and nonces signed with it) taken
    from the data dir when the variable is unset: `acme eab new` must seal with the key serve unseals with."""
    env = dict(os.environ)
    name = settings.acme_eab_secret_env
    kept = _kept_secret(settings, name, ACME_SECRET_FILE) if create else _read_kept(settings, ACME_SECRET_FILE)
    if kept and not env.get(name):
        env[name] = kept
    return env


def _worker_environment(settings: Settings) -> None:
    """Hand the workers what the parent decided: they rebuild settings from the environment alone. A
    per-process random cookie key would make a session signed by one worker invalid at the next, and a
    per-process ACME secret would refuse another worker's nonces and EAB keys."""
    os.environ[settings.session_secret_env] = _kept_secret(settings, settings.session_secret_env, SESSION_SECRET_FILE)
    os.environ[settings.acme_eab_secret_env] = _kept_secret(settings, settings.acme_eab_secret_env, ACME_SECRET_FILE)
    if settings.key_passphrase_file is not None:
        os.environ["ECERT_KEY_PASSPHRASE_FILE"] = str(settings.key_passphrase_file.resolve())
    os.environ["ECERT_DATA_DIR"] = str(settings.data_dir.resolve())


@app.command()
def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    demo: Annotated[bool, typer.Option("--demo", help="Make the demo hierarchy first if there is none.")] = False,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes (they share sessions).")] = 1,
    tls_cert: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            dir_okay=False,
            help="Serve HTTPS with this PEM certificate chain (ACME needs HTTPS: RFC 8555 6.1). With --tls-key.",
        ),
    ] = None,
    tls_key: Annotated[
        Path | None, typer.Option(exists=True, dir_okay=False, help="The private key (PEM) of --tls-cert.")
    ] = None,
) -> None:
    """Run the CA's web service (repository, CRLs, OCSP, portal, API and ACME).

    ACME clients, the portal and the API want HTTPS; CRLs, OCSP and the repository are fetched over plain
    HTTP (the URLs in certificates name http://). Run one process with --tls-cert and --tls-key on 443 and
    one without on 80, on the same data directory or database, or put a TLS proxy in front of one.
    """
    import uvicorn

    from ..services.ceremony import init_hierarchy
    from ..services.context import build_context
    from ..web.server import uvicorn_options
    from ..web.worker import FACTORY

    if (tls_cert is None) != (tls_key is None):
        raise typer.BadParameter("give --tls-cert and --tls-key together", param_hint="--tls-cert / --tls-key")
    settings = _settings(demo)
    ctx = build_context(settings, os.environ)  # migrates once, here, before any worker starts
    try:
        if demo:
            result = init_hierarchy(ctx, _config(settings), demo=True)
            if not result.already:
                output.console().print(f"Made the demo hierarchy: {', '.join(result.created)}")
    finally:
        ctx.close()
    _worker_environment(settings)
    _print_serving(settings, f"{'https' if tls_cert else 'http'}://{host}:{port}", workers)
    uvicorn.run(
        FACTORY,
        factory=True,
        host=host,
        port=port,
        log_level="info",
        workers=workers,
        ssl_certfile=str(tls_cert) if tls_cert else None,
        ssl_keyfile=str(tls_key) if tls_key else None,
        **uvicorn_options(),  # idle connections closed after 5 s (web/server.py)
    )


def _print_serving(settings: Settings, root: str, workers: int) -> None:
    output.console().print(
        f"ecert CA serving on {root}/  (data: {settings.data_dir.resolve()}, "
        f"database: {settings.effective_database_url.split('@')[-1]}, workers: {workers})\n"
        f"  CA certificates: {root}/repository/\n"
        f"  Subscriber portal: {root}/portal/  (register one with `ecert-ca application add --help`)\n"
        f"  ACME directory:  {root}/acme/directory\n"
        f"  API docs:        {root}/docs\n"
        f"  Certificates and CRLs name {settings.base_url} (set ECERT_BASE_URL to change it)\n"
        f"  Certificate Transparency: "
        + (
            f"on, logs from {settings.ct_log_list}"
            if settings.ct_enabled
            else "OFF: certificates carry no SCTs and Chrome and Safari will refuse them (set ECERT_CT_ENABLED and "
            "ECERT_CT_LOG_LIST)"
        )
    )


class _LoadedOnUse(TyperGroup):
    """A command group whose module is imported only when the group runs.

    ``ecert-ca --help`` lists it from the one-line help below, so listing the commands imports none of the
    services, the web stack or the validator behind them (start-up: issue 11).
    """

    def __init__(self, name: str, module: str, attr: str, help_text: str) -> None:
        super().__init__(name=name, help=help_text, short_help=help_text)
        self._where = (module, attr)

    def real(self) -> Any:
        module, attr = self._where
        sub = getattr(importlib.import_module(f"ecert.cli.{module}"), attr)
        sub._add_completion = False  # completion is the top command's option, not each group's
        # typer folds an app of one command into that command; keep the group unless the command is the group
        # itself (`ecert-ca doctor`), so `ecert-ca jobs run-once` stays where the README says it is.
        names = [c.name or (c.callback.__name__ if c.callback else None) for c in sub.registered_commands]
        folds = len(names) == 1 and not sub.registered_groups and names[0] in (None, self.name)
        command = typer.main.get_command(sub) if folds else typer.main.get_group(sub)
        command.name = self.name
        return command

    def make_context(self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any) -> Any:
        """Hand over to the real group: the caller invokes whatever command the context it returns names."""
        return self.real().make_context(info_name, args, parent=parent, **extra)


# The one-line help of each group in another module; a group missing here is imported at start-up instead.
_HELP: dict[str, str] = {
    "perspective": "Remote network perspectives for multi-perspective corroboration (BR 3.2.2.9).",
    "application": "Subscriber applications approved by the RA.",
    "dcv": "Operator-held domain validations (DNS method) that cover subscribers' names.",
    "audit": "The hash-chained audit log and its signed checkpoints.",
    "cert": "Subscriber certificates: issue directly, show, revoke.",
    "vetting": "Organisations the operator vetted outside an application (BR 3.2.2.1).",
    "crl": "CRLs and the ARL: publish now, write the current one to a file.",
    "ocsp": "The OCSP responder: pre-sign responses now, or serve them.",
    "jobs": "The status jobs the service runs every minute.",
    "ct": "Certificate Transparency: the configured logs and their last results.",
    "notices": "Expiry notices: sent 30, 14 and 3 days before a certificate expires.",
    "incident": "Incidents: replace and revoke a set of certificates within BR 4.9.1.1's 5 days.",
    "doctor": "Check this configuration before it goes live.",
}


def _command_line() -> TyperGroup:
    """The command group behind ``app``, with the other modules' groups attached to load on use."""
    group = typer.main.get_command(app)
    assert isinstance(group, TyperGroup)
    for module, attr, name in _EXTRA:
        if name in _HELP:
            group.add_command(_LoadedOnUse(name, module, attr, _HELP[name]), name)
        else:
            group.add_command(_LoadedOnUse(name, module, attr, "").real(), name)
    return group


_EXTRA: list[tuple[str, str, str]] = [
    ("perspective", "app", "perspective"),
    ("applications", "app", "application"),
    ("dcv", "app", "dcv"),
    ("audit", "app", "audit"),
]
_EXTRA += [("certs", "cert_app", "cert"), ("certs", "vetting_app", "vetting")]
_EXTRA += [("status", "crl_app", "crl"), ("status", "ocsp_app", "ocsp"), ("status", "jobs_app", "jobs")]
_EXTRA += [("ct", "app", "ct")]
_EXTRA += [("notices", "app", "notices"), ("incident", "app", "incident"), ("doctor", "app", "doctor")]
_EXTRA += [("acme", "app", "acme")]


def _settings_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    field = ".".join(str(p) for p in first.get("loc", ())) or "settings"
    return f"configuration: ECERT_{field.upper()}: {first.get('msg', 'invalid')}"


def _expected_failure(exc: Exception) -> str | None:
    """The one line for a configuration or database failure; None for a bug (it propagates).

    The exception classes are looked up only in libraries already imported: an exception cannot come from
    a library that was never loaded, and `--help` should not load pydantic or SQLAlchemy to find out.
    """
    pydantic, pydantic_settings, sa_exc = (
        sys.modules.get(m) for m in ("pydantic", "pydantic_settings", "sqlalchemy.exc")
    )
    if pydantic is not None and isinstance(exc, pydantic.ValidationError):
        return _settings_error(exc)
    if pydantic_settings is not None and isinstance(exc, pydantic_settings.SettingsError):
        return f"configuration: {str(exc).splitlines()[0]}"
    if sa_exc is not None and isinstance(exc, sa_exc.ArgumentError):  # NoSuchModuleError: unknown URL scheme
        return f"database URL is not usable: {str(exc).splitlines()[0]}"
    if sa_exc is not None and isinstance(exc, sa_exc.OperationalError):
        return f"database is not reachable: {str(exc.orig).splitlines()[0] if exc.orig else exc}"
    return None


def main(argv: list[str] | None = None) -> None:
    """Console entry point: every expected failure becomes one line on stderr and exit status 1."""
    try:
        _command_line()(args=argv, standalone_mode=True)
    except EcertError as exc:
        output.fail(str(exc))
    except Exception as exc:
        message = _expected_failure(exc)
        if message is None:
            raise
        output.fail(message)
