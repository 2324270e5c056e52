"""The one error handler: log first, then tell the person something went wrong.

Harmless Telegram answers (a tap answered too late, an edit to the same text) are swallowed by
their message; everything else is logged with the update that caused it.
"""

from __future__ import annotations

import logging

from telegram import Update
from telegram.error import BadRequest, Forbidden
from telegram.ext import ContextTypes

log = logging.getLogger("evalbot.telegram")

HARMLESS = (
    "message is not modified",
    "query is too old",
    "message to edit not found",
)
SORRY = "Sorry, something went wrong on our side. Please try again in a minute."


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Log the error, then apologise in the chat where it happened."""
    error = context.error
    if isinstance(error, BadRequest) and any(h in error.message.lower() for h in HARMLESS):
        log.debug("harmless Telegram answer: %s", error.message)
        return
    if isinstance(error, Forbidden):
        log.info("the person blocked the bot while it answered: %s", error.message)
        return
    log.error(
        "a Telegram update failed: %r",
        update.to_dict() if isinstance(update, Update) else update,
        exc_info=error,
    )
    if not isinstance(update, Update) or update.effective_chat is None:
        return
    try:
        if update.callback_query is not None:
            await update.callback_query.answer(SORRY, show_alert=True)
        else:
            await context.bot.send_message(update.effective_chat.id, SORRY)
    except Exception:
        log.exception("could not tell chat %s that its update failed", update.effective_chat.id)
