"""A ready CA for service and web tests: a Context on a fresh database with the demo hierarchy made.

tests/conftest.py registers this module (``pytest_plugins``): ask for ``demo_ctx`` or ``make_demo_ctx`` by name.
``demo_ctx`` is SQLite in the test's tmp dir; ``make_demo_ctx(database_url=pg_url, **settings)`` builds
one on any database (and with any settings overrides, e.g. DCV pointed at the loopback fixtures).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ecert.services.ca_config import load_hierarchy_config
from ecert.services.ceremony import init_hierarchy
from ecert.services.context import Context, build_context
from ecert.settings import Settings

__all__ = [
    "DEMO_BASE_URL",
    "DEMO_ENV",
    "demo_settings",
    "build_demo_ctx",
    "demo_ctx",
    "make_demo_ctx",
    "hold_namespace",
]

DEMO_BASE_URL = "http://pki.ecert-demo.hk"
DEMO_ENV: dict[str, str] = {"ECERT_KEY_PASSPHRASE": "test-passphrase"}


def demo_settings(data_dir: Path, **overrides: Any) -> Settings:
    """Settings for a test CA living in ``data_dir``; overrides win (smtp_port, dns_resolvers, ...)."""
    values: dict[str, Any] = {"data_dir": data_dir, "base_url": DEMO_BASE_URL}
    values.update(overrides)
    return Settings(**values)


def build_demo_ctx(data_dir: Path, **overrides: Any) -> Context:
    """A migrated database with the demo hierarchy (root, OV, EV, stand-in external root, cross)."""
    ctx = build_context(demo_settings(data_dir, **overrides), DEMO_ENV)
    init_hierarchy(ctx, load_hierarchy_config(None), demo=True)
    return ctx


@pytest.fixture
def make_demo_ctx(tmp_path: Path) -> Iterator[Callable[..., Context]]:
    """Factory: ``make_demo_ctx(**settings_overrides)``; every context made is closed after the test."""
    made: list[Context] = []

    def _make(**overrides: Any) -> Context:
        data_dir = tmp_path / f"ca{len(made)}"
        ctx = build_demo_ctx(data_dir, **overrides)
        made.append(ctx)
        return ctx

    yield _make
    for ctx in made:
        ctx.close()


@pytest.fixture
def demo_ctx(make_demo_ctx: Callable[..., Context]) -> Context:
    """A demo CA on SQLite in the test's tmp dir, base URL http://pki.ecert-demo.hk."""
    return make_demo_ctx()


def hold_namespace(ctx: Context, knot: Any, domain: str = "example.com") -> None:
    """The operator validates ``domain`` by the DNS method against the Knot fixture (services/operator_dcv.py).

    Applications whose names all fall under it then skip the subscriber's DCV step: what tests that are
    not about DCV use instead of the seed's government exemption, which the BR does not allow.
    """
    from ecert.services.operator_dcv import check_operator_validation, start_operator_validation

    challenge = start_operator_validation(ctx, domain, actor="operator:test")
    knot.add_txt(challenge.txt_hosts[0], challenge.txt_value)
    check_operator_validation(ctx, domain, actor="operator:test")
