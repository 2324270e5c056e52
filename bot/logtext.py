"""How a log line names a recipient: enough to tell messages apart, not enough to identify."""

from __future__ import annotations


def mask_address(recipient: str) -> str:
    """``alice.okafor@riverside.example`` to ``al***@riverside.example``; chat id ``***789``."""
    local, at, domain = recipient.partition("@")
    if at:
        return f"{local[:2]}***@{domain}"
    return f"***{recipient[-3:]}" if len(recipient) > 3 else "***"
