"""Signed checkpoints of the audit chain (issue 10 point 6): a log cut short, emptied or rebuilt no longer passes."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from ecert.services import jobs
from ecert.services.audit_checkpoints import verify_log, write_checkpoint
from ecert.services.context import Context
from ecert.store import audit
from ecert.store.checkpoints import CHECKPOINT_FILE
from ecert.store.models import AuditEvent

VENV_BIN = Path(sys.executable).parent  # where this interpreter's console scripts are installed


def _tamper(ctx: Context, *statements: str) -> None:
    """Drop the append-only triggers, as an attacker with the database's rights could, and run ``statements``."""
    with ctx.engine.begin() as conn:
        for (name,) in conn.exec_driver_sql(
            "SELECT name FROM sqlite_master WHERE type='trigger' AND tbl_name='audit_log'"
        ).all():
            conn.exec_driver_sql(f'DROP TRIGGER "{name}"')
        for statement in statements:
            conn.exec_driver_sql(statement)


def _more_rows(ctx: Context, n: int = 3) -> None:
    with ctx.transaction() as session:
        for i in range(n):
            audit.append(session, actor="operator:test", event="test.tick", details={"n": i}, now=ctx.clock())


def test_an_intact_log_matches_its_checkpoint(demo_ctx: Context) -> None:
    cp = write_checkpoint(demo_ctx)
    assert cp is not None and cp.rows > 0
    _more_rows(demo_ctx)  # rows after the checkpoint are fine: the log only grows
    report = verify_log(demo_ctx)
    assert report.ok, report.reason
    assert report.checkpoint == cp and report.rows_checked == cp.rows + 3


def test_an_emptied_table_fails(demo_ctx: Context) -> None:
    cp = write_checkpoint(demo_ctx)
    assert cp is not None
    _tamper(demo_ctx, "DELETE FROM audit_log")
    report = verify_log(demo_ctx)
    assert not report.ok
    assert report.reason == (
        f"the audit log has 0 rows, but the checkpoint signed at {cp.at} counted {cp.rows} rows ending in row "
        f"{cp.head_id} (hash {cp.head_hash[:16]}...): rows were removed from the log"  # type: ignore[index]
    )


def test_rows_deleted_from_the_end_fail(demo_ctx: Context) -> None:
    _more_rows(demo_ctx)
    cp = write_checkpoint(demo_ctx)
    assert cp is not None
    _tamper(demo_ctx, f"DELETE FROM audit_log WHERE id > {cp.rows - 2}")
    report = verify_log(demo_ctx)
    assert not report.ok and "rows were removed" in (report.reason or "")
    assert report.rows_checked == cp.rows - 2


def test_a_chain_rebuilt_over_a_deleted_row_shows_the_gap(demo_ctx: Context) -> None:
    """Delete row 2 and re-hash every later row: the links hold, the ids do not."""
    _tamper(demo_ctx, "DELETE FROM audit_log WHERE id = 2")
    with demo_ctx.engine.begin() as conn:
        rows = conn.execute(select(AuditEvent).order_by(AuditEvent.id)).all()
        prev = audit.GENESIS_HASH
        for row in rows:
            new = audit.compute_hash(prev, row.at, row.actor, row.event, row.subject, row.details)
            conn.exec_driver_sql(
                "UPDATE audit_log SET prev_hash = ?, hash = ? WHERE id = ?",
                ("x" * 64 + str(row.id), "y" * 64 + str(row.id), row.id),
            )
            conn.exec_driver_sql("UPDATE audit_log SET prev_hash = ?, hash = ? WHERE id = ?", (prev, new, row.id))
            prev = new
    report = verify_log(demo_ctx)
    assert (report.ok, report.first_bad_id) == (False, 3)
    assert "row ids jump to 3 where 2 was due" in (report.reason or "")


def test_a_forged_checkpoint_fails(demo_ctx: Context) -> None:
    write_checkpoint(demo_ctx)
    path = demo_ctx.settings.data_dir / "audit" / CHECKPOINT_FILE
    line = json.loads(path.read_text().splitlines()[-1])
    line["rows"] = 1
    with path.open("a") as fh:
        fh.write(json.dumps(line) + "\n")
    report = verify_log(demo_ctx)
    assert not report.ok and "signature does not verify" in (report.reason or "")


def test_checkpoints_are_appended_to_a_private_file_with_an_encrypted_key(demo_ctx: Context) -> None:
    first = write_checkpoint(demo_ctx)
    assert write_checkpoint(demo_ctx) is None  # nothing changed: no new line
    _more_rows(demo_ctx, 1)
    second = write_checkpoint(demo_ctx)
    directory = demo_ctx.settings.data_dir / "audit"
    lines = (directory / CHECKPOINT_FILE).read_text().splitlines()
    assert [json.loads(x)["rows"] for x in lines] == [first.rows, second.rows]  # type: ignore[union-attr]
    assert stat.S_IMODE((directory / CHECKPOINT_FILE).stat().st_mode) == 0o600
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    key_file = demo_ctx.settings.data_dir / "keys" / "audit-checkpoint.key"
    assert b"ENCRYPTED PRIVATE KEY" in key_file.read_bytes()
    with demo_ctx.read() as session:
        created = session.scalars(select(AuditEvent).where(AuditEvent.event == "audit.checkpoint_key.created")).all()
    assert len(created) == 1 and created[0].details["key_id"] == first.key_id  # type: ignore[union-attr]


def test_the_jobs_write_a_checkpoint(demo_ctx: Context) -> None:
    report = jobs.run_once(demo_ctx)
    assert "audit-checkpoint" not in " ".join(report.errors)
    assert verify_log(demo_ctx).checkpoint is not None


def test_the_web_service_writes_a_checkpoint_when_it_stops(demo_ctx: Context) -> None:
    from fastapi.testclient import TestClient

    from ecert.web.app import create_app

    app = create_app(demo_ctx.settings, {"ECERT_JOBS": "off"}, context=demo_ctx)
    with TestClient(app) as client:
        assert client.get("/repository/ca/demo-root-ca-1.crt").status_code in (200, 404)
        _more_rows(demo_ctx, 1)
        assert verify_log(demo_ctx).checkpoint is None
    report = verify_log(demo_ctx)
    assert report.ok and report.checkpoint is not None and report.checkpoint.rows == report.rows_checked


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": "/usr/bin:/bin",
        "ECERT_DATA_DIR": str(tmp_path / "data"),
        "ECERT_KEY_PASSPHRASE": "cli-test-passphrase",
        "NO_COLOR": "1",
    }
    return subprocess.run([str(VENV_BIN / "ecert-ca"), *args], capture_output=True, text=True, env=env, timeout=120)


def test_the_cli_exits_4_on_an_emptied_log(tmp_path: Path) -> None:
    import sqlite3

    assert _cli(tmp_path, "init", "--demo").returncode == 0
    made = _cli(tmp_path, "audit", "checkpoint", "--json")
    assert made.returncode == 0, made.stderr
    assert _cli(tmp_path, "audit", "verify").returncode == 0
    db = sqlite3.connect(tmp_path / "data" / "ecert.db")
    for (name,) in db.execute(
        "SELECT name FROM sqlite_master WHERE type='trigger' AND tbl_name='audit_log'"
    ).fetchall():
        db.execute(f'DROP TRIGGER "{name}"')
    db.execute("DELETE FROM audit_log")
    db.commit()
    db.close()
    broken = _cli(tmp_path, "audit", "verify")
    assert broken.returncode == 4
    assert "audit chain BROKEN: the audit log has 0 rows, but the checkpoint signed at" in broken.stdout
    as_json: Any = json.loads(_cli(tmp_path, "audit", "verify", "--json").stdout)["data"]
    assert as_json["ok"] is False and as_json["checkpoint"]["rows"] > 0


@pytest.mark.parametrize("known_head_ok", [True, False])
def test_known_head_is_still_honoured(demo_ctx: Context, known_head_ok: bool) -> None:
    with demo_ctx.read() as session:
        head = session.scalar(select(AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1))
    report = verify_log(demo_ctx, known_head=head if known_head_ok else "f" * 64)
    assert report.ok is known_head_ok
