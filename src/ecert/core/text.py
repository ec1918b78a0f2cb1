"""Text that came from outside, made safe to echo: in an error message or on the operator's terminal."""

from __future__ import annotations

__all__ = ["printable"]


def printable(text: str) -> str:
    """``text`` with every character a terminal would act on (escape sequences, controls, a right-to-left
    override) shown as its escape, and nothing else changed: what someone sent must not drive the screen of
    whoever reads it back."""
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)
