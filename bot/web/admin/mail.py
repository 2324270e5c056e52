"""The sign-in email: queued through the outbox like every message, then delivered at once.

Under ``evalbot run`` the dispatcher is woken (``app.state.wake_dispatcher``, set by the
runner) and claims the message straight away. A process with no dispatcher (``evalbot web``,
tests) delivers what is due itself, on a thread, after the response has gone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime

from fastapi import FastAPI
from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.settings import Settings
from surveys.models import Channel, LinkPurpose, MessageKind, OutboxMessage
from surveys.staff import SIGN_IN_VALID, StaffMember, issue_sign_in, sign_in_subject

TEMPLATE = "staff-sign-in"


def queue_sign_in(
    session: Session, settings: Settings, member: StaffMember, now: datetime
) -> OutboxMessage:
    """Record a new sign-in link for ``member`` and queue the email that carries it."""
    subject = sign_in_subject(member)
    link = issue_sign_in(session, settings.secret, member, subject=subject, now=now)
    row = OutboxMessage(
        idempotency_key=f"staff-sign-in:{link.token_hash[:40]}",
        person_id=None,
        channel=Channel.EMAIL,
        recipient=member.email,
        template=TEMPLATE,
        context={
            "recipient_name": member.name,
            "valid_minutes": int(SIGN_IN_VALID.total_seconds() // 60),
            "links": {"sign_in": [LinkPurpose.STAFF_SIGN_IN.value, subject]},
        },
        kind=MessageKind.NOTICE,
        due_at=now,
        available_at=now,
    )
    session.add(row)
    return row


async def deliver_now(app: FastAPI, now: datetime) -> None:
    """Send the queued sign-in email now rather than at the next poll (a background task)."""
    wake: Callable[[], None] | None = getattr(app.state, "wake_dispatcher", None)
    if wake is not None:
        wake()
        return
    await asyncio.to_thread(_deliver_here, app.state.engine, app.state.settings, now)


def _deliver_here(engine: Engine, settings: Settings, now: datetime) -> None:
    from bot.channels.registry import build_channels
    from bot.dispatcher import deliver_due

    async def run() -> None:
        channels = build_channels(settings)
        try:
            await deliver_due(engine, settings, channels, now=now)
        finally:
            for channel in channels.values():
                await channel.close()

    asyncio.run(run())
