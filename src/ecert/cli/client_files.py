"""``ecert export``, ``ecert import`` and ``ecert deploy``: a stored certificate and its key into files and
back: a PFX backup (guide sections F and G) and the files each kind of server takes.

One job: files out of and into the store; ``deploy`` also remembers what it wrote, for ``ecert renew``.
cryptography and the client modules are imported inside the commands; the commands are named and registered
in ``subscriber.py``'s command table.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from ecert.cli import client_shared
from ecert.cli.client_shared import (
    STATE,
    AllowIncompleteOpt,
    console,
    emit_json,
    existing_secret,
    handle,
    load_entry_key,
    new_secret,
    san_dns_names,
    warn,
)
from ecert.client.choices import DeployFormat
from ecert.client.errors import ClientError


# -- export / import -----------------------------------------------------------------------------
@handle
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
    plan = plan_for_live(STATE.store, entry, now=client_shared.now())
    if not plan.complete:
        if not allow_incomplete_chain:
            raise plan.refusal(entry.name)
        warn(f"{plan.gap(entry.name)}; the backup holds only the chain found")
    key = load_entry_key(entry, passphrase_file)
    password = new_secret(password_file, "PFX password", "--password-file")
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
    console().print(f"Wrote {pfx} ({kind})", markup=False)


@handle
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
    restored = import_pfx(data, existing_secret(password_file, "PFX password", "--password-file"))
    cns = restored.cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    entry_name = safe_name(name or restored.friendly_name or (str(cns[0].value) if cns else "imported"))
    if (store.live_dir / entry_name).exists() and not force:
        raise ClientError(f"a certificate named {entry_name!r} is already in the store; use --force or --name")
    passphrase = None if no_encrypt else new_secret(passphrase_file, "New key passphrase")
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
        build_chain(
            restored.cert, [*restored.chain, *store.intermediates(), *store.roots()], now=client_shared.now()
        ).intermediates
    )
    san_names = san_dns_names(restored.cert)
    meta = {
        "friendly_name": restored.friendly_name or entry_name,
        "names": san_names,
        "key_encrypted": passphrase is not None,
        "imported": client_shared.now().isoformat(),
        "source": str(file),
    }
    entry = store.write_live(entry_name, cert=restored.cert, chain=chain, key_pem=key_pem, meta=meta, force=force)
    names = ", ".join(san_names) or "no DNS names in the certificate"
    console().print(f"Imported {entry.name} (version {entry.version}): {names}", markup=False)


# -- deploy --------------------------------------------------------------------------------------
@handle
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
    key = load_entry_key(entry, passphrase_file)
    password = (
        new_secret(password_file, "Keystore password", "--password-file")
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
        now=client_shared.now(),
    )
    if result.warning:
        warn(result.warning)
    _remember_deploy(entry, fmt, out, cross, legacy, password_file, allow_incomplete_chain)
    if STATE.json:
        emit_json(
            {
                "files": [str(p) for p in result.files],
                "via_cross": result.via_cross,
                "chain": list(result.chain_subjects),
                "chain_complete": result.chain_complete,
            }
        )
        return
    con = console()
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
