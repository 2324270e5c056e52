"""Builds the FastAPI app; each area of the web app is a router in its own module."""

from __future__ import annotations

from fastapi import FastAPI, Response
from sqlalchemy import text
from sqlalchemy.engine import Engine

from bot.branding import logo_type
from bot.settings import Settings
from bot.templating import LOGO_PATH
from bot.web import admin, bookings, register, telegram_hook, unsubscribe
from bot.web import surveys as survey_form
from surveys.db import make_engine


def create_app(settings: Settings, engine: Engine | None = None) -> FastAPI:
    app = FastAPI(title="Evalbot", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.settings = settings
    app.state.engine = engine or make_engine(settings.database_url)
    app.include_router(survey_form.router)
    app.include_router(bookings.router)
    app.include_router(unsubscribe.router)
    app.include_router(register.router)
    app.include_router(telegram_hook.router)
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

    @app.get("/health")
    def health() -> dict[str, str]:
        """Alive and able to reach the database."""
        with app.state.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return {"status": "ok"}

    return app
