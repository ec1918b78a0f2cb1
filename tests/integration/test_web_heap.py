"""The web service sets its start-up heap aside from the garbage collector while it runs, and gives it back.

A full collection walked every object built at start (routes, models, mappers, certificates): 100-120 ms with
the event loop stopped, the p99 of every read under load (bench/portal.py). Frozen, they are not walked.
"""

from __future__ import annotations

import gc
from pathlib import Path

from fastapi.testclient import TestClient

from ecert.web.app import create_app
from tests.integration.foundation_fixtures import PASSPHRASE_ENV, make_ctx


def test_the_start_up_heap_is_frozen_while_serving_and_released_at_shutdown(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path)
    app = create_app(ctx.settings, {**PASSPHRASE_ENV, "ECERT_JOBS": "off"}, context=ctx)
    try:
        with TestClient(app) as client:
            assert client.get("/repository/index.json").status_code == 200
            assert gc.get_freeze_count() > 10_000  # the app, SQLAlchemy's mappers, pydantic's schemas...
            assert len(gc.get_objects(generation=2)) < gc.get_freeze_count()
        assert gc.get_freeze_count() == 0
    finally:
        ctx.close()
