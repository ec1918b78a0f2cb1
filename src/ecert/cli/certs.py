"""`ecert-ca cert` and `ecert-ca vetting`: direct issuance through the registration authority, lookup, revocation.

Parse, call one service, print: every policy decision is the registration authority's.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from . import output
from .ca import JsonOpt, _context, _write

__all__ = ["cert_app", "vetting_app"]

cert_app = typer.Typer(help="Subscriber certificates: issue directly, show, revoke.", no_args_is_help=True)
vetting_app = typer.Typer(
    help="Organisations the operator vetted outside an application (BR 3.2.2.1).", no_args_is_help=True
)


@cert_app.command("issue")
def cert_issue(
    csr: Annotated[Path, typer.Option(help="The subscriber's CSR (PEM or DER).")],
    profile: Annotated[str, typer.Option(help="server, wildcard, multi, ev or ev_multi")],
    name: Annotated[list[str], typer.Option(help="A server name (repeat; first is the CN).")],
    vetting: Annotated[
        int | None, typer.Option(help="The organisation vetting to issue to (`ecert-ca vetting add`).")
    ] = None,
    application: Annotated[
        str | None, typer.Option(help="Or the application (reference number) whose vetted organisation it is.")
    ] = None,
    days: Annotated[int | None, typer.Option(help="Validity in days (default: one under the BR cap).")] = None,
    out: Annotated[Path | None, typer.Option(help="Write the certificate here (PEM).")] = None,
    high_risk_reviewed: Annotated[
        bool, typer.Option("--high-risk-reviewed", help="A person reviewed names flagged as high risk (BR 4.2.1).")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Issue directly, through the same registration authority and pipeline as the portal.

    Every name needs domain validation evidence inside its reuse period (an operator-held validation from
    `ecert-ca dcv`, or the application's DCV), and the organisation a current vetting; CAA is looked up now.
    """
    from ..services.certificates import issue_direct

    try:
        data = csr.read_bytes()
    except OSError as exc:
        output.fail(f"cannot read {csr}: {exc.strerror}")
    with _context() as ctx:
        issued = issue_direct(
            ctx,
            csr=data,
            profile=profile,
            names=tuple(name),
            vetting_id=vetting,
            reference_number=application,
            days=days,
            high_risk_reviewed=high_risk_reviewed,
            actor="operator:cli",
        )
    if out:
        _write(out, issued.pem.encode())
    summary = {
        "serial": issued.serial_hex,
        "names": list(issued.names),
        "not_before": issued.not_before,
        "not_after": issued.not_after,
        "profile": issued.profile,
        "ignored_from_csr": list(issued.ignored),
        "evidence": issued.evidence_summary,
    }
    output.emit_json("certificate", summary) if json_out else output.fields("Issued", summary)


@cert_app.command("show")
def cert_show(serial: str, pem: Annotated[bool, typer.Option("--pem")] = False, json_out: JsonOpt = False) -> None:
    """One issued certificate by serial number (hex, spaces and colons allowed), with the evidence it relied on."""
    from ..services.certificates import certificate_details
    from ..services.transparency import certificate_scts

    with _context() as ctx:
        found = certificate_details(ctx, serial)
        scts = certificate_scts(ctx, found.serial_hex)
        ct_off = "none (Certificate Transparency is off)" if ctx.ct is None else "none (issued with CT off)"
    if pem:
        if found.pem is None:
            output.fail(f"certificate {found.serial_hex} was never signed (status {found.status})")
        sys.stdout.write(found.pem)
        return
    data = {
        "serial": found.serial_hex,
        "issuer": found.issuer,
        "status": found.status,
        "names": list(found.names),
        "profile": found.profile,
        "not_before": found.not_before,
        "not_after": found.not_after,
        "spki_sha256": found.spki_sha256,
        "revoked_at": found.revoked_at,
        "revocation_reason": found.revocation_reason,
        "channel": found.channel,
        "evidence": found.evidence,
        "scts": [{"log": s.log_name, "operator": s.operator, "time": s.time} for s in scts],
    }
    if not json_out:  # each embedded SCT (RFC 6962 3.3) as "log (operator) time"
        data["scts"] = "; ".join(f"{s.log_name} ({s.operator}) {s.time:%Y-%m-%d %H:%M:%S} UTC" for s in scts) or ct_off
    output.emit_json("certificate", data) if json_out else output.fields(f"Certificate {found.serial_hex}", data)


@cert_app.command("revoke")
def cert_revoke(
    serial: str,
    reason: Annotated[
        str | None,
        typer.Option(
            help="keyCompromise, superseded, cessationOfOperation, "
            "affiliationChanged, privilegeWithdrawn; omit for none"
        ),
    ] = None,
    ca: Annotated[str | None, typer.Option(help="The issuing CA, if the serial is ambiguous.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Revoke a certificate (BR 4.9.1.1); its CRL and OCSP answers change at once."""
    from ..services.revocation import revoke_certificate

    with _context() as ctx:
        result = revoke_certificate(ctx, ca_label=ca, serial_hex=serial, reason=reason, actor="operator:cli")
    data = {
        "revoked": [{"ca": c, "serial": s} for c, s in result.revoked],
        "revoked_at": result.revoked_at,
        "reason": result.reason,
        "key_blocked": result.blocked_spki,
        "published": result.published,
    }
    if json_out:
        output.emit_json("revocation", data)
    else:
        output.console().print(
            f"Revoked {', '.join(s for _c, s in result.revoked)} "
            f"({result.reason or 'no reason stated'})" + ("; the key is blocked" if result.blocked_spki else "")
        )


@vetting_app.command("add")
def vetting_add(
    org: Annotated[str, typer.Option(help="The organisation's name as verified.")],
    source: Annotated[
        str, typer.Option(help="What the vetting relied on: registry extract, document number, reviewer.")
    ],
    country: str = "HK",
    state: str = "Hong Kong",
    locality: str = "Hong Kong",
    business_category: str | None = None,
    jurisdiction_country: str | None = None,
    registration_number: str | None = None,
    json_out: JsonOpt = False,
) -> None:
    """Record an organisation the operator vetted (BR 3.2.2.1); direct issuance names it with --vetting."""
    from ..core.profiles import SubjectData
    from ..services.registration import record_vetting

    subject = SubjectData(
        organization=org,
        country=country,
        state=state or None,
        locality=locality or None,
        business_category=business_category,
        jurisdiction_country=jurisdiction_country,
        serial_number=registration_number,
    )
    with _context() as ctx:
        vetting_id = record_vetting(ctx, subject, source=source, actor="operator:cli")
    if json_out:
        output.emit_json("vetting", {"id": vetting_id, "organization": org})
    else:
        output.console().print(f"Recorded vetting {vetting_id} for {org}; issue with --vetting {vetting_id}")


@vetting_app.command("list")
def vetting_list(json_out: JsonOpt = False) -> None:
    """The organisation vettings on record, with when they were done."""
    from ..services.registration import list_vettings

    with _context() as ctx:
        rows = list_vettings(ctx)
    if json_out:
        output.emit_json("vettings", [r.__dict__ for r in rows])
        return
    for r in rows:
        output.console().print(
            f"{r.id}  {r.organization}  ({r.country})  vetted {r.vetted_at:%Y-%m-%d} by {r.vetted_by}: {r.source}"
        )
