"""The SQLite database and its -wal and -shm files are private to the CA's account (issue 10 point 7)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from sqlalchemy import text

from ecert.store import db


def test_a_new_sqlite_database_and_its_wal_are_0600(tmp_path: Path) -> None:
    old = os.umask(0o022)  # the usual umask, under which SQLite alone would make them 0644
    try:
        engine = db.make_engine(f"sqlite:///{tmp_path / 'ecert.db'}")
        db.upgrade(engine)
        with engine.connect() as conn:  # keep one open so -wal and -shm exist while we look
            conn.execute(text("SELECT count(*) FROM audit_log"))
            modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
        engine.dispose()
    finally:
        os.umask(old)
    assert {"ecert.db", "ecert.db-wal", "ecert.db-shm"} <= set(modes)
    assert set(modes.values()) == {0o600}, modes


def test_an_existing_database_keeps_its_mode(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    path.touch(mode=0o640)
    path.chmod(0o640)
    db.make_engine(f"sqlite:///{path}").dispose()
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
