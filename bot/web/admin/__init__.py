"""The staff console (``/admin/``): coordinators and viewers run Evalbot from a browser.

Adding a console page
---------------------

Import from the modules (``bot.web.admin.auth``, ``bot.web.admin.pages``), not from this
package, which imports every page module.

1. Write a module here with ``router = APIRouter()`` and its routes under ``/admin/...``.
   Every request to it is already checked (``install`` adds the router behind
   ``CONSOLE_CHECKS``): a signed-out browser is sent to ``/admin/sign-in``; a POST needs the
   session's CSRF token and comes from a coordinator (viewers get a page saying they cannot).
2. Take the signed-in member with ``staff: StaffDep`` (``staff.actor`` names them in the audit
   log: pass it as ``actor=`` to the ``schedules``/``surveys`` function that makes the change).
   ``CoordinatorDep`` (or ``require_coordinator``) also refuses a viewer on a GET, for a page
   that only prepares a change.
3. Answer with ``render(request, "web/admin/<name>.html", {...})``: the template extends
   ``web/admin/layout.html`` and fills ``{% block console %}``; every form that POSTs holds
   ``{{ csrf_field() }}``. ``message(request, title, text, link=(label, href))`` is a page
   that says what happened and what to do.
4. Add the module's router to ``PAGES`` below. The sections of the navigation are
   ``pages.NAV``; a page under a section's path is marked as in it.

Make changes through the same ``schedules``/``surveys`` functions as the CLI; never repeat
their rules here. A GET changes nothing; a preview is a GET.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, FastAPI

from bot.web.admin import (
    campaigns,
    certificates,
    dashboard,
    imports,
    outbox,
    people,
    register_link,
    reports,
    responses,
    sessions,
    sign_in,
)
from bot.web.admin.auth import (
    CoordinatorDep,
    StaffDep,
    check_post,
    require_coordinator,
    staff_member,
)
from bot.web.admin.errors import install_handlers
from bot.web.admin.pages import NAV, message, render

__all__ = [
    "NAV",
    "CoordinatorDep",
    "StaffDep",
    "install",
    "message",
    "render",
    "require_coordinator",
]

CONSOLE_CHECKS = [Depends(staff_member), Depends(check_post)]

PAGES: list[APIRouter] = [
    sign_in.signed_in,
    dashboard.router,
    sessions.router,
    imports.router,
    outbox.router,
    people.router,
    responses.router,
    campaigns.router,
    reports.router,
    register_link.router,
    certificates.router,
]


def install(app: FastAPI) -> None:
    """Add the console's pages and error pages to ``app``."""
    install_handlers(app)
    app.include_router(sign_in.public)
    for router in PAGES:
        app.include_router(router, dependencies=CONSOLE_CHECKS)
