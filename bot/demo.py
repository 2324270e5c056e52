"""``evalbot demo``: the sample export played through a whole quarter on a simulated clock.

Everything runs for real, in a scratch SQLite database of its own inside the demo's folder: the
import, planning and the tick, the dispatcher rendering every message into the mail folder (never
SMTP or Telegram, whatever the settings say), delegates answering through the answering engine,
a late cancellation with a nominated replacement, registers with a no-show and its notices, a
reminder campaign, the impact surveys months later and the quarterly report. The delegates'
behaviour comes from a seeded random generator, so two runs give the same result.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot.channels.email import MailFolderChannel
from bot.dispatcher import Dispatcher
from bot.settings import Settings, load_settings
from schedules import campaigns
from schedules.attendance import close_register, mark
from schedules.cancellation import cancel_booking, nominate_replacement
from schedules.policy import Policy, load_policy
from schedules.tick import tick
from surveys import engine as answering
from surveys.db import make_engine, upgrade
from surveys.importer import import_file
from surveys.models import (
    Answer,
    Booking,
    BookingStatus,
    Channel,
    CourseSession,
    InvitationStatus,
    OutboxMessage,
    OutboxState,
    Person,
    Stage,
    SurveyInvitation,
)
from surveys.report import parse_quarter

SAMPLE = Path(__file__).resolve().parent.parent / "examples" / "bookings.csv"
LONDON = ZoneInfo("Europe/London")
START = datetime(2026, 11, 16, 9, 0, tzinfo=LONDON)  # a Monday, two weeks before the first course
DAYS = 160  # through the impact surveys of the December courses
TICK_TIMES = (time(8, 0), time(17, 0))  # on working days: the window's opening and near its end
# The scripted moments: a late cancellation, the manager's nomination, a reminder campaign.
LATE_AT = datetime(2026, 12, 7, 10, 0, tzinfo=LONDON)
NOMINATED_AT = datetime(2026, 12, 7, 13, 0, tzinfo=LONDON)
CAMPAIGN_AT = datetime(2026, 12, 10, 11, 0, tzinfo=LONDON)
QUARTER = "2026Q4"
SEED = 2026
ACTOR = "demo"
# How many answer each survey, as partnerships commonly see: most answer before and straight
# after a course, about half an impact survey months later.
# Trainers mostly send their report on a session.
ANSWER_RATES = {
    Stage.PRE: 0.75,
    Stage.END: 0.85,
    Stage.IMPACT: 0.55,
    Stage.MANAGER: 0.5,
    Stage.TRAINER: 0.8,
}
# Self-ratings (1-5) before and after: confidence grows with the course.
RATINGS = {
    Stage.PRE: ("2", "2", "3", "3", "4"),
    Stage.END: ("3", "4", "4", "4", "5"),
    Stage.IMPACT: ("3", "4", "4", "5", "5"),
    Stage.MANAGER: ("3", "4", "4", "5"),
    Stage.TRAINER: ("3", "4", "4", "5"),
}
TEXTS = (
    "Clearer about when and how to share information with other agencies.",
    "I now use the neglect toolkit with families on my caseload.",
    "The case studies made the thresholds real.",
    "More time for questions, please.",
)
LATE_CANCELLED = "BK-24006"  # Tom Ellis cancels after the cut-off; a colleague takes his place
NO_SHOW = "BK-24004"  # marked not attending, with no notice


class DemoError(Exception):
    """The demo cannot start (its folder is in use); nothing was written."""


@dataclass
class DemoResult:
    folder: Path
    database: Path
    mail_dir: Path
    report: Path
    steps: int = 0
    sent: Counter[str] = field(default_factory=Counter)  # messages delivered, by template
    answers: int = 0
    finished: Counter[str] = field(default_factory=Counter)  # surveys finished, by stage
    events: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"Played {self.steps} ticks from {START:%-d %B %Y} over {DAYS} days."]
        out += [f"  {event}" for event in self.events]
        out.append(f"Messages delivered: {sum(self.sent.values())}")
        out += [f"  {name}: {count}" for name, count in sorted(self.sent.items())]
        stages = ", ".join(f"{stage} {count}" for stage, count in sorted(self.finished.items()))
        out.append(f"Surveys finished: {stages}; answers saved: {self.answers}")
        out.append(f"Mail folder: {self.mail_dir}")
        out.append(f"Quarterly report ({QUARTER}): {self.report}")
        out.append(f"Scratch database: {self.database}")
        return out


def demo_settings(folder: Path) -> Settings:
    """The demo's own settings: its database and mail folder, the default policy, no relay."""
    return load_settings(
        database_url=f"sqlite:///{folder / 'demo.db'}",
        mail_dir=folder / "mail",
        partnership_name="Riverside Safeguarding Children Partnership (demo)",
        admin_email="training@partnership.example",
        reply_to="training@partnership.example",
        public_url="http://127.0.0.1:8000",
        secret_key="evalbot-demo-not-a-secret",
        smtp_host=None,
        telegram_token=None,
        timezone="Europe/London",
        quarters="calendar",
        policy={},
    )


def prepare(folder: Path) -> Path:
    """The demo's folder, new or empty; refuses one holding anything, so nothing is overwritten."""
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise DemoError(
            f"{folder} already exists and is not an empty folder; give a new one with --out"
        )
    folder.mkdir(parents=True, exist_ok=True)
    return folder.resolve()


def clock() -> list[datetime]:
    """Every moment the demo acts at, in order (UTC): two ticks each working day (nothing is
    sent at weekends) and the scripted moments."""
    days = (START.date() + timedelta(days=day) for day in range(DAYS))
    moments = {
        datetime.combine(day, at, tzinfo=LONDON)
        for day in days
        if day.weekday() < 5
        for at in TICK_TIMES
    }
    moments |= {START, LATE_AT, NOMINATED_AT, CAMPAIGN_AT}
    return sorted(moment.astimezone(UTC) for moment in moments if moment >= START)


class Demo:
    def __init__(self, folder: Path):
        self.settings = demo_settings(folder)
        self.policy: Policy = load_policy({})
        self.engine: Engine = make_engine(self.settings.database_url)
        self.random = random.Random(SEED)
        # The trainers' reports draw on their own stream, so the delegates' play out the same.
        self.trainer_random = random.Random(SEED + 1)
        self.result = DemoResult(
            folder=folder,
            database=folder / "demo.db",
            mail_dir=folder / "mail",
            report=folder / "report" / "report.html",
        )
        self.decided: dict[int, datetime | None] = {}  # invitation -> when it will be answered
        self.done_sessions: set[int] = set()
        self.scripted: set[str] = set()

    # -- the steps ---------------------------------------------------------------------------

    def setup(self) -> None:
        upgrade(self.engine)
        with Session(self.engine) as session:
            imported = import_file(
                session, SAMPLE, zone=LONDON, now=START.astimezone(UTC), actor=ACTOR
            )
            session.commit()
        self.result.events.append(
            f"Imported {imported.rows} bookings from {SAMPLE.name} "
            f"({imported.sessions.created} sessions)."
        )

    async def step(self, now: datetime, dispatcher: Dispatcher) -> None:
        self.script(now)
        tick(
            self.engine,
            now=now,
            policy=self.policy,
            zone=LONDON,
            secret=self.settings.secret,
            telegram=False,
        )
        await dispatcher.run_once(now)
        self.answer(now)
        self.registers(now)
        self.result.steps += 1

    # -- what people do ----------------------------------------------------------------------

    def script(self, now: datetime) -> None:
        """The late cancellation, its replacement and a reminder campaign, once each."""
        local = now.astimezone(LONDON)
        if local >= LATE_AT and "late" not in self.scripted:
            self.scripted.add("late")
            with Session(self.engine) as session:
                booking = self._booking(session, LATE_CANCELLED)
                outcome = cancel_booking(
                    session,
                    booking,
                    now=now,
                    policy=self.policy,
                    zone=LONDON,
                    secret=self.settings.secret,
                    actor=ACTOR,
                    reason="Called to a child protection conference",
                    admin_email=self.settings.admin_email,
                )
                session.commit()
            self.result.events.append(
                f"{local:%a %-d %b %H:%M}: {LATE_CANCELLED} cancelled ({outcome.status.value})."
            )
        if local >= NOMINATED_AT and "nominee" not in self.scripted:
            self.scripted.add("nominee")
            with Session(self.engine) as session:
                booking = self._booking(session, LATE_CANCELLED)
                delegate = session.get(Person, booking.delegate_id)
                domain = (delegate.email if delegate else "").partition("@")[2]
                replacement = nominate_replacement(
                    session,
                    booking,
                    name="Jo Reid",
                    email=f"jo.reid@{domain}",
                    now=now,
                    actor="demo:manager",
                    secret=self.settings.secret,
                )
                session.commit()
                ref = replacement.ref
            self.result.events.append(
                f"{local:%a %-d %b %H:%M}: the manager nominated Jo Reid ({ref})."
            )
        if (
            local >= datetime(2026, 12, 10, 11, 0, tzinfo=LONDON)
            and "campaign" not in self.scripted
        ):
            self.scripted.add("campaign")
            with Session(self.engine) as session:
                campaign = campaigns.run(
                    session,
                    "remind",
                    {"stage": "end"},
                    now=now,
                    actor=ACTOR,
                    policy=self.policy,
                    zone=LONDON,
                    secret=self.settings.secret,
                    contact=self.settings.admin_email,
                    telegram=False,
                )
                session.commit()
                queued = int(campaign.counts.get("queued", 0))
            self.result.events.append(
                f"{local:%a %-d %b %H:%M}: reminder campaign for the end-of-course survey "
                f"({queued} queued)."
            )

    def registers(self, now: datetime) -> None:
        """Each trainer marks and closes the register ten minutes after the session ends."""
        with Session(self.engine) as session:
            due = session.exec(
                select(CourseSession).where(
                    col(CourseSession.ends_at) <= now - timedelta(minutes=10),
                    col(CourseSession.register_closed_at).is_(None),
                )
            ).all()
            for course_session in due:
                assert course_session.id is not None
                bookings = session.exec(
                    select(Booking).where(
                        Booking.session_id == course_session.id,
                        Booking.status == BookingStatus.BOOKED,
                    )
                ).all()
                for booking in bookings:
                    status = (
                        BookingStatus.NO_SHOW if booking.ref == NO_SHOW else BookingStatus.ATTENDED
                    )
                    mark(session, booking, status, now=now, actor=ACTOR, policy=self.policy)
                close_register(session, course_session, now=now, actor=ACTOR, policy=self.policy)
                session.commit()
                no_shows = sum(1 for b in bookings if b.ref == NO_SHOW)
                self.result.events.append(
                    f"{now.astimezone(LONDON):%a %-d %b %H:%M}: register for "
                    f"{course_session.ref} closed: {len(bookings) - no_shows} attended, "
                    f"{no_shows} no-show."
                )

    def answer(self, now: datetime) -> None:
        """Delegates (and managers) answer some of the surveys that reached them, in their time."""
        with Session(self.engine) as session:
            reached = session.exec(
                select(SurveyInvitation)
                .join(OutboxMessage, col(OutboxMessage.invitation_id) == SurveyInvitation.id)
                .where(
                    SurveyInvitation.status == InvitationStatus.OPEN,
                    OutboxMessage.state == OutboxState.SENT,
                )
                .distinct()
            ).all()
            for invitation in reached:
                assert invitation.id is not None
                if invitation.id not in self.decided:
                    stage = Stage(invitation.stage)
                    chance = self._random(stage)
                    answers = chance.random() < ANSWER_RATES[stage]
                    delay = timedelta(hours=chance.uniform(1, 96))
                    self.decided[invitation.id] = now + delay if answers else None
                when = self.decided[invitation.id]
                if when is not None and when <= now and invitation.closes_at > now:
                    self._complete(session, invitation, now)
                    session.commit()

    def _complete(self, session: Session, invitation: SurveyInvitation, now: datetime) -> None:
        stage = Stage(invitation.stage)
        while (view := answering.next_question(session, invitation)) is not None:
            answering.submit_answer(
                session, invitation, view.key, self._choose(view, stage), now=now, channel="web"
            )
        answering.finish(session, invitation, now=now)
        self.result.finished[stage.value] += 1

    def _random(self, stage: Stage) -> random.Random:
        return self.trainer_random if stage == Stage.TRAINER else self.random

    def _choose(self, view: answering.QuestionView, stage: Stage) -> Any:
        chance = self._random(stage)
        values = [value for value, _ in view.options]
        if view.kind == "scale":
            return chance.choice([v for v in RATINGS[stage] if v in values] or values)
        if view.kind == "multiple":
            return chance.sample(values, k=min(len(values), chance.randint(1, 2)))
        if view.item == "trainer_attended":  # the trainer's count of who came
            return str(chance.randint(8, 20))
        if view.kind == "text":
            return None if view.optional and chance.random() < 0.4 else (chance.choice(TEXTS))
        return chance.choice(values)

    # -- the end -----------------------------------------------------------------------------

    def report(self, now: datetime) -> None:
        from bot.report import write_report

        with Session(self.engine) as session:
            files = write_report(
                session,
                parse_quarter(QUARTER, self.settings.quarters),
                self.result.report.parent,
                zone=LONDON,
                now=now,
                no_show_alert_rate=self.policy.no_show_alert_rate,
                partnership=self.settings.partnership_name,
            )
        self.result.report = files.html

    def tally(self) -> None:
        with Session(self.engine) as session:
            rows = session.exec(
                select(OutboxMessage.template, func.count())
                .where(OutboxMessage.state == OutboxState.SENT)
                .group_by(col(OutboxMessage.template))
            ).all()
            self.result.sent = Counter({template: int(count) for template, count in rows})
            self.result.answers = int(session.exec(select(func.count()).select_from(Answer)).one())

    def _booking(self, session: Session, ref: str) -> Booking:
        booking = session.exec(select(Booking).where(Booking.ref == ref)).one()
        return booking


async def play(folder: Path, progress: Callable[[int], None] | None = None) -> DemoResult:
    """Play the demo into ``folder`` (new or empty); ``progress`` is called with 1 per tick."""
    demo = Demo(prepare(folder))
    demo.setup()
    moments = clock()
    channel = MailFolderChannel(demo.settings)
    dispatcher = Dispatcher(
        demo.engine,
        demo.settings,
        {Channel.EMAIL: channel},
        clock=lambda: moments[0],
        database_thread=False,
    )
    try:
        for now in moments:
            await demo.step(now, dispatcher)
            if progress is not None:
                progress(1)
    finally:
        await channel.close()
    demo.report(moments[-1])
    demo.tally()
    demo.engine.dispose()
    return demo.result


def steps() -> int:
    """How many ticks the demo plays (for a progress bar's length)."""
    return len(clock())
