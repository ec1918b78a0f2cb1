"""How `ecert-ca serve` runs the app under uvicorn: idle connections are closed, even ones that never ask.

uvicorn closes a kept-alive connection ``timeout_keep_alive`` seconds after a response, but arms no timer
for a connection that was opened and never sent a byte: such a connection is held forever, and a few
thousand of them exhaust the server (slowloris). The protocol below arms the same timer at accept time;
the first bytes disarm it as usual.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["IDLE_TIMEOUT", "HTTP_PROTOCOL", "IdleTimeoutHttpTools", "uvicorn_options"]

IDLE_TIMEOUT = 5  # seconds; uvicorn's own keep-alive default, now also for a connection's first request
HTTP_PROTOCOL = "ecert.web.server:IdleTimeoutHttpTools"  # by name: worker processes import it themselves


class IdleTimeoutHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol with the keep-alive timer running from the moment a connection opens."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive, self.timeout_keep_alive_handler)


def uvicorn_options(idle_timeout: int = IDLE_TIMEOUT) -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.run``/``uvicorn.Config`` that time idle connections out."""
    return {"http": HTTP_PROTOCOL, "timeout_keep_alive": idle_timeout}
