"""pytest fixtures: test CT logs on loopback and a log list naming them.

tests/conftest.py registers this module (``pytest_plugins``): a test asks for ``ct_logs`` (``ct_ctx``) by name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ecert.services.context import Context

from .server import Faults, TestLog, log_list_json

__all__ = ["ct_logs_fixture", "ct_ctx_fixture", "write_log_list"]


@pytest.fixture(name="ct_logs")
def ct_logs_fixture() -> Iterator[Callable[..., TestLog]]:
    """Factory: ``ct_logs(name, operator=..., faults=Faults(...))`` starts a log; all are stopped afterwards."""
    started: list[TestLog] = []

    def _start(name: str, operator: str = "Operator A", faults: Faults | None = None, **kw: Any) -> TestLog:
        log = TestLog(name=name, operator=operator, faults=faults or Faults(), **kw).start()
        started.append(log)
        return log

    yield _start
    for log in started:
        log.stop()


def write_log_list(path: Path, logs: list[TestLog], **entry_kw: Any) -> Path:
    """Write a log_list.json v3 naming ``logs`` (each with the ``operator`` the factory gave it)."""
    path.write_text(log_list_json([(log.operator, log.log_list_entry(**entry_kw)) for log in logs]))
    return path


@pytest.fixture(name="ct_ctx")
def ct_ctx_fixture(tmp_path: Path) -> Iterator[Callable[..., Context]]:
    """Factory: ``ct_ctx(logs, **settings)``, a demo CA with CT on whose log list names ``logs``."""
    from ecert.services.ca_config import load_hierarchy_config
    from ecert.services.ceremony import init_hierarchy
    from tests.integration.foundation_fixtures import make_ctx

    made: list[Context] = []

    def _make(logs: list[TestLog], **settings: Any) -> Context:
        path = write_log_list(tmp_path / f"log_list{len(made)}.json", logs)
        values: dict[str, Any] = {
            "ct_enabled": True,
            "ct_log_list": path,
            "ct_timeout_seconds": 1.0,
            "ct_attempts": 2,
            **settings,
        }
        ctx = make_ctx(tmp_path / f"ca{len(made)}", **values)
        init_hierarchy(ctx, load_hierarchy_config(None), demo=True)
        made.append(ctx)
        return ctx

    yield _make
    for ctx in made:
        ctx.close()
