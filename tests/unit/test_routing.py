"""A prefixed part of the service is skipped at once for paths outside it, and still serves its own."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from ecert.web.routing import PrefixRouter


def _app() -> FastAPI:
    acme = PrefixRouter(prefix="/acme")

    @acme.get("/directory")
    def directory() -> dict[str, str]:
        return {"part": "acme"}

    app = FastAPI()
    app.include_router(acme)

    @app.get("/acmeish/directory")
    def lookalike() -> dict[str, str]:
        return {"part": "portal"}

    return app


def test_its_own_paths_are_served_and_lookalike_paths_are_left_to_the_next_part() -> None:
    client = TestClient(_app())
    assert client.get("/acme/directory").json() == {"part": "acme"}
    assert client.get("/acmeish/directory").json() == {"part": "portal"}
    assert client.get("/acme/other").status_code == 404


def test_behind_a_proxy_root_path_the_prefix_is_matched_after_it() -> None:
    client = TestClient(_app(), root_path="/ca")
    assert client.get("/ca/acme/directory").json() == {"part": "acme"}


@pytest.mark.parametrize("prefix", ["", "acme", "/acme/"])
def test_a_prefix_must_be_a_path_without_a_trailing_slash(prefix: str) -> None:
    with pytest.raises(ValueError, match="prefix"):
        PrefixRouter(prefix=prefix)
