"""Small wording helpers shared by every layer's messages to people."""

from __future__ import annotations


def plural(count: int, noun: str, many: str | None = None) -> str:
    """``plural(1, "booking")`` is "1 booking"; ``plural(3, "booking")`` is "3 bookings"."""
    return f"{count:,} {noun if count == 1 else (many or noun + 's')}"
