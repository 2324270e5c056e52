"""The settings every campaign runs with, wherever it is started (CLI, staff console)."""

from __future__ import annotations

from typing import Any

from bot.settings import Settings
from schedules.policy import Policy


def campaign_options(settings: Settings, policy: Policy) -> dict[str, Any]:
    """Keyword arguments for ``schedules.campaigns.preview`` and ``run``."""
    return {
        "policy": policy,
        "zone": settings.zone,
        "contact": settings.admin_email,
        "definitions_dir": settings.survey_definitions_dir,
        # No bot, no link to connect Telegram (as the tick plans it).
        "telegram": settings.telegram_token is not None,
    }
