"""certbot itself (PyPI, in the venv) registers with ecert's ACME server on loopback through EAB.

This is the interoperability proof of the first ACME layer: certbot reads ecert's directory (EAB required,
profiles listed), takes a nonce and creates its account; without the binding it is refused as RFC 8555
7.3.4 says. Orders come with the next layer.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sqlalchemy import select

from ecert.store.models_acme import AcmeAccount
from tests.integration.acme_fixtures import AcmeServer, new_eab

CERTBOT = str(Path(sys.executable).parent / "certbot")


def _certbot(tmp_path: Path, server: AcmeServer, *args: str) -> subprocess.CompletedProcess[str]:
    dirs = [
        "--config-dir",
        str(tmp_path / "etc"),
        "--work-dir",
        str(tmp_path / "work"),
        "--logs-dir",
        str(tmp_path / "logs"),
    ]
    return subprocess.run(
        [
            CERTBOT,
            "register",
            "--non-interactive",
            "--agree-tos",
            "--no-eff-email",
            "--server",
            server.directory_url,
            *dirs,
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def test_certbot_registers_with_eab(tmp_path: Path, sqlite_acme_server: AcmeServer) -> None:
    made = new_eab(sqlite_acme_server.ctx)
    done = _certbot(
        tmp_path, sqlite_acme_server, "-m", "admin@example.com", "--eab-kid", made.kid, "--eab-hmac-key", made.hmac_key
    )
    assert done.returncode == 0, done.stdout + done.stderr
    with sqlite_acme_server.ctx.read() as session:
        account = session.scalars(select(AcmeAccount)).one()
    assert account.status == "valid" and account.contact == ["mailto:admin@example.com"]
    # certbot kept the account under the server's directory name, with the URL ecert gave it.
    regr = list((tmp_path / "etc" / "accounts").rglob("regr.json"))
    assert len(regr) == 1 and f"/acme/acct/{account.id}" in regr[0].read_text()


def test_certbot_without_eab_is_told_eab_is_required(tmp_path: Path, sqlite_acme_server: AcmeServer) -> None:
    # certbot reads meta.externalAccountRequired from the directory and stops before it posts anything.
    done = _certbot(tmp_path, sqlite_acme_server, "--register-unsafely-without-email")
    assert done.returncode != 0
    assert "external account" in (done.stdout + done.stderr).lower(), done.stdout + done.stderr
    with sqlite_acme_server.ctx.read() as session:
        assert session.scalars(select(AcmeAccount)).all() == []
