"""Builds the python-telegram-bot ``Application`` with every handler of Evalbot's bot.

Handlers answer private chats only. Updates are handled one at a time by default, in the order
Telegram sent them, so a double tap is always seen after the tap it repeats.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeAlias

from sqlalchemy.engine import Engine
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    MessageHandler,
    filters,
)

from bot.settings import Settings
from bot.telegram import admin, bookings, commands, linking, register, surveys
from bot.telegram.context import KEY, Services, system_clock
from bot.telegram.errors import on_error
from bot.telegram.transport import make_request

TelegramApp: TypeAlias = "Application[Any, Any, Any, Any, Any, Any]"


def build_application(
    settings: Settings,
    engine: Engine,
    *,
    clock: Callable[[], datetime] = system_clock,
    webhook: bool = False,
    in_thread: bool = True,
    concurrent_updates: bool | int = False,
) -> TelegramApp:
    """The bot: polling through PTB's updater, or (``webhook``) fed by ``bot.web.telegram_hook``."""
    assert settings.telegram_token is not None, "no EVALBOT_TELEGRAM_TOKEN"
    httpx = settings.telegram_transport == "httpx"
    builder = (
        ApplicationBuilder()
        .token(settings.telegram_token.get_secret_value())
        .request(make_request(connections=16, read_timeout=15, force_httpx=httpx))
        .get_updates_request(make_request(connections=1, read_timeout=40, force_httpx=httpx))
        .concurrent_updates(concurrent_updates)
    )
    if settings.telegram_api_url:
        builder = builder.base_url(settings.telegram_api_url)
    if webhook:
        builder = builder.updater(None)
    application = builder.build()
    application.bot_data[KEY] = Services(settings, engine, clock=clock, in_thread=in_thread)
    add_handlers(application)
    return application


def add_handlers(application: TelegramApp) -> None:
    private = filters.ChatType.PRIVATE
    command_handlers = {
        "start": linking.start,
        "stop": linking.stop,
        "prefer": linking.prefer,
        "help": commands.help_command,
        "surveys": surveys.list_surveys,
        "bookings": bookings.list_bookings,
        "register": register.show,
        "stats": admin.stats,
        "remind": admin.remind,
    }
    for name, callback in command_handlers.items():
        application.add_handler(CommandHandler(name, callback, filters=private))
    for pattern, callback in (
        (surveys.PATTERN, surveys.on_button),
        (bookings.PATTERN, bookings.on_button),
        (register.PATTERN, register.on_button),
        (admin.PATTERN, admin.on_button),
        (linking.PATTERN, linking.on_button),
    ):
        application.add_handler(CallbackQueryHandler(callback, pattern=pattern))
    application.add_handler(CallbackQueryHandler(stale_button))
    application.add_handler(MessageHandler(private & filters.COMMAND, commands.unknown))
    application.add_handler(MessageHandler(private & filters.TEXT, surveys.on_text))
    application.add_error_handler(on_error)


async def stale_button(update: object, context: object) -> None:
    """A button whose data no handler knows: an old keyboard from an earlier version."""
    from telegram import Update

    if isinstance(update, Update) and update.callback_query is not None:
        await update.callback_query.answer("That button is out of date.")
