"""Printing for the command lines: rich tables on a terminal, plain text otherwise, JSON on request.

Colour only on a TTY and never with ``NO_COLOR``; every error is one line on stderr.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, NoReturn

from rich.console import Console
from rich.table import Table

__all__ = ["JSON_SCHEMA_VERSION", "emit_json", "table", "fail", "console", "err_console"]

JSON_SCHEMA_VERSION = 1


def _colour() -> bool:
    return sys.stdout.isatty() and "NO_COLOR" not in os.environ


def console() -> Console:
    # emoji=False: fingerprints such as "..:AB:.." must print as hex, never as an emoji code.
    return Console(no_color=not _colour(), highlight=False, soft_wrap=True, emoji=False)


def err_console() -> Console:
    return Console(
        stderr=True,
        no_color=not (sys.stderr.isatty() and "NO_COLOR" not in os.environ),
        highlight=False,
        soft_wrap=True,
        emoji=False,
    )


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def emit_json(kind: str, data: Any) -> None:
    """Machine-readable output: a versioned envelope so scripts can detect format changes."""
    print(
        json.dumps(
            {"schema": JSON_SCHEMA_VERSION, "kind": kind, "data": data}, default=_default, ensure_ascii=False, indent=2
        )
    )


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    tbl = Table(title=title, show_lines=False)
    for col in columns:
        tbl.add_column(col, overflow="fold")
    for row in rows:
        tbl.add_row(
            *("" if v is None else v.isoformat(timespec="seconds") if isinstance(v, datetime) else str(v) for v in row)
        )
    console().print(tbl)


def fields(title: str, values: Mapping[str, Any]) -> None:
    table(title, ("field", "value"), list(values.items()))


def fail(message: str, code: int = 1) -> NoReturn:
    """One clear line on stderr, then exit with ``code``."""
    err_console().print(f"error: {message}", markup=False)
    raise SystemExit(code)
