"""The one way a public page is rendered: its template, with what every page shows (the
partnership's name and the training team's contact), and the headers that keep it private."""

from __future__ import annotations

from typing import Any

from fastapi.responses import HTMLResponse

from bot.settings import Settings
from bot.templating import environment
from bot.web.security import PRIVATE_HEADERS


def page(
    settings: Settings,
    template: str,
    context: dict[str, Any],
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    """``template`` (e.g. ``web/survey.html``) rendered with ``context`` as an HTML response."""
    html = (
        environment()
        .get_template(template)
        .render(
            partnership=settings.partnership_name, admin_email=settings.contact_email, **context
        )
    )
    return HTMLResponse(html, status_code=status, headers={**PRIVATE_HEADERS, **(headers or {})})


def busy_page(settings: Settings, wait: int) -> HTMLResponse:
    """ "Please wait": the answer, for ``wait`` seconds, to a client that has tried too many
    links that do not work (see ``bot.web.security.BadTokenLimiter``)."""
    return page(settings, "web/survey_busy.html", {}, 429, {"Retry-After": str(wait)})
