"""``ecert ca install / fetch / remove / list`` and ``ecert crl import``: the CA certificates and revocation
lists the store verifies with (guide section D).

One job: what the store trusts. cryptography, httpx and the client modules are imported inside the commands;
the commands are named and registered in ``subscriber.py``'s command table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ecert.cli import client_shared
from ecert.cli.client_shared import STATE, console, deps_of, emit_json, handle, new_table
from ecert.client.errors import ClientError


# -- CA certificates and CRLs --------------------------------------------------------------------
@handle
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
    refreshed = refresh_live_chains(store, now=client_shared.now())  # certificates completed before this CA was here
    if STATE.json:
        emit_json(
            {"installed": [{"name": e.name, "root": e.anchor} for e in entries], "chains_updated": list(refreshed)}
        )
        return
    for e in entries:
        console().print(f"Installed {'root (trusted)' if e.anchor else 'intermediate'} {e.name}", markup=False)
    for name in refreshed:
        console().print(f"Updated the chain of {name} (live/{name}/chain.pem, fullchain.pem)", markup=False)


@handle
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

    with RepositoryClient(transport=deps_of(ctx).transport) as client:
        fetched = client.fetch(url)
    if not STATE.json:
        _show_fetched(fetched)
    if root_sha256:
        check_pins(fetched, root_sha256)
    elif not yes:
        _confirm_roots(fetched)
    done = install(STATE.store, fetched)
    refreshed = refresh_live_chains(STATE.store, now=client_shared.now())
    if STATE.json:
        emit_json(
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
    con = console()
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
    con = console()
    con.print(f"Fetched from {fetched.index_url}; compare each SHA-256 with the CA's published one:", markup=False)
    for item in fetched.items:  # one line each: a fingerprint wrapped by a table is hard to compare
        what = labels.get(item.role, item.role) if item.kind == "certificate" else item.kind.upper()
        con.print(f"  {what}: {item.name}\n    SHA-256 {item.fingerprint}", markup=False)


def _confirm_roots(fetched: Any) -> None:
    """Ask before trusting a root fetched over the network; refuse cleanly where nobody can answer."""
    if not client_shared.stdin_is_terminal():
        raise ClientError(
            "a root fetched over the network is trusted only on purpose: compare its SHA-256 above with the CA's "
            "published one and pass it with --root-sha256 (or --yes)"
        )
    names = ", ".join(r.name for r in fetched.roots)
    if not typer.confirm(f"Trust {names} as a root, with the SHA-256 shown above?", default=False):
        raise ClientError("nothing was installed")


@handle
def ca_remove(name: Annotated[str, typer.Argument(help="Store name (see 'ecert ca list') or CN.")]) -> None:
    """Remove an installed CA certificate, e.g. the old sub-CA (guide section D)."""
    e = STATE.store.remove_ca(name)
    console().print(f"Removed {e.name}", markup=False)


@handle
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
        emit_json({"cas": rows})
        return
    table = new_table("Installed CA certificates", ("Name", "Kind", "Issuer", "Expires"))
    for r in rows:
        table.add_row(r["name"], "root" if r["root"] else "intermediate", r["issuer"], r["not_after"][:10])
    console().print(table)


@handle
def crl_import(file: Annotated[Path, typer.Argument(help="A CRL or ARL, PEM or DER.")]) -> None:
    """Import a CRL or the ARL so that 'verify' can check revocation."""
    from cryptography import x509

    data = file.read_bytes()
    try:
        crl = x509.load_pem_x509_crl(data) if data.lstrip().startswith(b"-----") else x509.load_der_x509_crl(data)
    except ValueError as exc:
        raise ClientError(f"{file} is not a readable CRL (PEM or DER); it may be truncated") from exc
    e = STATE.store.import_crl(crl)
    console().print(f"Imported CRL {e.name} ({len(list(crl))} revoked entries)", markup=False)
