"""Builds the FastAPI app; each area of the web app is a router in its own module."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import text
from sqlalchemy.engine import Engine
from starlette.exceptions import HTTPException as StarletteHTTPException

from bot.branding import logo_type
from bot.settings import Settings
from bot.templating import LOGO_PATH
from bot.web import admin, bookings, offers, register, telegram_hook, texts, unsubscribe
from bot.web import surveys as survey_form
from bot.web.pages import page
from surveys.db import make_engine

_ERRORS = {
    404: ("Page not found", "There is no page at this address."),
    405: ("This page cannot do that", "This address does not accept that kind of request."),
}


def _web_page(settings: Settings, name: str, status: int = 200, **context: object) -> HTMLResponse:
    return page(settings, f"web/{name}.html", context, status)


class WebApp(FastAPI):
    """The FastAPI app, with Telegram's POSTs to the webhook answered ahead of its layers."""

    async def __call__(
        self, scope: telegram_hook.Scope, receive: telegram_hook.Receive, send: telegram_hook.Send
    ) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"].startswith(telegram_hook.PREFIX)
        ):
            await telegram_hook.serve(self.state, scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def create_app(settings: Settings, engine: Engine | None = None) -> FastAPI:
    app = WebApp(title="Evalbot", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.settings = settings
    app.state.engine = engine or make_engine(settings.database_url)
    app.include_router(survey_form.router)
    app.include_router(bookings.router)
    app.include_router(offers.router)
    app.include_router(unsubscribe.router)
    app.include_router(register.router)
    app.include_router(texts.router)
    admin.install(app)

    @app.get(LOGO_PATH, include_in_schema=False)
    def logo() -> Response:
        """The partnership's logo (EVALBOT_LOGO), for pages and emails."""
        if settings.logo is None:
            return Response(status_code=404)
        return Response(
            settings.logo.read_bytes(),
            media_type=logo_type(settings.logo),
            headers={"Cache-Control": "public, max-age=86400"},
        )

    @app.get("/", response_class=HTMLResponse)
    def home() -> HTMLResponse:
        """What this is: the partnership's training evaluation; links arrive by email."""
        return _web_page(settings, "home", page_title="Training evaluation")

    @app.exception_handler(StarletteHTTPException)
    async def error_page(request: Request, exc: StarletteHTTPException) -> Response:
        """A person's browser gets a page naming the training team; programs keep JSON."""
        wants_html = "text/html" in request.headers.get("accept", "")
        if not wants_html or exc.status_code not in _ERRORS:
            return await http_exception_handler(request, exc)
        title, message = _ERRORS[exc.status_code]
        return _web_page(settings, "error", exc.status_code, page_title=title, message=message)

    @app.get("/health")
    def health() -> dict[str, str]:
        """Alive and able to reach the database."""
        with app.state.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return {"status": "ok"}

    return app
