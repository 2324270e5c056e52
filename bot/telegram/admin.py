"""Admin commands: ``/stats`` and ``/remind`` (a reminder campaign: preview, then Confirm).

Only chats listed in ``EVALBOT_TELEGRAM_ADMINS`` may use them; anyone else is refused, and the
refusal is logged with the chat id.

``/remind`` takes the campaign's scope as ``name=value`` words (``stage``, ``session``,
``course``, ``agency``, ``date_from``, ``date_to``; quote values with spaces) and shows what
``schedules.campaigns.preview`` finds. The preview is recorded in the audit log and the Confirm
button names that entry, so Confirm runs exactly the scope that was shown, once, within an hour,
and only for the admin who asked.
"""

from __future__ import annotations

import logging
import shlex
from datetime import timedelta

from sqlalchemy import func
from sqlmodel import Session, col, select
from telegram import Update
from telegram.ext import ContextTypes

from bot.telegram import keyboards as kb
from bot.telegram.context import Services, actor, chat_id, services
from bot.telegram.html import escape
from bot.telegram.replies import Reply, deliver
from bot.templating import local_time
from schedules import campaigns
from schedules.campaigns import CampaignError
from surveys import audit
from surveys.models import (
    AuditEntry,
    Booking,
    BookingStatus,
    CourseSession,
    InvitationStatus,
    OutboxMessage,
    OutboxState,
    Person,
    SessionStatus,
    Stage,
    SurveyInvitation,
)

log = logging.getLogger("evalbot.telegram")
PREVIEW_LIFE = timedelta(hours=1)
PATTERN = r"^x[yn]:"
REFUSED = "Only the admins configured for this bot can use that command."


async def refuse(update: Update, context: ContextTypes.DEFAULT_TYPE, what: str) -> bool:
    """Refuse and log unless the chat is an admin's; True when refused."""
    chat = chat_id(update)
    if services(context).is_admin(chat):
        return False
    log.warning("refused %s from chat %s: not a configured admin", what, chat)
    if update.callback_query is not None:
        await deliver(update, context, Reply(toast=REFUSED, alert=True))
    else:
        await deliver(update, context, Reply(REFUSED))
    return True


async def stats(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/stats: sessions, bookings, surveys and the outbox at a glance."""
    if await refuse(update, context, "/stats"):
        return
    svc = services(context)
    reply = await svc.run(lambda session: figures(session, svc))
    await deliver(update, context, reply)


def figures(session: Session, svc: Services) -> Reply:
    now = svc.now()
    people = session.exec(select(func.count()).select_from(Person)).one()
    linked = session.exec(
        select(func.count()).where(col(Person.telegram_chat_id).is_not(None))
    ).one()
    upcoming = session.exec(
        select(func.count()).where(
            CourseSession.starts_at > now, CourseSession.status == SessionStatus.SCHEDULED
        )
    ).one()
    by_status = dict(
        session.exec(select(Booking.status, func.count()).group_by(col(Booking.status))).all()
    )
    invitations = session.exec(
        select(SurveyInvitation.stage, SurveyInvitation.status, func.count()).group_by(
            col(SurveyInvitation.stage), col(SurveyInvitation.status)
        )
    ).all()
    outbox = dict(
        session.exec(
            select(OutboxMessage.state, func.count()).group_by(col(OutboxMessage.state))
        ).all()
    )
    lines = [
        f"<b>{escape(svc.settings.partnership_name)}</b>",
        f"People: {people} ({linked} in Telegram)",
        f"Sessions to come: {upcoming}",
        "Bookings: "
        + ", ".join(f"{by_status.get(s.value, 0)} {escape(s.value)}" for s in BookingStatus),
        "",
        "<b>Surveys</b> (finished of sent)",
    ]
    for stage in Stage:
        counts = {status: n for st, status, n in invitations if st == stage.value}
        sent = sum(
            counts.get(s.value, 0)
            for s in (InvitationStatus.OPEN, InvitationStatus.FINISHED, InvitationStatus.CLOSED)
        )
        done = counts.get(InvitationStatus.FINISHED.value, 0)
        rate = f" ({done * 100 // sent}%)" if sent else ""
        lines.append(f"{escape(stage.value)}: {done} of {sent}{rate}")
    lines += [
        "",
        "<b>Outbox</b>: "
        + ", ".join(
            f"{outbox.get(s.value, 0)} {s.value}"
            for s in (OutboxState.PENDING, OutboxState.FAILED, OutboxState.DEAD, OutboxState.SENT)
        ),
    ]
    return Reply("\n".join(lines))


async def remind(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/remind [stage=end] [session=REF] [course="Title"] [agency="Name"]: preview, then Confirm."""
    if await refuse(update, context, "/remind"):
        return
    svc = services(context)
    message = update.effective_message
    text = message.text if message is not None and message.text else ""
    who = actor(update)
    reply = await svc.run(lambda session: preview(session, svc, text, who))
    await deliver(update, context, reply)


async def on_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Confirm or cancel a campaign previewed by /remind."""
    if await refuse(update, context, "a campaign button"):
        return
    query = update.callback_query
    assert query is not None
    svc = services(context)
    verb, args = kb.parse(query.data)
    who = actor(update)
    if verb == "xn":
        await deliver(update, context, Reply("Not sent: the campaign was cancelled.", toast=""))
        return
    reply = await svc.run(lambda session: confirm(session, svc, args, who))
    await deliver(update, context, reply)


def parse_scope(text: str) -> dict[str, str]:
    """``/remind stage=end course="Working Together"`` to ``{"stage": "end", "course": ...}``."""
    try:
        words = shlex.split(text)[1:]
    except ValueError as exc:
        raise CampaignError(f"cannot read that: {exc}") from None
    scope: dict[str, str] = {}
    for word in words:
        name, equals, value = word.partition("=")
        if not equals or not value.strip():
            raise CampaignError(
                f"{word!r} is not name=value; for example /remind stage=end session=WT-2026-03-16"
            )
        scope[name.strip().lower()] = value.strip()
    return scope


def preview(session: Session, svc: Services, text: str, who: str) -> Reply:
    now = svc.now()
    try:
        scope = parse_scope(text)
        found = campaigns.preview(
            session,
            "remind",
            scope,
            now=now,
            policy=svc.policy,
            zone=svc.settings.zone,
            contact=svc.settings.admin_email,
            definitions_dir=svc.directory,
        )
    except CampaignError as exc:
        return Reply(escape(f"Cannot preview that campaign: {exc}"))
    if found.to_send == 0:
        return Reply(escape(f"Nothing to send: {found}"))
    entry = audit.record(
        session,
        at=now,
        actor=who,
        action="campaign.previewed",
        entity="campaign",
        kind="remind",
        scope=found.scope,
        to_send=found.to_send,
    )
    session.flush()
    when = local_time(found.send_at, svc.settings.timezone)
    text = "\n".join(
        [
            "<b>Reminder campaign</b>",
            escape(str(found)),
            f"The messages go from {escape(when)}.",
            "",
            "Send it?",
        ]
    )
    keyboard = kb.markup([[kb.button("Confirm", "xy", entry.id), kb.button("Cancel", "xn")]])
    return Reply(text, keyboard)


def confirm(session: Session, svc: Services, args: list[str], who: str) -> Reply:
    now = svc.now()
    try:
        entry = session.get(AuditEntry, int(args[0]))
    except (IndexError, ValueError):
        entry = None
    if entry is None or entry.action != "campaign.previewed" or entry.actor != who:
        return Reply(toast="That button is out of date: send /remind again.", alert=True)
    if now - entry.at > PREVIEW_LIFE:
        return Reply(toast="That preview is over an hour old: send /remind again.", alert=True)
    done = session.exec(
        select(AuditEntry.id).where(
            AuditEntry.action == "campaign.confirmed", AuditEntry.entity_id == entry.id
        )
    ).first()
    if done is not None:
        return Reply(toast="This campaign was already sent.")
    try:
        campaign = campaigns.run(
            session,
            "remind",
            entry.detail.get("scope", {}),
            now=now,
            actor=who,
            policy=svc.policy,
            zone=svc.settings.zone,
            secret=svc.settings.secret,
            contact=svc.settings.admin_email,
            definitions_dir=svc.directory,
        )
    except CampaignError as exc:
        return Reply(escape(f"Not sent: {exc}"), toast="Not sent.")
    audit.record(
        session,
        at=now,
        actor=who,
        action="campaign.confirmed",
        entity="audit_log",
        entity_id=entry.id,
        campaign_id=campaign.id,
    )
    return Reply(escape(f"Queued: {campaigns.describe(campaign)}"), toast="Campaign queued.")
