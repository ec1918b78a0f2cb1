"""Per-process facts the services keep between calls: each slot belongs to one context's memory.

The registration authority's CA-key set and the pipeline's active issuing CA change only at a ceremony
(init, rollover, a new OCSP responder), yet were read in full for every certificate. Each service keeps
such a fact here together with a cheap stamp it checks on every use, so a change made by any process is
seen at the next call. Slots are tied to the identity of ``ctx.memo`` (held, so that identity is never
reused) and only the newest few contexts are kept, so tests that build many contexts do not grow it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from .context import Context, ProcessMemo

__all__ = ["slot"]

_KEEP = 8
_slots: OrderedDict[int, tuple[ProcessMemo, dict[str, Any]]] = OrderedDict()
_lock = threading.Lock()


def slot(ctx: Context) -> dict[str, Any]:
    """The dict of per-process facts of ``ctx`` (created empty on first use)."""
    key = id(ctx.memo)
    with _lock:
        found = _slots.get(key)
        if found is None or found[0] is not ctx.memo:
            found = (ctx.memo, {})
            _slots[key] = found
            while len(_slots) > _KEEP:
                _slots.popitem(last=False)
        else:
            _slots.move_to_end(key)
        return found[1]
