"""`ecert-ca doctor`: check a configuration before it goes live; exit 1 if anything needs doing."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from . import output
from .ca import _settings, _with_kept_acme_secret

__all__ = ["app"]

app = typer.Typer(help="Check this configuration before it goes live.", invoke_without_command=True)


@app.callback()
def doctor(
    signed_name: Annotated[
        str, typer.Option(help="A DNSSEC-signed name the resolvers must authenticate (AD flag); default the root zone.")
    ] = ".",
    expect_ocsp: Annotated[
        str | None,
        typer.Option(help="on or off: whether certificates must carry an OCSP URL (it cannot be added later)."),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Resolvers, base URL, keys, schema, CRLs/ARL/OCSP, perspectives: one line each, ok or what to do."""
    from ..services.context import build_context
    from ..services.doctor import run_checks

    if expect_ocsp not in (None, "on", "off"):
        output.fail("--expect-ocsp takes on or off", code=2)
    # No migration here: the doctor reports a schema behind the code instead of changing it.
    settings = _settings()
    env = _with_kept_acme_secret(settings, create=False)  # what serve's workers would be given
    ctx = build_context(settings, env, migrate=False)
    try:
        checks = run_checks(
            ctx,
            signed_name=signed_name,
            expect_ocsp=None if expect_ocsp is None else expect_ocsp == "on",
            acme_secret_kept=not os.environ.get(settings.acme_eab_secret_env) and bool(ctx.acme_secret),
        )
    finally:
        ctx.close()
    if json_out:
        output.emit_json("doctor", [c.__dict__ for c in checks])
    else:
        for c in checks:
            line = f"{'ok     ' if c.ok else 'problem'}  {c.name}: {c.detail}" + ("" if c.ok else f" -> {c.fix}")
            output.console().print(line, markup=False)
    if not all(c.ok for c in checks):
        raise SystemExit(1)
