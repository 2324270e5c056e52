"""Text to and from people: free text made safe to store, and small wording helpers shared by
every layer's messages."""

from __future__ import annotations

import unicodedata


def clean_text(text: str) -> str:
    """Line endings made plain and control characters dropped, then trimmed.

    PostgreSQL refuses a NUL in text, and no other control character (tabs and line breaks
    apart) means anything in a reason, a name or an answer, so they go before anything is stored.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    kept = (ch for ch in text if ch in "\n\t" or unicodedata.category(ch) != "Cc")
    return "".join(kept).strip()


def plural(count: int, noun: str, many: str | None = None) -> str:
    """``plural(1, "booking")`` is "1 booking"; ``plural(3, "booking")`` is "3 bookings"."""
    return f"{count:,} {noun if count == 1 else (many or noun + 's')}"
