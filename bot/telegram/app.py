"""Builds the python-telegram-bot ``Application`` with every handler of Evalbot's bot.

Handlers answer private chats only. Each chat's updates are handled one at a time, in the order
Telegram sent them, so a double tap is always seen after the tap it repeats; different chats'
updates are handled side by side (``ChatOrder``), so one waiting for the Bot API to answer does
not hold up the others.

When polling, ``getUpdates`` is not called again while the previous updates' database work still
waits for the worker thread (``PollingBot``): the updates that arrive while the thread works come
in one batch, whose database work goes to the thread in one hop (``Services.run``), instead of
one update a call, each paying its own request and hand-over.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from types import CoroutineType
from typing import Any, TypeAlias

from sqlalchemy.engine import Engine
from telegram import Update
from telegram.ext import (
    Application,
    ApplicationBuilder,
    BaseUpdateProcessor,
    CallbackQueryHandler,
    CommandHandler,
    ExtBot,
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
    concurrent_updates: bool | int | BaseUpdateProcessor | None = None,
) -> TelegramApp:
    """The bot: polling through PTB's updater, or (``webhook``) fed by ``bot.web.telegram_hook``.

    ``concurrent_updates`` defaults to ``ChatOrder()``; ``False`` handles every update in turn.
    """
    if concurrent_updates is None:
        concurrent_updates = ChatOrder()
    assert settings.telegram_token is not None, "no EVALBOT_TELEGRAM_TOKEN"
    httpx = settings.telegram_transport == "httpx"
    svc = Services(settings, engine, clock=clock, in_thread=in_thread)
    bot = PollingBot(
        settings.telegram_token.get_secret_value(),
        caught_up=svc.caught_up,
        # As many connections as chats answered at once: a call that waits for a free one costs
        # more than the call (the benchmark's 60 delegates, with 16: 10% more CPU an update).
        request=make_request(connections=64, read_timeout=15, force_httpx=httpx),
        get_updates_request=make_request(
            connections=1, read_timeout=40, force_httpx=httpx, updates=True
        ),
        **({"base_url": settings.telegram_api_url} if settings.telegram_api_url else {}),
    )
    builder = ApplicationBuilder().bot(bot).concurrent_updates(concurrent_updates)
    if webhook:
        builder = builder.updater(None)
    application = builder.build()
    application.bot_data[KEY] = svc
    add_handlers(application)
    return application


class PollingBot(ExtBot[None]):
    """The bot, whose ``getUpdates`` first waits until no database work waits for the thread."""

    __slots__ = ("_caught_up",)

    def __init__(self, token: str, *, caught_up: Callable[[], Awaitable[None]], **kwargs: Any):
        super().__init__(token, **kwargs)
        self._caught_up = caught_up

    async def get_updates(self, *args: Any, **kwargs: Any) -> tuple[Update, ...]:
        # The handlers of the updates just taken start on the next turns of the event loop.
        for _ in range(3):
            await asyncio.sleep(0)
        await self._caught_up()
        return await super().get_updates(*args, **kwargs)


class ChatOrder(BaseUpdateProcessor):
    """Each chat's updates one at a time and in order; different chats' updates side by side.

    Most of an update's time is spent waiting for the Bot API to answer the bot's calls (the
    edit, ``answerCallbackQuery``); meanwhile another chat's update can do its work. The
    database work itself never interleaves within the event loop (it has no ``await``), and
    ``Services.run`` keeps SQLite's transactions one at a time when they run on worker threads.
    """

    def __init__(self, max_concurrent_updates: int = 256):
        super().__init__(max_concurrent_updates)
        # the last update taken for each chat: the next one from that chat waits for it
        self._last: dict[int | None, asyncio.Future[None]] = {}

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        # The semaphore in ``process_update`` lets updates through in the order they came, and
        # this runs up to its first ``await`` at once, so each update queues behind its chat's
        # previous one in Telegram's order.
        chat = _chat_of(update)
        before = self._last.get(chat)
        mine: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._last[chat] = mine
        try:
            if before is not None and not before.done():
                await asyncio.shield(before)
            await coroutine
        finally:
            if isinstance(coroutine, CoroutineType) and coroutine.cr_frame is not None:
                coroutine.close()  # cancelled while waiting its turn: never started
            mine.set_result(None)
            if self._last.get(chat) is mine:
                del self._last[chat]

    async def initialize(self) -> None:
        pass

    async def shutdown(self) -> None:
        pass


def _chat_of(update: object) -> int | None:
    if isinstance(update, Update) and update.effective_chat is not None:
        return update.effective_chat.id
    return None


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
