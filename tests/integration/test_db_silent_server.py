"""A PostgreSQL server that stops answering fails a request in seconds, not after the OS's TCP timeout.

The "server" is a loopback socket that accepts connections and never says a word: what a host gone behind
a firewall that drops packets looks like once the handshake is done.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from ecert.store import db


@pytest.fixture
def silent_port() -> Iterator[int]:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield int(listener.getsockname()[1])


def test_connecting_to_a_silent_server_fails_within_the_connect_timeout(
    silent_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db, "PG_CONNECT_TIMEOUT_SECONDS", 2)
    engine = db.make_engine(f"postgresql://ecert@127.0.0.1:{silent_port}/ecert")
    started = time.monotonic()
    with pytest.raises(OperationalError, match="timeout"), engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    assert time.monotonic() - started < 8
    engine.dispose()


def test_an_operator_timeout_in_the_url_wins(silent_port: int) -> None:
    engine = db.make_engine(f"postgresql://ecert@127.0.0.1:{silent_port}/ecert?connect_timeout=3")
    started = time.monotonic()
    with pytest.raises(OperationalError), engine.connect():
        pass
    assert 2.5 < time.monotonic() - started < 9
    engine.dispose()
