"""The boundaries of docs/architecture.md, enforced by walking the imports."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "ecert"

FORBIDDEN = {
    # core/ is pure: it imports nothing of ours outside core, and no I/O library.
    "core": (
        "ecert.signer",
        "ecert.store",
        "ecert.validation",
        "ecert.web",
        "ecert.services",
        "ecert.client",
        "ecert.cli",
        "sqlalchemy",
        "httpx",
        "socket",
        "requests",
        "smtplib",
        "dns.resolver",
    ),
    # The signer never fetches anything and never opens a transaction.
    "signer": (
        "ecert.store",
        "ecert.validation",
        "ecert.web",
        "ecert.services",
        "ecert.client",
        "ecert.cli",
        "sqlalchemy",
        "httpx",
        "socket",
        "requests",
        "smtplib",
    ),
    # The validator never sees a key or the database.
    "validation": ("ecert.signer", "ecert.store", "ecert.web", "ecert.cli"),
    "store": ("ecert.signer", "ecert.validation", "ecert.web", "ecert.services", "ecert.cli"),
    # Network code that is not validation (CT submission) sits beside validation/, never near a key or the DB.
    "transparency": ("ecert.signer", "ecert.store", "ecert.web", "ecert.services", "ecert.cli", "ecert.client"),
    # Use cases call the parts; they never reach up to an edge.
    "services": ("ecert.web", "ecert.cli", "ecert.client"),
    # The edges parse, call a service and render: no models, no queries, no transactions, no signer, no
    # network validation, and never the issuance pipeline past the registration authority.
    "web": (
        "ecert.store",
        "sqlalchemy",
        "ecert.signer.issuer",
        "ecert.validation",
        "ecert.services.issuance",
        "ecert.cli",
        "ecert.client",
    ),
    "cli": ("ecert.store", "sqlalchemy", "ecert.signer.issuer", "ecert.services.issuance"),
    # The subscriber's side talks to the CA over HTTP only.
    "client": (
        "ecert.services",
        "ecert.store",
        "ecert.signer",
        "ecert.web",
        "ecert.cli",
        "ecert.validation",
        "sqlalchemy",
    ),
}

# The edges may name the driver's exceptions to answer a lost database (503, one CLI line); nothing more.
ALLOWED = {"sqlalchemy.exc"}

# One door for issuance policy: only the registration authority hands requests to the pipeline.
PIPELINE_CALLERS = {"services/registration.py", "services/issuance.py", "services/jobs.py"}


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
            if name in ALLOWED:
                continue
            if any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN[part]):
                leaks.append(f"{path.relative_to(SRC)} imports {name}")
    assert not leaks, "\n".join(leaks)


def test_only_the_registration_authority_reaches_the_pipeline() -> None:
    callers = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC)
        package = ".".join(path.relative_to(SRC.parent).with_suffix("").parts[:-1])
        if str(rel) in PIPELINE_CALLERS:
            continue
        if any(
            n == "ecert.services.issuance" or n.startswith("ecert.services.issuance.") for n in _imports(path, package)
        ):
            callers.append(str(rel))
    assert not callers, f"only the registration authority may call the issuance pipeline: {callers}"


@pytest.mark.parametrize("edge", ["web", "cli"])
def test_edges_never_open_a_transaction(edge: str) -> None:
    """services/ is the only place that opens a transaction (docs/architecture.md)."""
    found = [
        f"{p.relative_to(SRC)}"
        for p in sorted((SRC / edge).rglob("*.py"))
        if ".transaction()" in p.read_text(encoding="utf-8") or ".sessions()" in p.read_text(encoding="utf-8")
    ]
    assert not found, f"transactions opened at the edge: {found}"


# Services hold a session and catch the driver's errors; only store/ builds queries (Boulder's SA).
SERVICES_SQLALCHEMY = {"sqlalchemy.orm", "sqlalchemy.exc", "sqlalchemy"}
QUERY_BUILDERS = {"select", "update", "insert", "delete", "func", "text"}
SESSION_METHODS = {"get", "execute", "scalar", "scalars", "query", "add", "delete"}


def test_only_the_store_builds_queries() -> None:
    found = []
    for path in sorted((SRC / "services").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module in SERVICES_SQLALCHEMY:
                bad = [a.name for a in node.names if a.name in QUERY_BUILDERS]
                if bad:
                    found.append(f"{path.relative_to(SRC)} imports {', '.join(bad)} from {node.module}")
            elif (
                isinstance(node, ast.Attribute)
                and node.attr in SESSION_METHODS
                and isinstance(node.value, ast.Name)
                and node.value.id == "session"
            ):
                found.append(f"{path.relative_to(SRC)}:{node.lineno} calls session.{node.attr}")
    assert not found, "services must reach the database through named store functions:\n" + "\n".join(found)
