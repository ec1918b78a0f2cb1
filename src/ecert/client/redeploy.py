"""What ``ecert deploy`` wrote, remembered in the lineage's metadata so a renewal can write it again.

A record is the format, the output directory and the choices that shaped the files (cross-certificate,
legacy PFX, where the PFX/JKS password is read from). Records travel from version to version in
``meta.json``; one record per (format, directory), the latest deploy winning.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from ecert.client.choices import DeployFormat
from ecert.client.deploy import deploy
from ecert.client.errors import ClientError
from ecert.client.store import LiveEntry, LocalStore
from ecert.core.errors import EcertError

__all__ = ["DeployRecord", "Redeployed", "deploy_records", "record_deploy", "redeploy", "run_deploy_hook"]

META_KEY = "deploys"
HOOK_TIMEOUT = 300


@dataclass(frozen=True)
class DeployRecord:
    """One ``ecert deploy`` as it was run: enough to run it again unattended (no password is kept, only its file)."""

    format: DeployFormat
    out: Path
    cross: bool | None = None
    legacy: bool = False
    password_file: Path | None = None
    allow_incomplete: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "format": self.format.value,
            "out": str(self.out),
            "cross": self.cross,
            "legacy": self.legacy,
            "password_file": str(self.password_file) if self.password_file else None,
            "allow_incomplete": self.allow_incomplete,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DeployRecord:
        pw = data.get("password_file")
        return cls(
            format=DeployFormat(str(data["format"])),
            out=Path(str(data["out"])),
            cross=data.get("cross"),
            legacy=bool(data.get("legacy", False)),
            password_file=Path(str(pw)) if pw else None,
            allow_incomplete=bool(data.get("allow_incomplete", False)),
        )


@dataclass(frozen=True)
class Redeployed:
    """The files one record wrote again, or why it could not."""

    record: DeployRecord
    files: tuple[Path, ...] = ()
    error: str | None = None


def deploy_records(meta: Mapping[str, Any]) -> list[DeployRecord]:
    """The deploys a version's metadata remembers (a store from before records has none)."""
    return [DeployRecord.from_json(r) for r in meta.get(META_KEY, []) if isinstance(r, Mapping)]


def record_deploy(store: LocalStore, entry: LiveEntry, record: DeployRecord) -> None:
    """Remember ``record`` in the current version's metadata; the same (format, directory) is replaced.

    The store rewrites only the chain files and ``meta.json`` of this version here, with the chain they
    already hold: not a new version.
    """
    kept = [r for r in deploy_records(entry.meta) if (r.format, r.out) != (record.format, record.out)]
    records = [*(r.to_json() for r in kept), record.to_json()]
    store.update_live_chain(entry.name, list(entry.chain), meta_updates={META_KEY: records})


def redeploy(store: LocalStore, entry: LiveEntry, key: PrivateKeyTypes, *, now: datetime) -> list[Redeployed]:
    """Write every remembered deploy again for ``entry`` (a renewal's new version), replacing the old files.

    One failed record (a password file gone, a directory no longer writable) does not stop the others; the
    caller reports each.
    """
    out = []
    for record in deploy_records(entry.meta):
        try:
            out.append(Redeployed(record, _one(store, entry, key, record, now)))
        except (EcertError, OSError) as exc:
            out.append(Redeployed(record, error=str(exc)))
    return out


def run_deploy_hook(command: str, entry: LiveEntry, *, timeout: float = HOOK_TIMEOUT) -> str | None:
    """Run the admin's command after a renewal (``systemctl reload nginx``); None when it succeeded, else why not.

    No shell: the command is split as a shell would split it and run with the lineage in the environment
    (``ECERT_RENEWED_NAME``, ``ECERT_RENEWED_LINEAGE``: the ``live/NAME`` directory), as certbot's
    ``--deploy-hook`` gets ``RENEWED_LINEAGE``.
    """
    argv = shlex.split(command)
    if not argv:
        return "the deploy hook is empty"
    env = {**os.environ, "ECERT_RENEWED_NAME": entry.name, "ECERT_RENEWED_LINEAGE": str(entry.path)}
    try:
        result = subprocess.run(argv, env=env, capture_output=True, timeout=timeout)  # noqa: S603 - argv, no shell
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"the deploy hook could not run: {exc}"
    if result.returncode != 0:
        tail = result.stderr.decode(errors="replace").strip()[-200:]
        return f"the deploy hook exited with {result.returncode}: {tail}"
    return None


def _one(
    store: LocalStore, entry: LiveEntry, key: PrivateKeyTypes, record: DeployRecord, now: datetime
) -> tuple[Path, ...]:
    password = None
    if record.format in (DeployFormat.PFX, DeployFormat.JKS):
        if record.password_file is None:
            raise ClientError(f"{record.format.value} in {record.out} needs its password file, and none was recorded")
        password = record.password_file.read_bytes().rstrip(b"\r\n")
    done = deploy(
        record.format,
        entry,
        key,
        record.out,
        pool=[*store.intermediates(), *store.roots()],
        via_cross=record.cross,
        password=password,
        legacy=record.legacy,
        force=True,
        allow_incomplete=record.allow_incomplete,
        now=now,
    )
    return done.files
