"""pytest fixtures: test CT logs on loopback and a log list naming them.

Import ``ct_logs_fixture`` into a test module and ask for ``ct_logs``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .server import Faults, TestLog, log_list_json

__all__ = ["ct_logs_fixture", "write_log_list"]


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
