"""Surveys in chat: one question at a time, through the same answering engine as the web form.

Buttons answer scales, choices and yes/no; a typed message answers a free-text question. Every
answer is saved as it is given, so a survey started here can be finished on the web form (and
the other way round), and a restarted bot loses nothing. The only chat state, the question a
typed reply answers, is a row of ``telegram_chat``.

A tap on a question that is no longer on screen and already answered (a double tap, an old
keyboard) changes nothing and says so; so does a tap on a closed survey.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select
from telegram import Update
from telegram.ext import ContextTypes

from bot.telegram import keyboards as kb
from bot.telegram.chat_pointer import forget, remember
from bot.telegram.context import Services, person_for_chat
from bot.telegram.html import escape
from bot.telegram.question_view import question_buttons, question_text, shown_answer
from bot.telegram.replies import Reply, respond
from bot.templating import local_time
from surveys import engine, tokens
from surveys.engine import AnswerError, QuestionView, Survey, availability, load_survey
from surveys.models import (
    Answer,
    InvitationStatus,
    LinkPurpose,
    Person,
    SurveyInvitation,
    TelegramChat,
)

CHANNEL = "telegram"
END = "~end"  # Back from the last look at the answers
VERBS = "avsmdkbnft"
PATTERN = rf"^[{VERBS}]:"
NOT_LINKED = (
    "This chat is not linked to anyone yet. Open the Telegram link in one of your emails "
    "from the training team, then try again."
)


# -- handlers ------------------------------------------------------------------------------------


async def list_surveys(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/surveys: the surveys waiting for this person, each with a button to start it."""
    await respond(update, context, waiting_surveys)


async def on_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A tap on a survey button: start, answer, toggle, skip, go back or keep an answer."""
    query = update.callback_query
    assert query is not None
    message_id = query.message.message_id if query.message is not None else None
    verb, args = kb.parse(query.data)
    await respond(update, context, tap, verb, args, message_id)


async def on_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A typed message: the answer to the free-text question on screen."""
    message = update.effective_message
    assert message is not None and message.text is not None
    await respond(update, context, typed, message.text)


# -- what they do ------------------------------------------------------------------------------


def waiting_surveys(session: Session, svc: Services, chat: int) -> Reply:
    person = person_for_chat(session, chat)
    if person is None:
        return Reply(NOT_LINKED)
    now = svc.now()
    invitations = open_invitations(session, person, now)
    if not invitations:
        return Reply("You have no surveys waiting. I will send you the next one when it opens.")
    lines = ["<b>Surveys waiting for you</b>", ""]
    rows: list[list[kb.Button]] = []
    for invitation in invitations:
        survey = _load(session, svc, invitation)
        answered, total = survey.progress()
        closes = local_time(invitation.closes_at, svc.settings.timezone, "%-d %B %Y")
        state = f"{answered} of {total} answered" if answered else f"{total} questions"
        lines.append(
            f"• <b>{escape(survey.title)}</b>: {escape(survey.course_title)} "
            f"({state}; open until {closes})"
        )
        verb = "Continue" if answered else "Start"
        rows.append([kb.button(f"{verb}: {survey.title}"[:60], "s", invitation.id)])
    return Reply("\n".join(lines), kb.markup(rows))


def open_invitations(session: Session, person: Person, now: datetime) -> list[SurveyInvitation]:
    """The person's invitations that can be answered now, closing soonest first."""
    candidates = session.exec(
        select(SurveyInvitation)
        .where(
            SurveyInvitation.person_id == person.id,
            col(SurveyInvitation.status).in_([InvitationStatus.PLANNED, InvitationStatus.OPEN]),
            SurveyInvitation.opens_at <= now,
            SurveyInvitation.closes_at > now,
        )
        .order_by(col(SurveyInvitation.closes_at), col(SurveyInvitation.id))
    ).all()
    return [invitation for invitation in candidates if availability(invitation, now) == "open"]


def tap(
    session: Session,
    svc: Services,
    chat: int,
    verb: str,
    args: list[str],
    message_id: int | None,
) -> Reply:
    if verb == "t":
        # "Answer here" under a survey message: the button carries the survey link's token.
        verb, args = "s", [str(_invitation_of_link(session, svc, args))]
    found = _chat_invitation(session, chat, args)
    if found is None:
        if person_for_chat(session, chat) is None:
            return Reply(toast=NOT_LINKED, alert=True)
        return Reply(toast="That button is out of date: send /surveys to see what is waiting.")
    invitation, state = found
    now = svc.now()
    closed = _closed_message(invitation, now)
    if closed is not None:
        return Reply(toast=closed, alert=True)
    if verb == "s":
        return _show_next(session, svc, chat, invitation, edit=False, now=now)
    if verb == "f":
        return _finish(session, svc, chat, invitation, now=now)
    if len(args) < 2:
        return Reply(toast="That button is out of date: send /surveys to see what is waiting.")
    key = _key(session, svc, invitation, args[1])
    if key is None:
        return Reply(toast="That question no longer applies; send /surveys to carry on.")
    on_screen = state is not None and state[0] == invitation.id and state[1] == key
    if key != END and not on_screen and _answered(session, invitation, key):
        return Reply(toast="You have already answered this question.")
    if verb == "m":
        return _toggle(session, svc, chat, invitation, key, args, message_id)
    if verb == "b":
        return _back(session, svc, chat, invitation, key, message_id)
    if verb == "n":
        return _show_next(session, svc, chat, invitation, edit=True, now=now)
    try:
        value = _value(session, svc, invitation, key, verb, args)
        survey = engine.submit_answer(
            session, invitation, key, value, now=now, channel=CHANNEL, directory=svc.directory
        )
    except AnswerError as exc:
        return Reply(toast=exc.message, alert=True)
    toast = "Skipped." if value is None else "Saved."
    return _show_next(
        session, svc, chat, invitation, edit=True, now=now, toast=toast, survey=survey
    )


def typed(session: Session, svc: Services, chat: int, text: str) -> Reply:
    found = session.execute(_TYPED, {"chat": chat}).first()
    if found is None:
        if person_for_chat(session, chat) is None:
            return Reply(NOT_LINKED)
        return Reply("To answer a survey, send /surveys. /help lists everything I can do.")
    state, invitation = found
    now = svc.now()
    closed = _closed_message(invitation, now)
    if closed is not None:
        forget(session, chat)
        return Reply(escape(closed))
    survey = _load(session, svc, invitation)
    try:
        view = survey.question(state.question_key or "")
    except AnswerError:
        return _show_next(session, svc, chat, invitation, edit=False, now=now)
    if view.kind != "text":
        note = "Please answer this question with the buttons under it."
        return _question_reply(session, chat, survey, view, note=note, edit=False)
    try:
        survey = engine.submit_answer(
            session, invitation, view.key, text, now=now, channel=CHANNEL, directory=svc.directory
        )
    except AnswerError as exc:
        return Reply(escape(exc.message))
    return _show_next(session, svc, chat, invitation, edit=False, now=now, survey=survey)


# -- helpers -------------------------------------------------------------------------------------


def _chat_invitation(
    session: Session, chat: int, args: list[str]
) -> tuple[SurveyInvitation, tuple[int | None, str | None] | None] | None:
    """The invitation a button names, if it belongs to this chat's person; and what the chat
    shows (its invitation and question key), if anything."""
    try:
        invitation_id = int(args[0])
    except (IndexError, ValueError):
        return None
    row = session.execute(_CHAT_INVITATION, {"invitation_id": invitation_id, "chat": chat}).first()
    if row is None:
        return None
    return row[0], ((row[2], row[3]) if row[1] is not None else None)


# Built once: building a joined ORM select costs more than running it.
_CHAT_INVITATION = (
    select(
        SurveyInvitation,
        TelegramChat.chat_id,
        TelegramChat.invitation_id,
        TelegramChat.question_key,
    )
    .join(Person, col(Person.id) == SurveyInvitation.person_id)
    .join(TelegramChat, col(TelegramChat.chat_id) == Person.telegram_chat_id, isouter=True)
    .where(
        SurveyInvitation.id == bindparam("invitation_id"),
        Person.telegram_chat_id == bindparam("chat"),
        col(Person.erased_at).is_(None),
    )
)
_TYPED = (
    select(TelegramChat, SurveyInvitation)
    .join(SurveyInvitation, col(SurveyInvitation.id) == TelegramChat.invitation_id)
    .join(Person, col(Person.id) == SurveyInvitation.person_id)
    .where(
        TelegramChat.chat_id == bindparam("chat"),
        Person.telegram_chat_id == bindparam("chat"),
        col(Person.erased_at).is_(None),
    )
)


def _invitation_of_link(session: Session, svc: Services, args: list[str]) -> int | None:
    link = tokens.resolve(session, LinkPurpose.SURVEY, args[0] if args else "", svc.now())
    return link.invitation_id if link is not None else None


def _closed_message(invitation: SurveyInvitation, now: datetime) -> str | None:
    try:
        engine.ensure_open(invitation, now)
    except AnswerError as exc:
        return exc.message
    return None


def _key(
    session: Session, svc: Services, invitation: SurveyInvitation, reference: str
) -> str | None:
    """The question key a button names (long keys travel as a hash; ``~end``: after the last)."""
    if not reference.startswith("~") or reference == END:
        return reference
    for step in _load(session, svc, invitation).steps():
        if kb.matches(step.key, reference):
            return step.key
    return None


def _answered(session: Session, invitation: SurveyInvitation, key: str) -> bool:
    found = session.exec(
        select(Answer.id).where(Answer.invitation_id == invitation.id, Answer.question_key == key)
    ).first()
    return found is not None


def _value(
    session: Session,
    svc: Services,
    invitation: SurveyInvitation,
    key: str,
    verb: str,
    args: list[str],
) -> str | list[str] | None:
    if verb == "k":
        return None
    if verb == "v":
        return args[2] if len(args) > 2 else None  # the option's value itself; the engine checks
    view = engine.question(session, invitation, key, directory=svc.directory)
    if verb == "d":
        picked = kb.chosen(args[2] if len(args) > 2 else "")
        return [value for index, (value, _) in enumerate(view.options) if index in picked]
    try:
        return view.options[int(args[2])][0]
    except (IndexError, ValueError):
        raise AnswerError("That is not one of the answers; choose one of the buttons.") from None


def _toggle(
    session: Session,
    svc: Services,
    chat: int,
    invitation: SurveyInvitation,
    key: str,
    args: list[str],
    message_id: int | None,
) -> Reply:
    survey = _load(session, svc, invitation)
    view = survey.question(key)
    mask = args[2] if len(args) > 2 else "0"
    remember(session, chat, invitation, key, message_id, svc.now())
    return _question_reply(session, chat, survey, view, mask=mask, edit=True, toast="")


def _back(
    session: Session,
    svc: Services,
    chat: int,
    invitation: SurveyInvitation,
    key: str,
    message_id: int | None,
) -> Reply:
    survey = _load(session, svc, invitation)
    if key == END:
        views = survey.answered_questions()
        view = views[-1] if views else None
    else:
        view = survey.previous_question(key)
    if view is None:
        return Reply(toast="This is the first question.")
    remember(session, chat, invitation, view.key, message_id, svc.now())
    return _question_reply(session, chat, survey, view, edit=True, toast="")


def _show_next(
    session: Session,
    svc: Services,
    chat: int,
    invitation: SurveyInvitation,
    *,
    edit: bool,
    now: datetime,
    toast: str | None = None,
    survey: Survey | None = None,
) -> Reply:
    """The next unanswered question, or the last look at the answers; ``survey`` is the one
    ``engine.submit_answer`` returned, if any, so it is not loaded a second time."""
    if survey is None:
        survey = _load(session, svc, invitation)
    view = survey.next_question()
    if view is None:
        remember(session, chat, invitation, None, None, now)
        return _review(survey, edit=edit, toast=toast)
    remember(session, chat, invitation, view.key, None, now)
    return _question_reply(session, chat, survey, view, edit=edit, toast=toast)


def _review(survey: Survey, *, edit: bool, toast: str | None) -> Reply:
    """Every answer for a last look, with Send and Back (as the web form's last page)."""
    views = survey.answered_questions()
    lines = [
        f"<b>{escape(survey.title)}</b>: {escape(survey.course_title)}",
        "That was the last question. Your answers:",
        "",
    ]
    for view in views:
        lines.append(f"{view.position}. {escape(view.text)}")
        lines.append(f"<i>{escape(shown_answer(view))}</i>")
    invitation_id = survey.invitation.id
    rows = [[kb.button("Send my answers", "f", invitation_id)]]
    if views:
        rows.append([kb.button("« Back", "b", invitation_id, "~end")])
    return Reply("\n".join(lines), kb.markup(rows), toast=toast, edit=edit)


def _finish(
    session: Session,
    svc: Services,
    chat: int,
    invitation: SurveyInvitation,
    *,
    now: datetime,
) -> Reply:
    try:
        finished = engine.finish(session, invitation, now=now, directory=svc.directory)
    except AnswerError as exc:
        if exc.key is None:
            return Reply(toast=exc.message, alert=True)
        survey = _load(session, svc, invitation)
        view = survey.question(exc.key)
        remember(session, chat, invitation, view.key, None, now)
        return _question_reply(
            session, chat, survey, view, edit=True, toast=exc.message, note=exc.message
        )
    survey = finished if finished is not None else _load(session, svc, invitation)
    name = session.execute(_PERSON_NAME, {"person_id": invitation.person_id}).scalar_one()
    forget(session, chat)
    lines = [
        f"<b>{escape(survey.title)}</b>: {escape(survey.course_title)}",
        "",
        f"Thank you, {escape(name)}. Your answers have been sent.",
    ]
    if survey.thanks:
        lines += ["", escape(survey.thanks)]
    lines += ["", "Send /surveys to see whether anything else is waiting."]
    return Reply("\n".join(lines), None, toast="Sent. Thank you!")


_PERSON_NAME = sa_select(col(Person.name)).where(col(Person.id) == bindparam("person_id"))


def _question_reply(
    session: Session,
    chat: int,
    survey: Survey,
    view: QuestionView,
    *,
    edit: bool,
    mask: str | None = None,
    toast: str | None = None,
    note: str | None = None,
) -> Reply:
    text = question_text(survey, view, note=note)
    keyboard = kb.markup(question_buttons(survey.invitation.id or 0, view, mask=mask))
    return Reply(text, keyboard, toast=toast, edit=edit)


def _load(session: Session, svc: Services, invitation: SurveyInvitation) -> Survey:
    return load_survey(session, invitation, directory=svc.directory)
