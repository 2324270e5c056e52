"""Starting and stopping the bot inside ``evalbot run``: polling or webhook.

- ``polling`` (the default; one process per bot token): PTB's updater long-polls ``getUpdates``.
- ``webhook`` (several workers behind a load balancer): Telegram POSTs each update to
  ``<EVALBOT_PUBLIC_URL>/telegram/<secret path>`` with the ``X-Telegram-Bot-Api-Secret-Token``
  header; ``bot.web.telegram_hook`` checks both and puts the update on the application's queue.

Either way the handlers run in the event loop of the web app and the tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
from collections.abc import Callable
from datetime import datetime

from fastapi import FastAPI
from sqlalchemy.engine import Engine
from telegram import Bot, BotCommand, BotCommandScopeChat, Update
from telegram.error import InvalidToken, TelegramError

from bot.links import remember_telegram_username
from bot.settings import Settings
from bot.telegram import commands
from bot.telegram.app import TelegramApp, build_application
from bot.telegram.context import system_clock

log = logging.getLogger("evalbot.telegram")
ALLOWED_UPDATES = [Update.MESSAGE, Update.CALLBACK_QUERY]
RETRY_SECONDS = (5, 15, 60, 300)


def _derived(settings: Settings, label: str) -> str:
    return hmac.new(settings.secret, label.encode(), hashlib.sha256).hexdigest()


def webhook_secret(settings: Settings) -> str:
    """The ``X-Telegram-Bot-Api-Secret-Token`` Telegram must send (the setting, or derived)."""
    if settings.telegram_webhook_secret is not None:
        return settings.telegram_webhook_secret.get_secret_value()
    return _derived(settings, "telegram-webhook-secret")


def webhook_path(settings: Settings) -> str:
    """The secret path the webhook listens on, derived from the secrets."""
    return (
        "/telegram/" + _derived(settings, "telegram-webhook-path:" + webhook_secret(settings))[:32]
    )


def webhook_url(settings: Settings) -> str:
    return settings.public_url + webhook_path(settings)


async def register_commands(bot: Bot, settings: Settings) -> None:
    """Tell Telegram the command list: everyone's, and more for trainers' and admins' chats."""
    await bot.set_my_commands(commands.EVERYONE)
    extra: dict[int, list[BotCommand]] = {}
    for chat in settings.telegram_trainers:
        extra[chat] = commands.EVERYONE + commands.TRAINERS
    for chat in settings.telegram_admins:
        extra[chat] = commands.ALL
    for chat, listed in extra.items():
        try:
            await bot.set_my_commands(listed, scope=BotCommandScopeChat(chat))
        except TelegramError as exc:
            # A chat that has never written to the bot cannot be given its own list yet.
            log.warning("could not set the command list of chat %s: %s", chat, exc.message)


class TelegramService:
    """The bot as one of ``evalbot run``'s services (``start`` and ``stop``)."""

    name = "telegram"

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        *,
        app: FastAPI | None = None,
        clock: Callable[[], datetime] = system_clock,
    ):
        self.settings = settings
        self.webhook = settings.telegram_mode == "webhook"
        self.web_app = app
        self.application: TelegramApp = build_application(
            settings, engine, clock=clock, webhook=self.webhook
        )
        self._retry: asyncio.Task[None] | None = None
        self.running = False

    async def start(self) -> None:
        """Connect and begin taking updates; if Telegram is unreachable, keep trying meanwhile."""
        try:
            await self._start()
        except InvalidToken as exc:
            raise RuntimeError(
                f"EVALBOT_TELEGRAM_TOKEN: Telegram refuses this bot token ({exc.message}). "
                "Check the token BotFather gave you."
            ) from exc
        except TelegramError as exc:
            log.error("Telegram is unreachable (%s); trying again in the background", exc)
            self._retry = asyncio.create_task(self._keep_trying(), name="telegram-start")

    async def _keep_trying(self) -> None:
        for attempt in range(10_000):
            await asyncio.sleep(RETRY_SECONDS[min(attempt, len(RETRY_SECONDS) - 1)])
            try:
                await self._start()
                log.info("Telegram is reachable again; the bot is running")
                return
            except TelegramError as exc:
                log.warning("Telegram is still unreachable: %s", exc)

    async def _start(self) -> None:
        application = self.application
        if not application._initialized:
            await application.initialize()
        bot = application.bot
        remember_telegram_username(bot.username)
        await register_commands(bot, self.settings)
        if self.webhook:
            await bot.set_webhook(
                webhook_url(self.settings),
                secret_token=webhook_secret(self.settings),
                allowed_updates=ALLOWED_UPDATES,
            )
            if self.web_app is not None:
                self.web_app.state.telegram = application
        else:
            await bot.delete_webhook()
            assert application.updater is not None
            await application.updater.start_polling(
                allowed_updates=ALLOWED_UPDATES, timeout=30, poll_interval=0
            )
        await application.start()
        self.running = True
        log.info(
            "Telegram bot @%s is running (%s)",
            bot.username,
            "webhook" if self.webhook else "polling",
        )

    async def stop(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retry
        application = self.application
        if self.web_app is not None and getattr(self.web_app.state, "telegram", None):
            self.web_app.state.telegram = None
        if application.updater is not None and application.updater.running:
            await application.updater.stop()
        if application.running:
            await application.stop()
        if application._initialized:
            await application.shutdown()
        self.running = False


def telegram_service(
    settings: Settings,
    engine: Engine,
    app: FastAPI | None = None,
    clock: Callable[[], datetime] = system_clock,
) -> TelegramService:
    return TelegramService(settings, engine, app=app, clock=clock)
