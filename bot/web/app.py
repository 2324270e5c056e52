"""Builds the FastAPI app; each area of the web app is a router in its own module."""

from __future__ import annotations

from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.engine import Engine

from bot.settings import Settings
from bot.web import bookings, telegram_hook, texts, unsubscribe
from bot.web import surveys as survey_form
from surveys.db import make_engine


def create_app(settings: Settings, engine: Engine | None = None) -> FastAPI:
    app = FastAPI(title="Evalbot", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.settings = settings
    app.state.engine = engine or make_engine(settings.database_url)
    app.include_router(survey_form.router)
    app.include_router(bookings.router)
    app.include_router(unsubscribe.router)
    app.include_router(telegram_hook.router)
    app.include_router(texts.router)

    @app.get("/health")
    def health() -> dict[str, str]:
        """Alive and able to reach the database."""
        with app.state.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return {"status": "ok"}

    return app
