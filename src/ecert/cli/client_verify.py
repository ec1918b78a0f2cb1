"""``ecert verify`` and ``ecert check``: judge a certificate (stored or in a file) and the chain a live server
serves, with Certificate Transparency when given a log list.

One job: verdicts (exit code 4 when verification fails); nothing is written. cryptography and the client
modules are imported inside the commands; the commands are named and registered in ``subscriber.py``'s
command table.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ecert.cli import client_shared
from ecert.cli.client_shared import STATE, console, emit_json, fail, handle, new_table, san_dns_names
from ecert.core.errors import NotFound

if TYPE_CHECKING:
    from cryptography import x509


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
        fail("Certificate Transparency is required and the certificate does not meet both policies", 4)


# -- verify --------------------------------------------------------------------------------------
@handle
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
        now=client_shared.now(),
    )
    subjects = [c.subject.rfc4514_string() for c in result.chain]
    ct = transparency_of(result, ct_logs, now=client_shared.now())
    if STATE.json:
        emit_json(
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
    con = console()
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

    names = san_dns_names(leaf)
    cns = leaf.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    host = str(cns[0].value) if cns else (names[0] if names else "")
    return host[2:] if host.startswith("*.") else host


# -- check ---------------------------------------------------------------------------------------
@handle
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
    r = check_server(
        url, STATE.store, now=client_shared.now(), server_name=servername, timeout=timeout, ct_logs=ct_logs
    )
    if STATE.json:
        emit_json(
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
        con = console()
        table = new_table(f"{r.host}:{r.port}", ("Check", "Result"))
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
