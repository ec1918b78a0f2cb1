"""The operator's read of the CA hierarchy (``ecert-ca ca list`` and ``ca show``).

Kept apart from ``ceremony``: a read needs the store and nothing of the key handling, the hierarchy
builder or the key checks the ceremony imports, and those imports were a tenth of ``ca list``'s start-up
(issue 11).
"""

from __future__ import annotations

from ..store import cas
from ..store.models import CA
from .context import Context

__all__ = ["list_cas"]


def list_cas(ctx: Context) -> list[CA]:
    """Every CA certificate this instance knows, in the order they were made."""
    with ctx.read() as session:
        return cas.cas_of_roles(session)
