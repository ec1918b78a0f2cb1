"""docs/architecture.md's table "BR rule → the one place it is enforced" names places that exist.

A newcomer follows the table to find a rule; a file moved or a function renamed would send them nowhere. In
the "enforced in" column every backticked ``path.py`` (below src/ecert) must exist, and every backticked name
after it must be defined in that file (a function, a class or a module-level constant).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "ecert"
HEADING = "## BR rule → the one place it is enforced"


def _rows() -> list[tuple[str, str]]:
    """(BR section, the "enforced in" cell) of every row of the table."""
    section = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8").split(HEADING, 1)[1]
    rows = []
    for line in section.split("\n## ", 1)[0].splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0] != "BR section" and not set(cells[0]) <= {"-", " "}:
            rows.append((cells[0], cells[2]))
    return rows


def _places(cell: str) -> list[tuple[str, str | None]]:
    """(file, name or None for the file itself) for each backticked token of a cell, in order."""
    places: list[tuple[str, str | None]] = []
    current: str | None = None
    for token in re.findall(r"`([^`]+)`", cell):
        if token.endswith(".py"):
            current = token
            places.append((token, None))
        else:
            places.append((current or "(no file named before it)", token))
    return places


def _defines(source: str, name: str) -> bool:
    pattern = rf"^\s*(?:async def|def|class) {re.escape(name)}\b|^{re.escape(name)}\b\s*[:=]"
    return re.search(pattern, source, re.MULTILINE) is not None


def test_the_table_has_its_rows() -> None:
    assert len(_rows()) >= 20


@pytest.mark.parametrize(("section", "cell"), _rows(), ids=[section for section, _cell in _rows()])
def test_every_place_the_table_names_exists(section: str, cell: str) -> None:
    missing = []
    for file, name in _places(cell):
        path = SRC / file
        if not path.is_file():
            missing.append(file)
        elif name is not None and not _defines(path.read_text(encoding="utf-8"), name):
            missing.append(f"{file} {name}")
    assert not missing, f"BR {section}: the table names what is not there: {missing}"
