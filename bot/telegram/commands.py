"""The command list Telegram shows, ``/help``, and the answer to an unknown command."""

from __future__ import annotations

from telegram import BotCommand, Update
from telegram.ext import ContextTypes

from bot.telegram.context import chat_id, services
from bot.telegram.replies import Reply, deliver

EVERYONE = [
    BotCommand("surveys", "Surveys waiting for you"),
    BotCommand("bookings", "Your upcoming bookings, to see or cancel"),
    BotCommand("prefer", "Choose Telegram or email for your messages"),
    BotCommand("help", "What this bot can do"),
    BotCommand("stop", "Unlink this chat"),
]
TRAINERS = [BotCommand("register", "Mark today's register (trainers)")]
ADMINS = [
    BotCommand("stats", "Figures at a glance (admins)"),
    BotCommand("remind", "Preview and send a reminder campaign (admins)"),
]
ALL = EVERYONE + TRAINERS + ADMINS


async def help_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/help: what this chat can do."""
    svc = services(context)
    chat = chat_id(update)
    lines = ["<b>What I can do</b>", ""]
    lines += [f"/{c.command}: {c.description}" for c in EVERYONE]
    if svc.is_trainer(chat):
        lines += [f"/{c.command}: {c.description}" for c in TRAINERS]
    if svc.is_admin(chat):
        lines += [f"/{c.command}: {c.description}" for c in ADMINS]
    lines += [
        "",
        "When a survey is open I send you its questions one at a time: tap an answer, or type "
        "one when the question asks for words. You can stop at any point and carry on later, "
        "here or with the link in your email.",
    ]
    await deliver(update, context, Reply("\n".join(lines)))


async def unknown(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Any other command."""
    await deliver(update, context, Reply("I do not know that command. Send /help for the list."))
