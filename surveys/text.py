"""Free text from people, made safe to store: one rule for every form, chat and command."""

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
