"""Writing the files each server takes: nginx, Apache, HAProxy, plain PEM, PFX and a Java keystore.

Each format is a small table of file name → bytes and mode; everything is written atomically, key-bearing
files 0600, and nothing is replaced without ``force``. The chain choice (through the cross-certificate or
not) is decided once and reported.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from ecert.client.chain import build_chain
from ecert.client.choices import DeployFormat
from ecert.client.errors import ClientError
from ecert.client.pkcs12 import export_pfx
from ecert.client.store import FILE_MODE, KEY_MODE, LiveEntry, atomic_write
from ecert.core.errors import Conflict, StorageFailure

__all__ = ["DeployFormat", "Deployed", "deploy", "plan_files"]


@dataclass(frozen=True)
class Deployed:
    """What was written, the chain choice and a configuration snippet for the server."""

    files: tuple[Path, ...]
    via_cross: bool
    chain_subjects: tuple[str, ...]
    snippet: str
    chain_complete: bool = True
    warning: str | None = None


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: PrivateKeyTypes) -> bytes:
    # Unencrypted because the server must start unattended; protected by 0600 instead.
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _cn(cert: x509.Certificate) -> str:
    cns = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return str(cns[0].value) if cns else cert.subject.rfc4514_string()


def plan_files(
    fmt: DeployFormat,
    entry: LiveEntry,
    key: PrivateKeyTypes,
    chain: list[x509.Certificate],
    out: Path,
    *,
    password: bytes | None = None,
    legacy: bool = False,
) -> tuple[dict[str, tuple[bytes, int]], str]:
    """The files (name → bytes, mode) and the config snippet for one format; JKS is built separately."""
    cert_pem = _pem(entry.cert)
    chain_pem = b"".join(_pem(c) for c in chain)
    key_pem = _key_pem(key)
    name = entry.name
    if fmt is DeployFormat.NGINX:
        files = {"fullchain.pem": (cert_pem + chain_pem, FILE_MODE), "privkey.pem": (key_pem, KEY_MODE)}
        snippet = f"ssl_certificate     {out / 'fullchain.pem'};\nssl_certificate_key {out / 'privkey.pem'};\n"
    elif fmt is DeployFormat.APACHE:
        files = {
            "cert.pem": (cert_pem, FILE_MODE),
            "chain.pem": (chain_pem, FILE_MODE),
            "fullchain.pem": (cert_pem + chain_pem, FILE_MODE),
            "privkey.pem": (key_pem, KEY_MODE),
        }
        snippet = (
            "# Apache 2.4.8 and later read the chain from SSLCertificateFile\n"
            f"SSLCertificateFile    {out / 'fullchain.pem'}\n"
            f"SSLCertificateKeyFile {out / 'privkey.pem'}\n"
            f"# before 2.4.8 use cert.pem and: SSLCertificateChainFile {out / 'chain.pem'}\n"
        )
    elif fmt is DeployFormat.HAPROXY:
        files = {f"{name}.pem": (cert_pem + chain_pem + key_pem, KEY_MODE)}
        if chain:
            files[f"{name}.pem.issuer"] = (_pem(chain[0]), FILE_MODE)  # for HAProxy's OCSP stapling
        snippet = f"bind :443 ssl crt {out / (name + '.pem')}\n"
    elif fmt is DeployFormat.PEM:
        files = {
            "cert.pem": (cert_pem, FILE_MODE),
            "chain.pem": (chain_pem, FILE_MODE),
            "fullchain.pem": (cert_pem + chain_pem, FILE_MODE),
            "privkey.pem": (key_pem, KEY_MODE),
        }
        snippet = ""
    elif fmt is DeployFormat.PFX:
        if not password:
            raise ClientError("a PFX needs a password")
        data = export_pfx(key, entry.cert, chain, password, friendly_name=name, legacy=legacy)
        files = {f"{name}.pfx": (data, KEY_MODE)}
        snippet = "Import on Windows: certutil -importPFX, or the Certificates MMC snap-in (guide section G)\n"
    else:
        raise ClientError(f"format {fmt.value} is not a file table")
    return files, snippet


def _keytool_jks(pfx: bytes, password: bytes, alias: str) -> bytes:
    """Convert a PKCS#12 to JKS with Java's keytool (pyjks is unmaintained; keytool is the reference)."""
    keytool = shutil.which("keytool")
    if keytool is None:
        raise ClientError("keytool (Java 17+) is needed for --format jks; install openjdk-17-jre-headless")
    with tempfile.TemporaryDirectory(prefix="ecert-jks-") as tmp:
        src, dst = Path(tmp) / "in.p12", Path(tmp) / "out.jks"
        src.write_bytes(pfx)
        src.chmod(KEY_MODE)
        pw = password.decode()
        result = subprocess.run(  # noqa: S603 - fixed argv, no shell
            [
                keytool,
                "-importkeystore",
                "-noprompt",
                "-srckeystore",
                str(src),
                "-srcstoretype",
                "PKCS12",
                "-srcstorepass:env",
                "ECERT_JKS_PW",
                "-destkeystore",
                str(dst),
                "-deststoretype",
                "JKS",
                "-deststorepass:env",
                "ECERT_JKS_PW",
                "-destkeypass:env",
                "ECERT_JKS_PW",
                "-srcalias",
                alias,
                "-destalias",
                alias,
            ],
            capture_output=True,
            timeout=60,
            env={"ECERT_JKS_PW": pw, "PATH": "/usr/bin:/bin"},
        )
        if result.returncode != 0:
            raise ClientError(f"keytool failed: {result.stdout.decode(errors='replace').strip()[-300:]}")
        return dst.read_bytes()


def deploy(
    fmt: DeployFormat,
    entry: LiveEntry,
    key: PrivateKeyTypes,
    out: Path,
    *,
    pool: list[x509.Certificate],
    via_cross: bool | None = None,
    password: bytes | None = None,
    legacy: bool = False,
    force: bool = False,
    allow_incomplete: bool = False,
    now: datetime | None = None,
) -> Deployed:
    """Write the files for ``fmt`` into ``out``.

    The chain is built here from ``pool`` (the store's installed CAs) and what completion kept, not
    taken as completion left it, so a sub-CA or cross-certificate installed afterwards is used. A chain
    that stops short of a root is refused unless ``allow_incomplete``: clients without the missing CA
    would reject the server (RFC 5246 7.4.2, RFC 8446 4.4.2). ``via_cross`` None means "append the
    cross-certificate when a real one is installed": it costs one certificate and lets clients that
    trust only the older root connect.
    """
    out = Path(os.path.abspath(out))  # the snippet goes into a server's config: nginx resolves relative paths
    plan = build_chain(entry.cert, [*entry.chain, *pool], now=now)  # against its prefix, not our working dir
    warning = None
    if not plan.complete:
        if not allow_incomplete:
            raise plan.refusal(entry.name)
        warning = f"{plan.gap(entry.name)}; clients that lack it will reject the server"
    use_cross = (plan.cross is not None) if via_cross is None else via_cross
    if use_cross and plan.cross is None:
        raise ClientError("no cross-certificate is installed for this chain; install it with 'ecert ca install'")
    chain = plan.served(with_cross=use_cross)
    if fmt is DeployFormat.JKS:
        if not password:
            raise ClientError("a Java keystore needs a password")
        pfx = export_pfx(key, entry.cert, chain, password, friendly_name=entry.name)
        files = {f"{entry.name}.jks": (_keytool_jks(pfx, password, entry.name), KEY_MODE)}
        snippet = f"server.ssl.key-store={out / (entry.name + '.jks')}\nserver.ssl.key-store-type=JKS\n"
    else:
        files, snippet = plan_files(fmt, entry, key, chain, out, password=password, legacy=legacy)
    try:
        out.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageFailure(f"cannot create {out}: {exc.strerror or exc}", value=str(out)) from exc
    clashes = [n for n in files if (out / n).exists()]
    if clashes and not force:
        raise Conflict(f"{', '.join(clashes)} already exist in {out}; use --force to replace them", value=str(out))
    written = []
    for fname, (data, mode) in files.items():
        atomic_write(out / fname, data, mode=mode, force=True)
        written.append(out / fname)
    return Deployed(tuple(written), use_cross, tuple(_cn(c) for c in chain), snippet, plan.complete, warning)
