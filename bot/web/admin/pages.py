"""Rendering console pages: the layout's navigation, the CSRF token and the signed-in member.

``render(request, "web/admin/x.html", {...})`` renders a template that extends
``web/admin/layout.html``. Every page gets:

- ``staff``: the signed-in ``StaffMember`` (None on the sign-in pages), ``can_change``;
- ``csrf_token``: put ``{{ csrf_field() }}`` (or a hidden ``csrf_token`` input) in every form
  that POSTs;
- ``nav``: the console's sections, the current one marked;
- ``partnership``, ``admin_email``, ``timezone`` and the ``local_time`` filter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from markupsafe import Markup, escape

from bot.settings import Settings
from bot.templating import environment
from bot.web.admin.auth import CSRF_FIELD, csrf_token
from bot.web.security import PRIVATE_HEADERS


@dataclass(frozen=True)
class Section:
    label: str
    path: str


# The console's sections, in the navigation's order. A page belongs to the section whose path
# is the longest prefix of its own.
NAV: tuple[Section, ...] = (
    Section("Dashboard", "/admin/"),
    Section("Sessions", "/admin/sessions"),
    Section("Import", "/admin/import"),
    Section("Responses", "/admin/responses"),
    Section("Campaigns", "/admin/campaigns"),
    Section("Outbox", "/admin/outbox"),
    Section("People", "/admin/people"),
    Section("Reports", "/admin/reports"),
)

# Console pages may load only this site's own resources; a small script of this site's is
# allowed (progress), inline scripts are not.
CONSOLE_HEADERS = {
    **PRIVATE_HEADERS,
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; script-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
}


def current_section(path: str) -> str | None:
    best: Section | None = None
    for section in NAV:
        if (path == section.path or path.startswith(section.path.rstrip("/") + "/")) and (
            best is None or len(section.path) > len(best.path)
        ):
            best = section
    return best.path if best else None


def render(
    request: Request,
    name: str,
    context: dict[str, Any] | None = None,
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    """A console page from template ``name`` (see the module's account of what it is given)."""
    settings: Settings = request.app.state.settings
    staff = getattr(request.state, "staff", None)
    cookie = getattr(request.state, "console_cookie", None)
    token = csrf_token(settings, cookie) if cookie else ""
    here = current_section(request.url.path)
    page: dict[str, Any] = {
        "partnership": settings.partnership_name,
        "admin_email": settings.admin_email,
        "timezone": settings.timezone,
        "staff": staff,
        "can_change": bool(staff is not None and staff.can_change),
        "csrf_token": token,
        "csrf_field": lambda: Markup(
            f'<input type="hidden" name="{CSRF_FIELD}" value="{escape(token)}">'
        ),
        "nav": [{"label": s.label, "path": s.path, "current": s.path == here} for s in NAV]
        if staff is not None
        else [],
        **(context or {}),
    }
    html = environment().get_template(name).render(page)
    return HTMLResponse(html, status_code=status, headers={**CONSOLE_HEADERS, **(headers or {})})


def message(
    request: Request,
    title: str,
    text: str,
    *,
    status: int = 200,
    link: tuple[str, str] | None = None,
    tone: str = "info",
) -> HTMLResponse:
    """A page that says what happened and what to do next (``link``: its text and address)."""
    return render(
        request,
        "web/admin/message.html",
        {"page_title": title, "message": text, "link": link, "tone": tone},
        status=status,
    )
