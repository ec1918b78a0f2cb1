"""The boundaries of docs/architecture.md, enforced by walking the imports."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "ecert"

FORBIDDEN = {
    # core/ is pure: it imports nothing of ours outside core, and no I/O library.
    "core": ("ecert.signer", "ecert.store", "ecert.validation", "ecert.web", "ecert.services", "ecert.client",
             "ecert.cli", "sqlalchemy", "httpx", "socket", "requests", "smtplib", "dns.resolver"),
    # The signer never fetches anything and never opens a transaction.
    "signer": ("ecert.store", "ecert.validation", "ecert.web", "ecert.services", "ecert.client", "ecert.cli",
               "sqlalchemy", "httpx", "socket", "requests", "smtplib"),
    # The validator never sees a key or the database.
    "validation": ("ecert.signer", "ecert.store", "ecert.web", "ecert.cli"),
    "store": ("ecert.signer", "ecert.validation", "ecert.web", "ecert.services", "ecert.cli"),
}


def _imports(path: Path, package: str) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts)
                found.append(f"{base}.{node.module}" if node.module else base)
            elif node.module:
                found.append(node.module)
    return found


@pytest.mark.parametrize("part", sorted(FORBIDDEN))
def test_part_stays_inside_its_boundary(part: str) -> None:
    leaks = []
    for path in sorted((SRC / part).rglob("*.py")):
        rel = path.relative_to(SRC.parent).with_suffix("")
        package = ".".join(rel.parts[:-1])
        for name in _imports(path, package):
            if any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN[part]):
                leaks.append(f"{path.relative_to(SRC)} imports {name}")
    assert not leaks, "\n".join(leaks)
