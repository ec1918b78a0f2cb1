"""Refusals at the edge that BR 5.4.1 asks a CA to log: forged forms, oversized bodies and the like.

The web layer never opens a transaction; it hands the refusal here. Details name what was refused and
where from, never what was sent (a token, a body): the audit log must not become a store of secrets.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from ..store import audit
from .context import Context

__all__ = ["record_refusal"]

_log = logging.getLogger("ecert.audit")


def record_refusal(ctx: Context, *, event: str, actor: str, subject: str | None, details: Mapping[str, Any]) -> None:
    """Append one refusal to the audit chain; a database that cannot take it is logged, not raised.

    The caller is already answering 4xx; failing that answer because the log is unavailable would turn a
    refusal into an error page, and the event still reaches the process log below.
    """
    try:
        with ctx.transaction() as session:
            audit.append(session, actor=actor, event=event, subject=subject, details=dict(details), now=ctx.clock())
    except Exception:  # noqa: BLE001 - see the docstring
        _log.exception("could not audit %s from %s: %s", event, actor, dict(details))
