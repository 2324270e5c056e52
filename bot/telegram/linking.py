"""Tying a chat to a person: ``/start <token>`` from a deep link, ``/stop``, and ``/prefer``.

Every email to someone without a linked chat carries ``https://t.me/<bot>?start=<token>``, a
token for the subject ``person:<id>:<telegram_link_generation>``. Using it links the chat and
bumps the generation, so each link works once; a later email carries a new one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlmodel import Session, col, select
from telegram import Update
from telegram.ext import ContextTypes

from bot.links import telegram_subject
from bot.telegram import keyboards as kb
from bot.telegram.context import Services, actor, person_for_chat
from bot.telegram.html import escape
from bot.telegram.replies import Reply, respond
from surveys import audit, tokens
from surveys.models import (
    Booking,
    Channel,
    CourseSession,
    Deliverability,
    Link,
    LinkPurpose,
    OutboxMessage,
    OutboxState,
    Person,
    TelegramChat,
)

PATTERN = r"^p:"
UNKNOWN_LINK = (
    "That link has already been used, or it is not a link of ours. Use the Telegram link in "
    "your most recent email from the training team."
)


async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/start: link this chat with the token of a deep link, or say hello."""
    token = context.args[0] if context.args else None
    await respond(update, context, link_chat, token, actor(update))


async def stop(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/stop: unlink this chat; messages go by email again."""
    await respond(update, context, unlink_chat, actor(update))


async def prefer(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/prefer [telegram|email]: choose where messages go, or show the choice."""
    choice = context.args[0].lower() if context.args else None
    await respond(update, context, set_preference, choice, actor(update))


async def on_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A tap on "Send them here" or "Keep email"."""
    query = update.callback_query
    assert query is not None
    _, args = kb.parse(query.data)
    choice = args[0] if args else None
    await respond(update, context, set_preference, choice, actor(update))


def link_chat(session: Session, svc: Services, chat: int, token: str | None, who: str) -> Reply:
    now = svc.now()
    current = person_for_chat(session, chat)
    if token is None:
        if current is not None:
            back = _reachable_again(session, current, now, who)
            return Reply(
                f"Hello {escape(current.name)}. This chat is linked to your record with "
                f"{escape(svc.settings.partnership_name)}. "
                + ("Your messages can come to this chat again. " if back else "")
                + "Send /help to see what I can do."
            )
        return Reply(
            f"Hello. I am the training evaluation assistant of "
            f"{escape(svc.settings.partnership_name)}. To link this chat to your bookings, "
            "open the Telegram link in one of your emails from the training team."
        )
    if current is not None and _ever_theirs(svc, current, token):
        return Reply(f"This chat is already linked to you, {escape(current.name)}.")
    link = tokens.resolve(session, LinkPurpose.TELEGRAM, token, now)
    person = session.get(Person, link.person_id) if link and link.person_id else None
    if person is None or person.erased_at is not None or not _current(svc, person, token):
        return Reply(UNKNOWN_LINK)
    assert link is not None
    if current is not None and current.id != person.id:
        _unlink(session, current, now)
        session.flush()  # the chat id is unique: free it before giving it to someone else
    moved_from = person.telegram_chat_id
    person.telegram_chat_id = chat
    person.telegram_status = Deliverability.OK
    person.telegram_status_reason = None
    person.telegram_opt_out = False
    person.telegram_link_generation += 1
    person.updated_at = now
    session.add(person)
    _use_up_links(session, person, now)
    _audit(session, person, "telegram.linked", now, who, chat_id=chat, replaced_chat=moved_from)
    return _welcome(session, svc, person)


def _reachable_again(session: Session, person: Person, now: datetime, who: str) -> bool:
    """A person who blocked the bot and came back (Telegram's Restart sends /start)."""
    if person.telegram_status == Deliverability.OK:
        return False
    person.telegram_status = Deliverability.OK
    person.telegram_status_reason = None
    person.updated_at = now
    session.add(person)
    _audit(session, person, "telegram.reachable", now, who)
    return True


def _audit(
    session: Session, person: Person, action: str, now: datetime, who: str, **detail: Any
) -> None:
    """Record ``action`` on the person's chat link in the audit log."""
    audit.record(
        session, at=now, actor=who, action=action, entity="person", entity_id=person.id, **detail
    )


def _current(svc: Services, person: Person, token: str) -> bool:
    """Whether ``token`` is the person's link of the current generation (each works once)."""
    assert person.id is not None
    subject = telegram_subject(person.id, person.telegram_link_generation)
    return tokens.make_token(svc.settings.secret, LinkPurpose.TELEGRAM, subject) == token


def _ever_theirs(svc: Services, person: Person, token: str) -> bool:
    """Whether ``token`` was one of the person's deep links (someone tapping it again)."""
    assert person.id is not None
    return any(
        tokens.make_token(svc.settings.secret, LinkPurpose.TELEGRAM, telegram_subject(person.id, n))
        == token
        for n in range(person.telegram_link_generation + 1)
    )


def _use_up_links(session: Session, person: Person, now: datetime) -> None:
    session.execute(
        update(Link)
        .where(
            col(Link.person_id) == person.id,
            col(Link.purpose) == LinkPurpose.TELEGRAM,
            col(Link.used_at).is_(None),
        )
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )


def _welcome(session: Session, svc: Services, person: Person) -> Reply:
    delegate = session.exec(select(Booking.id).where(Booking.delegate_id == person.id)).first()
    manager = session.exec(select(Booking.id).where(Booking.manager_id == person.id)).first()
    trainer = session.exec(
        select(CourseSession.id).where(CourseSession.trainer_id == person.id)
    ).first()
    things = []
    if delegate is not None or (manager is None and trainer is None):
        things += [
            "your pre-course questionnaire, end-of-course evaluation and impact survey, "
            "which you can answer right here",
            "reminders while a survey is open",
            "notices about your bookings, and /bookings to see or cancel them",
        ]
    if manager is not None:
        things += [
            "notices about the bookings you approved for your team (late cancellations and "
            "no-shows)",
            "the manager's impact survey, where the partnership asks for it",
        ]
    if trainer is not None:
        things.append("reminders to close the registers of the sessions you train")
    lines = [
        f"Hello {escape(person.name)}! This chat is now linked to your record with "
        f"{escape(svc.settings.partnership_name)}.",
        "",
        "Here you can receive:",
        *(f"• {escape(thing)}" for thing in things),
        "",
    ]
    lines += _channel_lines(person)
    lines += ["", "Send /help to see what I can do, or /stop to unlink this chat."]
    return Reply("\n".join(lines), _preference_keyboard(person))


def _channel_lines(person: Person) -> list[str]:
    if person.preferred_channel == Channel.TELEGRAM:
        return [f"Your messages come here; email ({escape(person.email)}) is the fallback."]
    return [
        f"Your messages go by email to {escape(person.email)}. "
        "Would you like them to come to this chat instead? Email stays the fallback."
    ]


def _preference_keyboard(person: Person) -> kb.Keyboard | None:
    if person.preferred_channel == Channel.TELEGRAM:
        return kb.markup([[kb.button("Send them by email instead", "p", "email")]])
    return kb.markup(
        [[kb.button("Send them here", "p", "telegram"), kb.button("Keep email", "p", "email")]]
    )


def set_preference(
    session: Session, svc: Services, chat: int, choice: str | None, who: str
) -> Reply:
    person = person_for_chat(session, chat)
    if person is None:
        return Reply(toast="This chat is not linked yet.", alert=True, text=UNKNOWN_LINK_HELP)
    if choice not in ("telegram", "email"):
        return Reply("\n".join(_channel_lines(person)), _preference_keyboard(person), edit=False)
    wanted = Channel(choice)
    now = svc.now()
    if person.preferred_channel != wanted:
        person.preferred_channel = wanted
        person.updated_at = now
        session.add(person)
        _audit(session, person, "telegram.preference", now, who, channel=wanted.value)
    if wanted == Channel.TELEGRAM:
        text = (
            "Done: from now on your surveys, reminders and notices come to this chat. If "
            f"Telegram cannot reach you, they go by email to {escape(person.email)}."
        )
    else:
        text = f"Done: your messages go by email to {escape(person.email)}."
    return Reply(text, toast="Saved.")


UNKNOWN_LINK_HELP = (
    "To link this chat, open the Telegram link in one of your emails from the training team."
)


def unlink_chat(session: Session, svc: Services, chat: int, who: str) -> Reply:
    person = person_for_chat(session, chat)
    if person is None:
        return Reply("This chat is not linked to anyone, so there is nothing to stop.")
    now = svc.now()
    moved = _unlink(session, person, now)
    _audit(session, person, "telegram.unlinked", now, who, chat_id=chat, moved_to_email=moved)
    return Reply(
        f"This chat is no longer linked, {escape(person.name)}. Your messages go by email to "
        f"{escape(person.email)}. To link a chat again, use the Telegram link in your next email."
    )


def _unlink(session: Session, person: Person, now: datetime) -> int:
    """Forget the person's chat; their unsent Telegram messages go by email instead."""
    chat = person.telegram_chat_id
    person.telegram_chat_id = None
    person.preferred_channel = Channel.EMAIL
    person.updated_at = now
    session.add(person)
    if chat is not None:
        state = session.get(TelegramChat, chat)
        if state is not None:
            session.delete(state)
    result = session.execute(
        update(OutboxMessage)
        .where(
            col(OutboxMessage.person_id) == person.id,
            col(OutboxMessage.channel) == Channel.TELEGRAM,
            col(OutboxMessage.state).in_([OutboxState.PENDING, OutboxState.FAILED]),
        )
        .values(channel=Channel.EMAIL, recipient=person.email)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)
