"""`ecert renew` asks ARI (RFC 9773) when the directory offers it and sends ``replaces``: Pebble behind an ARI front."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from acme.client import _renewal_info_path_component
from cryptography import x509

from ecert.client.acme_renew import ari_cert_id
from tests.integration.pebble_fixtures import EAB_HMAC_KEY, EAB_KID, AriFront, Pebble, start_pebble
from tests.integration.test_client_cli import run

HOST = "ari.renew.example.com"


@pytest.fixture(scope="module")
def pebble(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pebble]:
    yield from start_pebble(tmp_path_factory.mktemp("pebble-ari"))


@pytest.fixture
def front(pebble: Pebble) -> Iterator[AriFront]:
    with AriFront(pebble) as f:
        yield f


def _listener(pebble: Pebble) -> list[str]:
    return ["--http-01-port", str(pebble.http_port), "--http-01-address", "127.0.0.1"]


@pytest.fixture
def store(tmp_path: Path, pebble: Pebble, front: AriFront) -> Path:
    """An account at the ARI front and two lineages it issued, 'web' and 'api'."""
    s = tmp_path / "store"
    r = run(
        s,
        "acme",
        "register",
        "--server",
        front.directory_url,
        "--ca-bundle",
        str(pebble.tls_root),
        "--eab-kid",
        EAB_KID,
        "--eab-hmac-key",
        EAB_HMAC_KEY,
    )
    assert r.exit_code == 0, r.output
    for name in ("web", "api"):
        r = run(s, "acme", "order", name, "--name", f"{name}.{HOST}", *_listener(pebble))
        assert r.exit_code == 0, r.output
    return s


def _cert(store: Path, name: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate((store / "live" / name / "cert.pem").read_bytes())


def _window(front: AriFront, cert: x509.Certificate, *, days_from_now: float) -> None:
    start = dt.datetime.now(dt.UTC) + dt.timedelta(days=days_from_now)
    front.windows[ari_cert_id(cert)] = (start, start + dt.timedelta(days=2))


def test_ari_cert_id_is_the_one_certbots_library_computes(store: Path) -> None:
    cert = _cert(store, "web")
    assert ari_cert_id(cert) == _renewal_info_path_component(cert)


def test_a_window_in_the_future_exits_3_and_changes_nothing(store: Path, front: AriFront) -> None:
    _window(front, _cert(store, "web"), days_from_now=20)  # well before two thirds of 90 days: ARI wins
    before = (store / "live/web/cert.pem").read_bytes()
    r = run(store, "--json", "renew", "web", *_listener(front.pebble))
    assert r.exit_code == 3, r.output
    out = json.loads(r.output)["results"][0]
    assert out["status"] == "not-yet" and out["decided_by"] == "ari"
    assert dt.datetime.fromisoformat(out["due_at"]) > dt.datetime.now(dt.UTC) + dt.timedelta(days=19)
    assert ari_cert_id(_cert(store, "web")) in front.ari_asked
    assert (store / "live/web/cert.pem").read_bytes() == before and front.orders[-1].get("replaces") is None


def test_a_window_that_has_come_renews_with_replaces(store: Path, front: AriFront) -> None:
    old = _cert(store, "web")
    _window(front, old, days_from_now=-3)  # the CA wants it replaced now (say, after an incident)
    r = run(store, "--json", "renew", "web", *_listener(front.pebble))
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)["results"][0]
    assert out["status"] == "renewed" and out["decided_by"] == "ari" and out["replaces"] == ari_cert_id(old)
    assert front.orders[-1]["replaces"] == ari_cert_id(old)
    assert [i["value"] for i in front.orders[-1]["identifiers"]] == [f"web.{HOST}"]
    meta = json.loads((store / "live/web/meta.json").read_text())
    assert meta["acme"]["replaced"] == ari_cert_id(old) and meta["version"] == 2


def test_all_renews_only_what_ari_says_is_due(store: Path, front: AriFront) -> None:
    _window(front, _cert(store, "web"), days_from_now=-3)
    _window(front, _cert(store, "api"), days_from_now=30)
    r = run(store, "--json", "renew", "--all", *_listener(front.pebble))
    assert r.exit_code == 0, r.output  # a cron job: "not yet" for some is not a failure
    statuses = {x["name"]: x["status"] for x in json.loads(r.output)["results"]}
    assert statuses == {"api": "not-yet", "web": "renewed"}
    assert sorted(p.name for p in (store / "archive/api").glob("cert*.pem")) == ["cert1.pem"]


def test_an_unreadable_ari_answer_falls_back_to_the_lifetime_rule(store: Path, front: AriFront) -> None:
    r = run(store, "--json", "renew", "web", *_listener(front.pebble))  # no window set: the front answers 404
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)["results"][0]
    assert out["status"] == "not-due" and out["decided_by"] == "lifetime"
    assert any("renewalInfo" in n for n in out["notes"])


def test_force_skips_ari_and_still_names_the_replaced_certificate(store: Path, front: AriFront) -> None:
    old = _cert(store, "api")
    _window(front, old, days_from_now=30)
    r = run(store, "--json", "renew", "api", "--force", *_listener(front.pebble))
    assert r.exit_code == 0, r.output
    assert ari_cert_id(old) not in front.ari_asked
    assert front.orders[-1]["replaces"] == ari_cert_id(old)
