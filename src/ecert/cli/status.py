"""`ecert-ca crl`, `ecert-ca ocsp` and `ecert-ca jobs`: publish certificate status by hand or run one job pass."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from . import output
from .ca import JsonOpt, _context

__all__ = ["crl_app", "ocsp_app", "jobs_app"]

crl_app = typer.Typer(help="CRLs and the ARL: publish now, write the current one to a file.", no_args_is_help=True)
ocsp_app = typer.Typer(help="The OCSP responder: pre-sign responses now, or serve them.", no_args_is_help=True)
jobs_app = typer.Typer(help="The status jobs the service runs every minute.", no_args_is_help=True)


@crl_app.command("publish")
def crl_publish(
    label: Annotated[str | None, typer.Argument(help="An issuing CA; default: every one and the ARL.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Sign a new CRL now (BR 4.9.7) for LABEL, or for every issuing CA plus the root's ARL."""
    from ..services import publication

    with _context() as ctx:
        labels = [label] if label else publication.issuing_cas(ctx)
        done = []
        for name in labels:
            row = publication.publish_crl(ctx, name)
            assert row is not None
            done.append({"ca": name, "number": row.number, "next_update": row.next_update, "arl": False})
        if not label:
            arl = publication.publish_arl(ctx)
            assert arl is not None
            done.append({"ca": "root", "number": arl.number, "next_update": arl.next_update, "arl": True})
        if json_out:
            output.emit_json("crl-publish", done)
        else:
            for d in done:
                output.console().print(
                    f"{'ARL' if d['arl'] else 'CRL'} {d['ca']} #{d['number']}, next update "
                    f"{d['next_update']:%d/%m/%Y %H:%M} UTC"
                )


@crl_app.command("get")
def crl_get(
    label: str,
    arl: Annotated[bool, typer.Option("--arl", help="The root's ARL.")] = False,
    out: Annotated[Path | None, typer.Option(help="Write the DER here instead of stdout.")] = None,
) -> None:
    """The current CRL (DER) of LABEL, as the web serves it."""
    from ..services import publication

    with _context() as ctx:
        row = publication.current_crl(ctx, label, arl=arl)
        if out:
            out.write_bytes(row.der)
        else:
            sys.stdout.buffer.write(row.der)


@ocsp_app.command("refresh")
def ocsp_refresh(
    label: Annotated[str | None, typer.Argument(help="An issuing CA; default: every one.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Re-sign every response.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Pre-sign the OCSP responses that are due (or all, with --force)."""
    from ..services import publication

    with _context() as ctx:
        counts = {
            name: publication.refresh_ocsp(ctx, name, force=force)
            for name in ([label] if label else publication.issuing_cas(ctx))
        }
        if json_out:
            output.emit_json("ocsp-refresh", counts)
        else:
            for name, count in counts.items():
                output.console().print(f"{name}: {count} responses signed")


@ocsp_app.command("serve")
def ocsp_serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port to listen on.")] = 8080,
    refresh_seconds: Annotated[
        float,
        typer.Option(
            "--refresh-seconds",
            min=0.1,
            help="Backstop poll; revocations arrive at once (NOTIFY) or within 1 s (SQLite).",
        ),
    ] = 30.0,
    idle_timeout: Annotated[
        float, typer.Option("--idle-timeout", min=0.1, help="Close connections idle this many seconds.")
    ] = 5.0,
) -> None:
    """Run the dedicated OCSP responder (RFC 6960 A.1, RFC 5019): pre-signed answers from memory, GET and POST."""
    from ..web import ocsp_server

    with _context() as ctx:
        ocsp_server.serve(
            ctx,
            host=host,
            port=port,
            refresh_seconds=refresh_seconds,
            idle_timeout=idle_timeout,
            ready=lambda bound: output.console().print(f"OCSP responder listening on http://{host}:{bound}/ocsp"),
        )


@jobs_app.command("run-once")
def jobs_run_once(json_out: JsonOpt = False) -> None:
    """One pass of the status jobs: scheduled CA revocations, CRLs, ARL, responders, OCSP. Exit 1 on errors."""
    from ..services import jobs

    with _context() as ctx:
        report = jobs.run_once(ctx)
        data = {
            "ca_revocations": list(report.ca_revocations),
            "crls": list(report.crls),
            "arl": report.arl,
            "ocsp_signed": report.ocsp_signed,
            "errors": list(report.errors),
        }
        if json_out:
            output.emit_json("jobs-run", data)
        else:
            output.console().print(
                f"CA revocations applied: {', '.join(report.ca_revocations) or 'none'}; CRLs: "
                f"{', '.join(report.crls) or 'none due'}; ARL: {'published' if report.arl else 'not due'}; OCSP "
                f"signed: {sum(report.ocsp_signed.values())}"
            )
            for err in report.errors:
                output.err_console().print(f"error: {err}")
        if report.errors:
            raise SystemExit(1)
