"""Moving a partnership through time in tests: ticks at chosen local times, delivery, and what
went to whom. Delivery is real: the dispatcher renders every message and hands it to the email
channel (``.eml`` files in the mail folder unless the settings name an SMTP server)."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot.channels.registry import build_channels
from bot.dispatcher import DispatchReport, deliver_due
from bot.settings import Settings
from schedules.policy import Policy, default_policy
from schedules.tick import TickReport, tick
from surveys.models import (
    Booking,
    CourseSession,
    OutboxMessage,
    OutboxState,
    Person,
    Stage,
    SurveyInvitation,
)

LONDON = ZoneInfo("Europe/London")


def at(text: str) -> datetime:
    """``at("2026-03-09 09:30")``: a time in London, as the aware datetime it is."""
    return datetime.fromisoformat(text).replace(tzinfo=LONDON)


class Timeline:
    def __init__(self, engine: Engine, settings: Settings, policy: Policy | None = None):
        self.engine = engine
        self.settings = settings
        self.policy = policy or default_policy()
        self.last_delivery: DispatchReport | None = None

    def tick(
        self, when: str | datetime, *, deliver: bool = True, dry_run: bool = False
    ) -> TickReport:
        now = at(when) if isinstance(when, str) else when
        report = tick(
            self.engine,
            now=now,
            policy=self.policy,
            zone=LONDON,
            secret=self.settings.secret,
            dry_run=dry_run,
        )
        if deliver and not dry_run:
            self.last_delivery = asyncio.run(self._deliver(now))
            assert self.last_delivery.dead == 0, self.dead()
        return report

    async def _deliver(self, now: datetime) -> DispatchReport:
        channels = build_channels(self.settings)
        try:
            return await deliver_due(self.engine, self.settings, channels, now=now)
        finally:
            for channel in channels.values():
                await channel.close()

    def session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    def rows(self, **where: Any) -> list[OutboxMessage]:
        with self.session() as session:
            statement = select(OutboxMessage).order_by(col(OutboxMessage.id))
            for name, value in where.items():
                statement = statement.where(getattr(OutboxMessage, name) == value)
            return list(session.exec(statement).all())

    def dead(self) -> list[tuple[str, str | None]]:
        return [(row.idempotency_key, row.last_error) for row in self.rows(state=OutboxState.DEAD)]

    def sent(self, since: datetime | None = None) -> list[tuple[str, str, str | None]]:
        """What went out, as (recipient email, template, survey stage) in sending order."""
        with self.session() as session:
            statement = (
                select(OutboxMessage, Person, SurveyInvitation)
                .join(Person, col(Person.id) == col(OutboxMessage.person_id))
                .outerjoin(
                    SurveyInvitation,
                    col(SurveyInvitation.id) == col(OutboxMessage.invitation_id),
                )
                .where(OutboxMessage.state == OutboxState.SENT)
                .order_by(col(OutboxMessage.sent_at), col(OutboxMessage.id))
            )
            if since is not None:
                statement = statement.where(col(OutboxMessage.sent_at) >= since)
            return [
                (person.email, message.template, invitation.stage if invitation else None)
                for message, person, invitation in session.exec(statement).all()
            ]

    def sent_at(self, since: datetime | None = None) -> list[tuple[str, str, datetime]]:
        """(recipient email, template, when it went out, in London time)."""
        with self.session() as session:
            statement = (
                select(OutboxMessage, Person)
                .join(Person, col(Person.id) == col(OutboxMessage.person_id))
                .where(OutboxMessage.state == OutboxState.SENT)
                .order_by(col(OutboxMessage.sent_at), col(OutboxMessage.id))
            )
            if since is not None:
                statement = statement.where(col(OutboxMessage.sent_at) >= since)
            return [
                (person.email, message.template, message.sent_at.astimezone(LONDON))
                for message, person in session.exec(statement).all()
                if message.sent_at is not None
            ]

    def invitation(self, booking_ref: str, stage: Stage) -> SurveyInvitation:
        with self.session() as session:
            return session.exec(
                select(SurveyInvitation)
                .join(Booking, col(Booking.id) == col(SurveyInvitation.booking_id))
                .where(Booking.ref == booking_ref, SurveyInvitation.stage == stage)
            ).one()

    def invitations(self, booking_ref: str) -> dict[str, str]:
        """Each stage's invitation status for a booking."""
        with self.session() as session:
            rows = session.exec(
                select(SurveyInvitation)
                .join(Booking, col(Booking.id) == col(SurveyInvitation.booking_id))
                .where(Booking.ref == booking_ref)
            ).all()
            return {str(row.stage): str(row.status) for row in rows}

    def finish(self, booking_ref: str, stage: Stage, when: str) -> None:
        """The person answers every question of a survey and finishes it, as on the form."""
        from surveys import engine

        now = at(when)
        with self.session() as session:
            invitation = session.exec(
                select(SurveyInvitation)
                .join(Booking, col(Booking.id) == col(SurveyInvitation.booking_id))
                .where(Booking.ref == booking_ref, SurveyInvitation.stage == stage)
            ).one()
            while (view := engine.next_question(session, invitation)) is not None:
                value: str | list[str] = "An answer." if view.kind == "text" else view.options[0][0]
                if view.kind == "multiple":
                    value = [view.options[0][0]]
                engine.submit_answer(session, invitation, view.key, value, now=now, channel="web")
            engine.finish(session, invitation, now=now)
            session.commit()

    def move_session(self, ref: str, starts_at: datetime, ends_at: datetime) -> None:
        """A new time for a session, as the booking import records one."""
        with self.session() as session:
            row = session.exec(select(CourseSession).where(CourseSession.ref == ref)).one()
            row.previous_starts_at = row.starts_at
            row.starts_at, row.ends_at = starts_at, ends_at
            row.schedule_version += 1
            session.add(row)
            session.commit()
