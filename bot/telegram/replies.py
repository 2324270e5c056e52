"""Sending a handler's answer: a new message, an edit of the tapped one, and the tap's toast.

Handlers decide *what* to say as a ``Reply`` (HTML parse mode, every user-supplied string
escaped with ``bot.telegram.html.escape``); this module says it. A tap is always answered
(``answerCallbackQuery``), so the person's client stops its spinner, and a long text is split.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVarTuple

from sqlmodel import Session
from telegram import Bot, Message, Update
from telegram.error import BadRequest
from telegram.ext import ContextTypes

from bot.telegram.context import Services, chat_id, services
from bot.telegram.html import split, units
from bot.telegram.keyboards import Keyboard

# As the Bot API's JSON: a ``LinkPreviewOptions`` would be turned into this on every call.
NO_PREVIEW: dict[str, Any] = {"is_disabled": True}
TOAST_LIMIT = 200  # what answerCallbackQuery takes, in UTF-16 code units
Args = TypeVarTuple("Args")


@dataclass(frozen=True)
class Reply:
    """What to say: ``text`` (HTML) with an optional keyboard, and a toast for a tap."""

    text: str | None = None
    keyboard: Keyboard | None = None
    toast: str | None = None  # shown briefly over the chat after a tap
    alert: bool = False  # the toast as a dialog the person must dismiss
    edit: bool = True  # after a tap: replace the tapped message (else send a new one)


async def deliver(update: Update, context: ContextTypes.DEFAULT_TYPE, reply: Reply) -> None:
    """Say ``reply`` in the chat ``update`` came from; a tap is answered last, once the chat
    shows the outcome, so its spinner stops when there is something to see."""
    query = update.callback_query
    if query is not None and reply.edit and isinstance(query.message, Message):
        if reply.text is not None:
            await _edit(query.message, reply)
    elif reply.text is not None and update.effective_chat is not None:
        await send(context, update.effective_chat.id, reply.text, reply.keyboard)
    if query is not None:
        toast = clip(reply.toast, TOAST_LIMIT) if reply.toast else None
        await query.answer(toast, show_alert=reply.alert)


async def respond(
    update: Update,
    context: ContextTypes.DEFAULT_TYPE,
    work: Callable[[Session, Services, int, *Args], Reply],
    *args: *Args,
) -> None:
    """Run ``work(session, services, chat, *args)`` in one transaction for the chat ``update``
    came from, and deliver the reply it returns."""
    svc = services(context)
    chat = chat_id(update)
    reply = await svc.run(lambda session: work(session, svc, chat, *args))
    await deliver(update, context, reply)


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` UTF-16 code units (as Telegram counts), with an ellipsis."""
    if units(text) <= limit:
        return text
    kept = text[: limit - 1]
    while units(kept) > limit - 1:
        kept = kept[:-1]
    return kept + "…"


async def send(
    context: ContextTypes.DEFAULT_TYPE,
    chat: int,
    text: str,
    keyboard: Keyboard | None = None,
) -> None:
    """Send ``text`` (split when over Telegram's limit); the keyboard goes on the last part."""
    parts = split(text)
    for index, part in enumerate(parts):
        await _call(context.bot, "sendMessage", chat, part, keyboard, last=index == len(parts) - 1)


async def _edit(message: Message, reply: Reply) -> None:
    assert reply.text is not None
    parts = split(reply.text)
    bot = message.get_bot()
    chat = message.chat_id
    try:
        await _call(
            bot,
            "editMessageText",
            chat,
            parts[0],
            reply.keyboard,
            last=len(parts) == 1,
            message_id=message.message_id,
        )
    except BadRequest as exc:
        # A second tap on a button that already did its work asks for the same text again.
        if "not modified" not in str(exc).lower():
            raise
    for index, part in enumerate(parts[1:], start=1):
        await _call(bot, "sendMessage", chat, part, reply.keyboard, last=index == len(parts) - 1)


async def _call(
    bot: Bot,
    method: str,
    chat: int,
    text: str,
    keyboard: Keyboard | None,
    *,
    last: bool,
    message_id: int | None = None,
) -> None:
    """One send or edit, its answer left unparsed: nothing here reads the message back."""
    arguments: dict[str, Any] = {
        "chat_id": chat,
        "text": text,
        "parse_mode": "HTML",
        "link_preview_options": NO_PREVIEW,
    }
    if message_id is not None:
        arguments["message_id"] = message_id
    if keyboard is not None and last:
        arguments["reply_markup"] = keyboard.as_json()
    # The bot's own ``_post``, under ``do_api_request``: its answer is not parsed into objects
    # nobody reads, and no warning is raised (and filtered) suggesting the named method, which
    # cost as much as the rest of the call.
    await bot._post(method, arguments)
