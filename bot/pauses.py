"""Paused channels: a channel whose own fault stops every message, not one recipient's.

When a relay refuses our sender (Microsoft 365's ``554 5.2.252 SendAsDenied``), refuses the
message (``552``, ``5.3.x``, ``5.7.x`` after DATA), refuses the login or token, or gives the same
refusal for several different recipients in a row, marking each recipient undeliverable would
suppress the whole list. Instead the channel pauses:

- its messages stay pending (not claimed, no attempt counted) in every worker, because the pause
  is a row of ``channel_pause`` that each claim reads;
- the coordinator is told once, by another channel where one can reach them (each Telegram
  admin when email paused; ``EVALBOT_ADMIN_EMAIL`` when another channel paused), and the pause
  shows in ``evalbot status``, ``evalbot outbox`` and the staff console (``channel_pauses``);
- it resumes when ``evalbot outbox test-email`` gets through, or when an admin says so
  (``evalbot outbox resume CHANNEL``).

Nothing here reads the clock: every function takes ``now``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Table, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from bot.settings import Settings
from surveys.audit import record as audit
from surveys.models import Channel, ChannelPause, MessageKind, OutboxMessage, OutboxState

log = logging.getLogger("evalbot.dispatcher")

OUTBOX: Table = OutboxMessage.__table__  # type: ignore[attr-defined]

NOTICE_TEMPLATE = "channel-paused"


@dataclass(frozen=True)
class PauseView:
    """A pause in force, as the status command and the staff console show it."""

    channel: str
    since: datetime
    reason: str
    outbox_id: int | None

    @property
    def resume_hint(self) -> str:
        test = (
            " or a successful `evalbot outbox test-email ADDRESS`"
            if self.channel == "email"
            else ""
        )
        return f"`evalbot outbox resume {self.channel}`{test}"


def channel_pauses(session: Session) -> list[PauseView]:
    """The channels paused now: which, since when and why (for the dashboard and status)."""
    rows = session.exec(
        select(ChannelPause)
        .where(col(ChannelPause.resumed_at).is_(None))
        .order_by(col(ChannelPause.paused_at))
    ).all()
    return [PauseView(r.channel, r.paused_at, r.reason, r.outbox_id) for r in rows]


def paused_channels(session: Session) -> set[str]:
    """The names of the channels paused now (a claim reads this every time)."""
    return set(
        session.exec(
            select(ChannelPause.channel).where(col(ChannelPause.resumed_at).is_(None))
        ).all()
    )


def pause_channel(
    session: Session,
    channel: str,
    *,
    reason: str,
    now: datetime,
    outbox_id: int | None = None,
) -> bool:
    """Pause ``channel``; True when this call paused it (it was not paused already), so that
    only one worker tells the coordinator. Part of the caller's transaction."""
    table = ChannelPause.__table__  # type: ignore[attr-defined]
    values: dict[str, Any] = {
        "paused_at": now,
        "reason": reason[:4000],
        "outbox_id": outbox_id,
        "resumed_at": None,
        "resumed_by": None,
    }
    changed = session.execute(
        update(table)
        .where(table.c.channel == channel, table.c.resumed_at.is_not(None))
        .values(**values)
    )
    if changed.rowcount == 0:  # type: ignore[attr-defined]
        if session.get(ChannelPause, channel) is not None:
            return False  # paused already, by this worker or another
        try:
            with session.begin_nested():
                session.add(ChannelPause(channel=channel, **values))
        except IntegrityError:
            return False  # another worker paused it at the same moment
    audit(
        session,
        at=now,
        actor="system",
        action="channel paused",
        entity="channel",
        channel=channel,
        reason=reason[:2000],
        outbox_id=outbox_id,
    )
    log.error("the %s channel is paused: %s", channel, reason)
    return True


def resume_channel(
    session: Session, channel: str, *, now: datetime, actor: str, why: str
) -> PauseView | None:
    """End the pause of ``channel`` (None when it was not paused); its waiting messages are
    due at once. Part of the caller's transaction."""
    pause = session.get(ChannelPause, channel)
    if pause is None or pause.resumed_at is not None:
        return None
    view = PauseView(pause.channel, pause.paused_at, pause.reason, pause.outbox_id)
    pause.resumed_at = now
    pause.resumed_by = actor
    session.add(pause)
    session.execute(
        update(OUTBOX)
        .where(
            OUTBOX.c.channel == channel,
            OUTBOX.c.state.in_([OutboxState.PENDING.value, OutboxState.FAILED.value]),
            OUTBOX.c.available_at > now,
        )
        .values(available_at=now)
    )
    audit(
        session,
        at=now,
        actor=actor,
        action="channel resumed",
        entity="channel",
        channel=channel,
        why=why,
        paused_since=pause.paused_at.isoformat(),
    )
    return view


def tell_coordinator(
    session: Session,
    settings: Settings,
    *,
    channel: str,
    reason: str,
    now: datetime,
    working: set[Channel],
) -> int:
    """Queue the notice of a pause to the coordinator by every other channel that can reach
    them: each Telegram admin, and ``EVALBOT_ADMIN_EMAIL`` unless email is what paused.
    Returns how many notices were queued (none when no other channel reaches anyone)."""
    context = {
        "channel": channel,
        "reason": reason[:1000],
        "paused_at": now.isoformat(),
        "resume_command": f"evalbot outbox resume {channel}",
        "recipient_name": "Training coordinator",
    }
    stamp = f"{now:%Y%m%dT%H%M%S}"
    recipients: list[tuple[Channel, str]] = []
    if channel != Channel.TELEGRAM.value and Channel.TELEGRAM in working:
        recipients += [(Channel.TELEGRAM, str(chat)) for chat in settings.telegram_admins]
    if channel != Channel.EMAIL.value and Channel.EMAIL in working and settings.admin_email:
        recipients.append((Channel.EMAIL, settings.admin_email.strip().lower()))
    for by, address in recipients:
        session.add(
            OutboxMessage(
                idempotency_key=f"channel-paused:{channel}:{stamp}:{by.value}:{address}",
                person_id=None,
                channel=by,
                recipient=address,
                template=NOTICE_TEMPLATE,
                context=context,
                kind=MessageKind.NOTICE,
                due_at=now,
                available_at=now,
                state=OutboxState.PENDING,
            )
        )
    if not recipients:
        log.error(
            "the %s channel is paused and no other channel reaches the coordinator: "
            "see `evalbot status`",
            channel,
        )
    return len(recipients)
