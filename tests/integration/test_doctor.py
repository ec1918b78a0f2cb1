"""`ecert-ca doctor` on a configuration ready to go live, then on one broken check at a time.

Real servers on 127.0.0.1: Knot signs example.org, unbound validates it (or only iterates), remote
perspectives run under uvicorn, the demo CA lives on SQLite.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from ecert.services import doctor, publication
from ecert.services.context import Context, build_context
from ecert.store import db
from ecert.validation.perspectives import create_perspective_app

from .dcv_fixtures import SIGNED_ZONE as ZONE
from .dcv_fixtures import KnotDns, RunningApp, UnboundResolver, free_port, start_asgi
from .ops_fixtures import add_application, issue_for

VENV_BIN = Path(sys.executable).parent  # where this interpreter's console scripts are installed
SECRET = "doctor-test-secret"


@pytest.fixture(scope="module")
def plain_resolver(
    signed_knot: KnotDns,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[UnboundResolver]:
    """Recursive but not validating: answers without the AD flag."""
    resolver = UnboundResolver(tmp_path_factory.mktemp("unbound-plain"), free_port(), signed_knot.port, zones=(ZONE,))
    resolver.start()
    yield resolver
    resolver.stop()


@pytest.fixture(scope="module")
def perspectives() -> Iterator[list[RunningApp]]:
    apps = [start_asgi(create_perspective_app(lambda payload: {}, SECRET.encode(), name=f"p{i}")) for i in range(5)]
    yield apps
    for app in apps:
        app.stop()


@pytest.fixture
def ready(
    make_demo_ctx: Callable[..., Context],
    good_resolver: UnboundResolver,
    perspectives: list[RunningApp],
) -> Context:
    """A CA ready to go live: validating resolver, public base URL that resolves, CRLs, ARL and OCSP fresh."""
    ctx = make_demo_ctx(
        base_url=f"http://www.{ZONE}",
        dns_resolvers=(good_resolver.resolver_addr,),
        ocsp_enabled=True,
        perspective_urls=tuple(p.url for p in perspectives),
    )
    ctx.perspective_secret = SECRET
    ctx.acme_secret = "doctor-test-acme-secret"
    issue_for(ctx, add_application(ctx, "A00000001"))
    for label in publication.issuing_cas(ctx):
        publication.publish_crl(ctx, label)
        publication.refresh_ocsp(ctx, label)
    publication.publish_arl(ctx)
    return ctx


def _with(ctx: Context, **settings: object) -> Context:
    return dataclasses.replace(ctx, settings=ctx.settings.model_copy(update=settings))


def _problems(ctx: Context, **kwargs: object) -> dict[str, str]:
    checks = doctor.run_checks(ctx, signed_name=ZONE, **kwargs)  # type: ignore[arg-type]
    return {c.name: f"{c.detail} -> {c.fix}" for c in checks if not c.ok}


def test_a_ready_configuration_passes_every_check(ready: Context) -> None:
    checks = doctor.run_checks(ready, signed_name=ZONE, expect_ocsp=True)
    assert [c for c in checks if not c.ok] == []
    names = {c.name.split(" ")[0] for c in checks}
    assert names >= {"database", "resolver", "base", "key", "CRL", "ARL", "OCSP", "perspective", "ACME"}
    ocsp = next(c for c in checks if c.name == "OCSP")
    assert "cannot be added later" in ocsp.detail


def test_resolvers_that_do_not_recurse_or_validate(
    ready: Context,
    signed_knot: KnotDns,
    plain_resolver: UnboundResolver,
) -> None:
    authoritative = f"127.0.0.1:{signed_knot.port}"
    dead = f"127.0.0.1:{free_port()}"
    found = _problems(_with(ready, dns_resolvers=(authoritative, plain_resolver.resolver_addr, dead)))
    assert "not recursive (no RA flag)" in found[f"resolver {authoritative}"]
    assert "does not validate DNSSEC" in found[f"resolver {plain_resolver.resolver_addr}"]
    assert "no answer" in found[f"resolver {dead}"]


@pytest.mark.parametrize(
    ("base_url", "says"),
    [
        ("http://10.1.2.3", "not a public domain name"),
        ("https://www.example.org", "must be http://"),
        (f"http://nowhere.{ZONE}", "does not resolve"),
    ],
)
def test_base_url_not_public(ready: Context, base_url: str, says: str) -> None:
    assert says in _problems(_with(ready, base_url=base_url))["base URL"]


def test_keys_that_do_not_open_with_the_passphrase(ready: Context) -> None:
    wrong = build_context(ready.settings, {"ECERT_KEY_PASSPHRASE": "not-the-passphrase"}, migrate=False)
    wrong.perspective_secret = SECRET
    try:
        found = _problems(wrong)
    finally:
        wrong.close()
    keys = {name: text for name, text in found.items() if name.startswith("key ")}
    assert keys and all("cannot be opened" in text for text in keys.values())


def test_schema_behind_the_code(ready: Context) -> None:
    db.downgrade(ready.engine, "0006")
    assert "the code expects" in _problems(ready)["database schema"]


def test_stale_crls_arl_and_ocsp(ready: Context) -> None:
    later = ready.clock() + timedelta(days=31)
    found = _problems(dataclasses.replace(ready, clock=lambda: later))
    assert any(name.startswith("CRL ") and "stale" in text for name, text in found.items())
    assert any(name.startswith("ARL ") and "stale" in text for name, text in found.items())
    assert "lack a fresh response" in found["OCSP"]


def test_ocsp_not_as_intended(ready: Context) -> None:
    assert "cannot be added later" in _problems(ready, expect_ocsp=False)["OCSP"]
    off = _with(ready, ocsp_enabled=False)
    assert "ECERT_OCSP_ENABLED=true" in _problems(off, expect_ocsp=True)["OCSP"]
    issue_for(ready, add_application(ready, "A00000002", server_name="www2.example.com"), "www2.example.com")
    assert "lack a fresh response" in _problems(ready)["OCSP"]


def test_perspectives_unreachable_missing_or_unauthenticated(ready: Context) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    found = _problems(_with(ready, perspective_urls=(*ready.settings.perspective_urls, dead)))
    assert "unreachable" in found[f"perspective {dead}"]
    few = _with(ready, perspective_urls=ready.settings.perspective_urls[:1])
    assert "BR 3.2.2.9" in _problems(few)["perspectives"]
    no_secret = dataclasses.replace(ready, perspective_secret=None)
    assert "is not set" in _problems(no_secret)["perspectives"]


def test_acme_without_its_secret_is_a_problem_and_a_kept_one_is_named(ready: Context) -> None:
    """Without the secret ACME answers only errors; one kept in the data directory serves one host only."""
    assert "ecert-ca serve" in _problems(dataclasses.replace(ready, acme_secret=None))["ACME"]
    kept = next(c for c in doctor.run_checks(ready, signed_name=ZONE, acme_secret_kept=True) if c.name == "ACME")
    assert kept.ok and "kept in the data directory" in kept.detail


def test_cli_prints_one_line_per_check_and_exits_1(tmp_path: Path) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "ECERT_DATA_DIR": str(tmp_path / "data"),
        "ECERT_KEY_PASSPHRASE": "p",
        "NO_COLOR": "1",
        "ECERT_DNS_RESOLVERS": f"127.0.0.1:{free_port()}",
        "ECERT_BASE_URL": "http://10.0.0.1",
    }
    init = subprocess.run(
        [str(VENV_BIN / "ecert-ca"), "init", "--demo"],
        env={**env, "ECERT_BASE_URL": "http://pki.ecert-demo.hk"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert init.returncode == 0, init.stderr
    result = subprocess.run(
        [str(VENV_BIN / "ecert-ca"), "doctor", "--expect-ocsp", "off"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines and all(line.startswith(("ok ", "problem ")) for line in lines)
    assert any(line.startswith("problem  base URL") for line in lines)
    assert any(line.startswith("ok       database schema") for line in lines)
    assert any(line.startswith("problem  ACME: no secret") for line in lines)
    assert os.path.exists(tmp_path / "data")
    (tmp_path / "data" / "secrets").mkdir(exist_ok=True)
    (tmp_path / "data" / "secrets" / "acme-secret").write_text("kept-by-serve")  # as `ecert-ca serve` leaves it
    again = subprocess.run(
        [str(VENV_BIN / "ecert-ca"), "doctor"], env=env, capture_output=True, text=True, timeout=120
    ).stdout.splitlines()
    assert "ok       ACME: secret kept in the data directory (secrets/acme-secret)" in again
