"""Fixtures of the interop tests: ecert's ACME server over HTTPS and Pebble, both on loopback.

The helpers they rest on live in ``acme_interop.py`` (and ``tests/integration/pebble_fixtures.py``); these
fixtures only start and stop the servers, so every test module of this directory asks for them by name.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.integration.acme_fixtures import EAB_SECRET, ENV
from tests.integration.dcv_fixtures import KnotDns, free_port
from tests.integration.foundation_fixtures import make_ctx
from tests.integration.pebble_fixtures import Pebble, start_pebble
from tests.interop.acme_interop import Durations, TlsServer, serve_tls, tls_material

from ecert.services.ca_config import load_hierarchy_config
from ecert.services.ceremony import init_hierarchy
from ecert.web.app import create_app


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory, knot_dns: KnotDns) -> Iterator[TlsServer]:
    """ecert (SQLite, real clock, demo hierarchy) serving ACME over HTTPS on 127.0.0.1."""
    workdir = tmp_path_factory.mktemp("acme-clients")
    http01_port, tlsalpn_port = free_port(), free_port()
    ctx = make_ctx(
        workdir,
        None,
        dns_resolvers=(knot_dns.resolver_addr,),
        allow_private_addresses=True,
        caa_identities=("ecert.example.hk",),
        http_port=http01_port,
        https_port=tlsalpn_port,
        # every client here connects from 127.0.0.1, so the per-IP new-account limit (10 per 3 h, issue 13
        # point 8) would stop a module after ten registrations; it stays on, set above what a module makes
        acme_new_accounts_per_ip=1000,
    )
    ctx.acme_secret = EAB_SECRET
    init_hierarchy(ctx, load_hierarchy_config(None), demo=True)
    tls_root, cert, key = tls_material(workdir)
    url, server, thread = serve_tls(create_app(ctx.settings, {**ENV, "ECERT_JOBS": "off"}, context=ctx), cert, key)
    try:
        yield TlsServer(ctx, url, tls_root, http01_port, tlsalpn_port, knot_dns, workdir)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        ctx.close()


@pytest.fixture(scope="module")
def pebble(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pebble]:
    """Pebble with EAB required and pebble-challtestsrv, every listener on 127.0.0.1 (testing-recipes.md 3)."""
    yield from start_pebble(tmp_path_factory.mktemp("pebble"))


@pytest.fixture(scope="session")
def acme_durations() -> Iterator[Durations]:
    """Per-client seconds against ecert and Pebble, printed once the session's tests are done (``pytest -s``)."""
    durations = Durations()
    yield durations
    if durations.seconds:
        print("\nACME clients, seconds per issuance (time.monotonic, whole client run; medians):\n" + durations.table())
