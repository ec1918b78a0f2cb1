"""The operator sees whether Certificate Transparency is on: at `ecert-ca serve` and in `ecert-ca ct logs`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ecert.cli import ca as ca_cli
from ecert.cli.ct import app as ct_app


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"ECERT_DATA_DIR": str(tmp_path / "data"), "ECERT_KEY_PASSPHRASE": "ct-cli-test", "COLUMNS": "200", **extra}


def test_serve_says_that_ct_is_off_in_the_demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: None)  # start-up message only, no server
    result = CliRunner().invoke(ca_cli.app, ["serve", "--demo", "--port", "8999"], env=_env(tmp_path))
    assert result.exit_code == 0, result.output
    assert "Certificate Transparency: OFF" in result.output


def test_ct_logs_without_a_log_list_says_ct_is_off(tmp_path: Path) -> None:
    result = CliRunner().invoke(ct_app, ["logs"], env=_env(tmp_path))
    assert result.exit_code == 0, result.output
    assert "Certificate Transparency is off" in result.output
    doc = json.loads(CliRunner().invoke(ct_app, ["logs", "--json"], env=_env(tmp_path)).output)
    assert doc["data"] == {"enabled": False, "log_list": None, "logs": []}


def test_ct_on_without_a_log_list_is_refused_at_start(tmp_path: Path) -> None:
    result = CliRunner().invoke(ct_app, ["logs"], env=_env(tmp_path, ECERT_CT_ENABLED="true"))
    assert result.exit_code != 0
    assert "set ECERT_CT_LOG_LIST" in str(result.exception)
