"""Admin campaigns: who each reaches, dry runs, confirmation, opt-outs, never twice, the record.

The partnership on Tuesday 3 March 2026, 10:00 (inside the sending window):

- Working Together ran on 24 February (WT-2026-02-24) for Alice, Chloé, Ed, Fay and Gus, and
  Neglect Matters on 26 February (NM-2026-02-26) for Alice and Chloé. Their end-of-course
  surveys are open, except Chloé's: she finished the first, and the second has closed.
- Ed has opted out of email and has no Telegram; Fay has opted out of email but her Telegram
  chat is linked; Gus's address bounced. Tariq is the trainer; Bob and Dev are managers.
- Working Together runs again on 20 March (WT-2026-03-20): 6 places, Alice and Ed booked,
  Chloé cancelled.
"""

from __future__ import annotations

import email
import email.policy
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, col, select
from typer.testing import CliRunner

from bot.cli import app
from bot.rendering import render
from bot.settings import Settings
from schedules import campaigns
from schedules.campaigns import CampaignError, Scope, scope_key
from schedules.policy import load_policy
from schedules.refresher import queue_refresher_reminders
from surveys.models import (
    AuditEntry,
    Booking,
    BookingStatus,
    Campaign,
    Channel,
    CourseSession,
    Deliverability,
    InvitationStatus,
    Link,
    LinkPurpose,
    MessageKind,
    OutboxMessage,
    OutboxState,
    Person,
    Sector,
    Stage,
    SurveyInvitation,
)
from surveys.tokens import token_hash
from tests.conftest import World, utc

NOW = utc("2026-03-03 10:00")
NOW_TEXT = "2026-03-03T10:00"
LONDON_ZONE = "Europe/London"


class Partnership:
    def __init__(self, world: World):
        self.world = world
        self.session = world.session
        w = world
        self.riverside = w.agency()
        self.northgate = w.agency("Northgate NHS Trust", Sector.HEALTH)
        self.alice = w.person("Alice Okafor", "alice@riverside.example", self.riverside)
        self.bob = w.person("Bob Whitfield", "bob@riverside.example", self.riverside)
        self.chloe = w.person(
            "Chloé O'Brien <Health & Care>", "chloe@northgate.example", self.northgate
        )
        self.dev = w.person("Dev Patel", "dev@northgate.example", self.northgate)
        self.ed = w.person("Ed Marsh", "ed@riverside.example", self.riverside, email_opt_out=True)
        self.fay = w.person("Fay Lund", "fay@northgate.example", self.northgate,
                            email_opt_out=True, telegram_chat_id=555001)  # fmt: skip
        self.gus = w.person("Gus Ward", "gus@riverside.example", self.riverside,
                            email_status=Deliverability.UNUSABLE)  # fmt: skip
        self.tariq = w.person("Tariq Aziz", "tariq@partnership.example")
        self.wt = w.course()
        self.nm = w.course("Neglect Matters", ["spot neglect early"])
        self.s1 = w.course_session(self.wt, "WT-2026-02-24", utc("2026-02-24 09:30"),
                                   trainer_id=self.tariq.id)  # fmt: skip
        self.s2 = w.course_session(self.nm, "NM-2026-02-26", utc("2026-02-26 09:30"))
        self.s3 = w.course_session(self.wt, "WT-2026-03-20", utc("2026-03-20 09:30"),
                                   trainer_id=self.tariq.id)  # fmt: skip
        self.s3.max_places = 6
        self.invitations: dict[str, SurveyInvitation] = {}
        for person in (self.alice, self.chloe, self.ed, self.fay, self.gus):
            status = InvitationStatus.FINISHED if person is self.chloe else InvitationStatus.OPEN
            self.end_survey(self.s1, person, status)
        self.end_survey(self.s2, self.alice, InvitationStatus.OPEN, closes=utc("2026-03-12 16:30"))
        # Still "open" until the tick closes it, but closed by the time any message could go.
        self.end_survey(self.s2, self.chloe, InvitationStatus.OPEN, closes=utc("2026-03-03 09:00"))
        self.booking(self.s3, self.alice, BookingStatus.BOOKED)
        self.booking(self.s3, self.ed, BookingStatus.BOOKED)
        self.booking(self.s3, self.chloe, BookingStatus.CANCELLED)
        pre = self.invitation(
            self.session_booking(self.s3, self.alice), Stage.PRE, InvitationStatus.OPEN,
            opens=utc("2026-03-13 08:00"), closes=utc("2026-03-20 09:30"),
        )  # fmt: skip
        pre.opens_at = utc("2026-03-01 08:00")  # opened early: the admin moved it
        self.session.commit()

    def booking(
        self, course_session: CourseSession, person: Person, status: BookingStatus
    ) -> Booking:
        ref = f"BK-{course_session.ref}-{person.id}"
        return self.world.booking(course_session, person, self.bob, ref, status=status)

    def session_booking(self, course_session: CourseSession, person: Person) -> Booking:
        return self.session.exec(
            select(Booking).where(
                Booking.session_id == course_session.id, Booking.delegate_id == person.id
            )
        ).one()

    def invitation(
        self, booking: Booking, stage: Stage, status: InvitationStatus, *, opens: datetime,
        closes: datetime,
    ) -> SurveyInvitation:  # fmt: skip
        invitation = SurveyInvitation(
            booking_id=booking.id, person_id=booking.delegate_id, stage=stage, opens_at=opens,
            closes_at=closes, status=status,
            finished_at=opens + timedelta(hours=1) if status == InvitationStatus.FINISHED else None,
        )  # fmt: skip
        self.session.add(invitation)
        self.session.flush()
        return invitation

    def end_survey(
        self, course_session: CourseSession, person: Person, status: InvitationStatus,
        closes: datetime | None = None,
    ) -> SurveyInvitation:  # fmt: skip
        booking = self.booking(course_session, person, BookingStatus.ATTENDED)
        invitation = self.invitation(
            booking, Stage.END, status, opens=course_session.ends_at,
            closes=closes or course_session.ends_at + timedelta(days=14),
        )  # fmt: skip
        self.invitations[f"{course_session.ref}:{person.name.split()[0]}"] = invitation
        return invitation


@pytest.fixture
def p(world: World) -> Partnership:
    return Partnership(world)


@pytest.fixture
def cli(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("EVALBOT_DATABASE_URL", database_url)
    monkeypatch.setenv("EVALBOT_MAIL_DIR", str(tmp_path / "mail"))
    monkeypatch.setenv("EVALBOT_ADMIN_EMAIL", "training@partnership.example")
    return CliRunner()


def preview(db: Session, kind: str, **scope: Any) -> campaigns.CampaignPreview:
    return campaigns.preview(db, kind, scope, now=NOW)


def counts(session: Session) -> tuple[int, int, int]:
    return (
        len(session.exec(select(Campaign)).all()),
        len(session.exec(select(OutboxMessage)).all()),
        len(session.exec(select(AuditEntry)).all()),
    )


# Who a reminder reaches --------------------------------------------------------------------------


def test_reminder_audience_follows_the_scope(session: Session, p: Partnership) -> None:
    found = preview(session, "remind", stage="end")
    # Alice (email) and Fay (Telegram, having refused email); Ed refused email and has no
    # Telegram; Gus's address bounced; Chloé has nothing open any more.
    assert found.channels == {"email": 1, "telegram": 1}
    assert (found.opted_out, found.unreachable, found.already_messaged) == (1, 1, 0)
    assert found.names == ["Alice Okafor", "Fay Lund"]

    assert preview(session, "remind", stage="end", session="nm-2026-02-26").names == [
        "Alice Okafor"
    ]
    assert preview(session, "remind", stage="end", course="neglect  matters").names == [
        "Alice Okafor"
    ]
    northgate = preview(session, "remind", stage="end", agency="Northgate NHS Trust")
    assert (northgate.names, northgate.channels["telegram"]) == (["Fay Lund"], 1)
    assert preview(session, "remind", stage="end", date_from="2026-02-25").names == ["Alice Okafor"]
    before = preview(session, "remind", stage="end", date_to="2026-02-24")
    assert (before.to_send, before.opted_out, before.unreachable) == (2, 1, 1)
    assert preview(session, "remind", stage="pre").names == ["Alice Okafor"]
    assert preview(session, "remind", stage="impact").to_send == 0
    # Telegram's /remind asks with no scope: every open survey, one message per person.
    everyone = preview(session, "remind")
    assert everyone.to_send == 2 and "to message" in str(everyone)


def test_scope_mistakes_are_explained(session: Session, p: Partnership) -> None:
    with pytest.raises(CampaignError, match="stage 'during'"):
        preview(session, "remind", stage="during")
    with pytest.raises(CampaignError, match="no 'sector' scope"):
        preview(session, "remind", sector="health")
    with pytest.raises(CampaignError, match="2026-13-01"):
        preview(session, "remind", date_from="2026-13-01")
    with pytest.raises(CampaignError, match="needs the session"):
        preview(session, "places")
    with pytest.raises(CampaignError, match="no session has the ref 'XX-1'"):
        preview(session, "places", session="XX-1")


def test_the_same_kind_and_scope_is_the_same_campaign() -> None:
    a = scope_key("remind", Scope.parse("remind", {"stage": "end", "course": "Neglect Matters"}))
    b = scope_key("remind", Scope.parse("remind", {"course": " neglect matters ", "stage": "END"}))
    c = scope_key("remind", Scope.parse("remind", {"stage": "pre", "course": "Neglect Matters"}))
    assert a == b != c and len(a) == 64


# Running one from the command line --------------------------------------------------------------


def test_dry_run_prints_the_audience_and_writes_nothing(
    session: Session, p: Partnership, cli: CliRunner
) -> None:
    result = cli.invoke(
        app, ["campaign", "remind", "--stage", "end", "--dry-run", "--now", NOW_TEXT]
    )
    assert result.exit_code == 0, result.output
    out = result.output
    assert re.search(r"to message:\s+2", out) and re.search(r"by email:\s+1", out)
    assert re.search(r"by telegram:\s+1", out) and re.search(r"opted out:\s+1", out)
    assert re.search(r"no usable address:\s+1", out)
    assert "first: Alice Okafor, Fay Lund" in out
    assert "Dry run: nothing was queued or sent." in out
    assert counts(session) == (0, 0, 0)


def test_a_real_run_asks_first_and_stops_on_no(
    session: Session, p: Partnership, cli: CliRunner
) -> None:
    result = cli.invoke(
        app, ["campaign", "remind", "--stage", "end", "--now", NOW_TEXT], input="n\n"
    )
    assert result.exit_code == 0
    assert "Queue 2 messages now?" in result.output and "Nothing sent." in result.output
    assert counts(session) == (0, 0, 0)


def test_a_run_queues_sends_records_and_never_messages_anyone_twice(
    session: Session, p: Partnership, cli: CliRunner, tmp_path: Path
) -> None:
    result = cli.invoke(
        app, ["campaign", "remind", "--stage", "end", "--now", NOW_TEXT], input="y\n"
    )
    assert result.exit_code == 0, result.output
    assert "Queueing" in result.output and "Sending" in result.output
    assert "Recorded as campaign 1: 2 messages queued." in result.output

    campaign = session.exec(select(Campaign)).one()
    assert campaign.kind == "remind" and campaign.scope == {"stage": "end"}
    assert campaign.created_by.startswith("cli:") and campaign.created_at == NOW
    assert campaign.counts == {
        "audience": 4, "queued": 2, "email": 1, "telegram": 1, "opted_out": 1,
        "unreachable": 1, "already_messaged": 0,
    }  # fmt: skip
    rows = session.exec(select(OutboxMessage).order_by(col(OutboxMessage.id))).all()
    assert [(r.person_id, r.channel, r.kind, r.template) for r in rows] == [
        (p.alice.id, Channel.EMAIL, MessageKind.CAMPAIGN, "survey-reminder"),
        (p.fay.id, Channel.TELEGRAM, MessageKind.CAMPAIGN, "survey-reminder"),
    ]
    assert rows[0].idempotency_key == f"campaign:{campaign.scope_key}:person:{p.alice.id}"
    # Alice is reminded of the survey that closes first, and her reminder went out.
    assert rows[0].invitation_id == p.invitations["WT-2026-02-24:Alice"].id
    assert rows[0].state == OutboxState.SENT and rows[0].due_at == NOW
    audit = session.exec(select(AuditEntry).where(AuditEntry.action == "campaign.run")).one()
    assert audit.entity_id == campaign.id and audit.detail["counts"]["queued"] == 2

    sent = list((tmp_path / "mail").glob("*.eml"))
    assert len(sent) == 1
    message = email.message_from_bytes(sent[0].read_bytes(), policy=email.policy.default)
    assert message["To"].endswith("<alice@riverside.example>")
    assert "Reminder" in message["Subject"] and "Working Together" in message["Subject"]
    body = message.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    assert "http://127.0.0.1:8000/s/" in body and "unsubscribe" in body.lower()
    assert message["List-Unsubscribe"]

    # Run it again: nobody is messaged twice.
    again = cli.invoke(app, ["campaign", "remind", "--stage", "end", "--now", NOW_TEXT, "--yes"])
    assert again.exit_code == 0, again.output
    assert re.search(r"already messaged by this campaign:\s+2", again.output)
    assert "Nobody to message" in again.output
    assert len(session.exec(select(OutboxMessage)).all()) == 2

    # Someone new in scope is reached by the next run, and only they are.
    hana = p.world.person("Hana Sato", "hana@riverside.example", p.riverside)
    p.end_survey(p.s1, hana, InvitationStatus.OPEN)
    session.commit()
    third = cli.invoke(app, ["campaign", "remind", "--stage", "end", "--now", NOW_TEXT, "--yes"])
    assert third.exit_code == 0, third.output
    assert "Recorded as campaign 2: 1 message queued." in third.output
    new = session.exec(select(OutboxMessage).where(OutboxMessage.campaign_id == 2)).all()
    assert [row.person_id for row in new] == [hana.id]
    # A different scope is a different campaign, so Alice can be reached by it.
    other = cli.invoke(app, ["campaign", "remind", "--stage", "end", "--course", "Neglect Matters",
                             "--now", NOW_TEXT, "--yes"])  # fmt: skip
    assert other.exit_code == 0 and "1 message queued" in other.output


def test_outside_the_sending_window_messages_wait(
    session: Session, p: Partnership, cli: CliRunner
) -> None:
    saturday = "2026-03-07T11:00"
    result = cli.invoke(app, ["campaign", "remind", "--stage", "end", "--now", saturday, "--yes"])
    assert result.exit_code == 0, result.output
    assert "they go out from Mon 9 Mar 2026, 08:00" in result.output
    rows = session.exec(select(OutboxMessage)).all()
    assert {row.due_at for row in rows} == {utc("2026-03-09 08:00")}
    assert {row.state for row in rows} == {OutboxState.PENDING}


def test_campaign_list_shows_delivery_and_responses_within_a_week(
    session: Session, p: Partnership, cli: CliRunner
) -> None:
    assert (
        cli.invoke(
            app, ["campaign", "remind", "--stage", "end", "--now", NOW_TEXT, "--yes"]
        ).exit_code
        == 0
    )
    alice = p.invitations["WT-2026-02-24:Alice"]
    session.refresh(alice)
    alice.status, alice.finished_at = InvitationStatus.FINISHED, NOW + timedelta(days=2)
    fay = p.invitations["WT-2026-02-24:Fay"]
    session.refresh(fay)
    fay.status, fay.finished_at = InvitationStatus.FINISHED, NOW + timedelta(days=9)  # too late
    session.commit()
    result = cli.invoke(app, ["campaign", "list"])
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if line.strip().startswith("1 "))
    # queued 2, sent 1 (Alice by email; Telegram is not set up here), opted out 1, responded 1
    assert re.search(r"remind\s+2\s+1\s+\d+\s+1\s+1\s+stage end / cli:", line), line
    (result_row,) = campaigns.results(session)
    assert (result_row.queued, result_row.delivered, result_row.responded) == (2, 1, 1)


# Last-minute places ------------------------------------------------------------------------------


def test_places_go_to_people_who_have_not_booked(
    session: Session, p: Partnership, settings: Settings
) -> None:
    found = preview(session, "places", session="WT-2026-03-20")
    # 6 places, 2 held (Chloé cancelled): 4 free. Alice, Ed and Chloé have booked it and Tariq
    # trains it; Bob and Dev by email, Fay by Telegram, Gus has no usable address.
    assert found.free_places == 4
    assert found.names == ["Bob Whitfield", "Dev Patel", "Fay Lund"]
    assert (found.channels, found.unreachable, found.opted_out) == (
        {"email": 2, "telegram": 1},
        1,
        0,
    )
    assert preview(session, "places", session="WT-2026-03-20", agency="northgate nhs trust").names == [
        "Dev Patel", "Fay Lund"
    ]  # fmt: skip
    assert preview(session, "places", session="WT-2026-03-20", sector="health").to_send == 2

    campaign = campaigns.run(session, "places", {"session": "WT-2026-03-20"}, now=NOW,
                             actor="cli:test", secret=settings.secret,
                             contact="training@partnership.example")  # fmt: skip
    session.commit()
    assert campaign.counts["queued"] == 3 and campaign.counts["free_places"] == 4
    row = session.exec(select(OutboxMessage).where(OutboxMessage.person_id == p.dev.id)).one()
    assert row.template == "campaign-places" and row.kind == MessageKind.CAMPAIGN
    mail = render(settings, row, channel=Channel.EMAIL, recipient=row.recipient,
                  recipient_name=p.dev.name, now=NOW)  # fmt: skip
    assert mail.subject == "4 places free on Working Together to Safeguard Children, 20 March"
    assert "Friday 20 March 2026, 09:30 to 16:30" in mail.text
    assert "training@partnership.example" in mail.text and "Unsubscribe" in mail.html
    fay_row = session.exec(select(OutboxMessage).where(OutboxMessage.person_id == p.fay.id)).one()
    chat = render(settings, fay_row, channel=Channel.TELEGRAM, recipient=fay_row.recipient,
                  recipient_name=p.fay.name, now=NOW)  # fmt: skip
    assert "<b>4 places free</b>" in chat.text
    assert set(re.findall(r"</?(\w+)", chat.text)) <= {"b", "i", "a", "code", "pre"}


def test_places_are_refused_when_there_are_none(session: Session, p: Partnership) -> None:
    p.s3.max_places = 2
    session.commit()
    with pytest.raises(CampaignError, match="is full: 2 bookings for 2 places"):
        preview(session, "places", session="WT-2026-03-20")
    with pytest.raises(CampaignError, match="has already started"):
        preview(session, "places", session="WT-2026-02-24")


# Refreshers --------------------------------------------------------------------------------------


@pytest.fixture
def refreshers(session: Session, p: Partnership) -> dict[str, Person]:
    """Who attended what, and when, for the refresher interval (2 years by default)."""
    w = p.world
    jo = w.person("Jo Reyes", "jo@riverside.example", p.riverside)
    hana = w.person("Hana Sato", "hana@riverside.example", p.riverside)
    old_wt = w.course_session(p.wt, "WT-2023-12-01", utc("2023-12-01 09:30"))
    recent_wt = w.course_session(p.wt, "WT-2025-01-10", utc("2025-01-10 09:30"))
    old_nm = w.course_session(p.nm, "NM-2023-06-01", utc("2023-06-01 09:30"))
    next_nm = w.course_session(p.nm, "NM-2026-04-10", utc("2026-04-10 09:30"))
    ancient = w.course_session(p.wt, "WT-2023-01-05", utc("2023-01-05 09:30"))
    p.booking(old_wt, hana, BookingStatus.ATTENDED)  # due since 1 December 2025
    p.booking(old_wt, p.alice, BookingStatus.ATTENDED)  # due, but booked on 20 March
    p.booking(recent_wt, p.bob, BookingStatus.ATTENDED)  # not due until 2027
    p.booking(old_nm, p.dev, BookingStatus.ATTENDED)
    p.booking(next_nm, p.dev, BookingStatus.BOOKED)  # has booked it again
    p.booking(ancient, p.chloe, BookingStatus.PARTLY_ATTENDED)  # never completed it
    kit = w.person("Kit Lowe", "kit@riverside.example", p.riverside, email_opt_out=True)
    p.booking(old_wt, kit, BookingStatus.ATTENDED)  # due, but has opted out of email
    p.booking(old_nm, jo, BookingStatus.ATTENDED)  # due under 2 years, not under 5
    session.commit()
    return {"jo": jo, "hana": hana}


def test_refresher_campaign_reaches_those_due(
    session: Session, p: Partnership, refreshers: dict[str, Person]
) -> None:
    found = preview(session, "refresher")
    assert found.names == ["Hana Sato", "Jo Reyes"] and found.opted_out == 1
    assert preview(session, "refresher", course="Neglect Matters").names == ["Jo Reyes"]
    longer = campaigns.preview(session, "refresher", {}, now=NOW,
                               policy=load_policy({"courses": {"Neglect Matters": {"refresher_years": 5}}}))  # fmt: skip
    assert longer.names == ["Hana Sato"]


def test_the_tick_reminds_each_person_once_per_course_and_due_date(
    session: Session, p: Partnership, refreshers: dict[str, Person], settings: Settings
) -> None:
    policy = load_policy({})
    zone = settings.zone
    assert queue_refresher_reminders(session, now=NOW, policy=policy, zone=zone) == 2
    session.commit()
    assert (
        queue_refresher_reminders(session, now=NOW + timedelta(days=1), policy=policy, zone=zone)
        == 0
    )
    hana, jo = refreshers["hana"], refreshers["jo"]
    rows = session.exec(select(OutboxMessage).order_by(col(OutboxMessage.person_id))).all()
    assert [(r.person_id, r.kind, r.template) for r in rows] == [
        (jo.id, MessageKind.REMINDER, "refresher-due"),
        (hana.id, MessageKind.REMINDER, "refresher-due"),
    ]
    key = rows[1].idempotency_key
    assert key == f"refresher:person:{hana.id}:course:{p.wt.id}:due:2025-12-01"
    mail = render(settings, rows[1], channel=Channel.EMAIL, recipient=rows[1].recipient,
                  recipient_name=hana.name, now=NOW)  # fmt: skip
    assert mail.subject == "Time to refresh your training: Working Together to Safeguard Children"
    assert "last attended 1 December 2023" in mail.text
    chat = render(settings, rows[1], channel=Channel.TELEGRAM, recipient="1",
                  recipient_name=hana.name, now=NOW)  # fmt: skip
    assert set(re.findall(r"</?(\w+)", chat.text)) <= {"b", "i", "a", "code", "pre"}

    # Hana attends again: she is not due any more, and when she is, it is a new due date.
    again = p.world.course_session(p.wt, "WT-2026-02-02", utc("2026-02-02 09:30"))
    p.booking(again, hana, BookingStatus.ATTENDED)
    session.commit()
    assert (
        queue_refresher_reminders(session, now=NOW + timedelta(days=2), policy=policy, zone=zone)
        == 0
    )
    later = datetime.fromisoformat("2028-02-03T10:00+00:00")
    assert queue_refresher_reminders(session, now=later, policy=policy, zone=zone) >= 1
    keys = session.exec(select(OutboxMessage.idempotency_key)).all()
    assert f"refresher:person:{hana.id}:course:{p.wt.id}:due:2028-02-02" in keys


def test_places_and_refresher_from_the_command_line(
    session: Session, p: Partnership, refreshers: dict[str, Person], cli: CliRunner
) -> None:
    dry = cli.invoke(app, ["campaign", "places", "--session", "WT-2026-03-20", "--dry-run",
                           "--now", NOW_TEXT])  # fmt: skip
    assert dry.exit_code == 0, dry.output
    # With the refresher people added: Hana and Jo too, and Kit, who refused email.
    assert re.search(r"free places:\s+4", dry.output) and re.search(r"to message:\s+5", dry.output)
    assert re.search(r"opted out:\s+1", dry.output)
    assert "first: Bob Whitfield, Dev Patel, Fay Lund, Hana Sato, Jo Reyes\n" in dry.output
    assert counts(session) == (0, 0, 0)
    full = cli.invoke(app, ["campaign", "places", "--session", "WT-2026-02-24", "--now", NOW_TEXT])
    assert full.exit_code == 2 and "has already started" in full.output

    run = cli.invoke(app, ["campaign", "refresher", "--now", NOW_TEXT, "--yes"])
    assert run.exit_code == 0, run.output
    assert "Recorded as campaign 1: 2 messages queued." in run.output
    campaign = session.exec(select(Campaign)).one()
    assert campaign.kind == "refresher" and campaign.counts["opted_out"] == 1


# The link to connect Telegram ---------------------------------------------------------------------


def test_without_a_bot_campaign_messages_offer_no_telegram_link(
    session: Session, p: Partnership, refreshers: dict[str, Person], cli: CliRunner, tmp_path: Path
) -> None:
    # No EVALBOT_TELEGRAM_TOKEN: the emails must not point anywhere to connect Telegram.
    for command in (["remind", "--stage", "end"], ["places", "--session", "WT-2026-03-20"],
                    ["refresher"]):  # fmt: skip
        result = cli.invoke(app, ["campaign", *command, "--now", NOW_TEXT, "--yes"])
        assert result.exit_code == 0, result.output
    mails = [
        email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        for path in (tmp_path / "mail").glob("*.eml")
    ]
    # Reminder: Alice by email; places: Bob, Dev, Hana and Jo; refresher: Hana and Jo.
    assert len(mails) == 7
    for message in mails:
        body = message.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
        assert "Telegram" not in body and "t.me/" not in body
    assert not session.exec(select(Link).where(Link.purpose == LinkPurpose.TELEGRAM)).all()


def test_with_a_bot_campaign_emails_carry_a_working_telegram_link(
    session: Session, p: Partnership, refreshers: dict[str, Person], settings: Settings
) -> None:
    with_bot = settings.model_copy(update={"telegram_bot_username": "partnership_bot"})
    for kind, scope in (("places", {"session": "WT-2026-03-20"}), ("refresher", {})):
        campaigns.run(session, kind, scope, now=NOW, actor="cli:test", secret=settings.secret)
    session.commit()
    hana = refreshers["hana"]
    rows = session.exec(
        select(OutboxMessage).where(OutboxMessage.person_id == hana.id).order_by(OutboxMessage.id)
    ).all()
    assert [row.template for row in rows] == ["campaign-places", "refresher-due"]
    for row in rows:
        mail = render(with_bot, row, channel=Channel.EMAIL, recipient=row.recipient,
                      recipient_name=hana.name, now=NOW)  # fmt: skip
        found = re.search(r"https://t\.me/partnership_bot\?start=(\S+)", mail.text)
        assert found, mail.text
        assert 'href="https://t.me/partnership_bot?start=' in mail.html
        # The token was recorded for Hana, so following it connects her chat.
        link = session.exec(select(Link).where(Link.token_hash == token_hash(found[1]))).one()
        assert (link.purpose, link.person_id) == (LinkPurpose.TELEGRAM, hana.id)
    # Fay already has a chat: nothing to connect.
    fay_row = session.exec(select(OutboxMessage).where(OutboxMessage.person_id == p.fay.id)).one()
    assert "telegram" not in fay_row.context.get("links", {})


def test_someone_who_opts_out_before_the_message_goes_is_not_sent_it(
    session: Session, p: Partnership, cli: CliRunner, tmp_path: Path
) -> None:
    # Queued on Saturday, to go on Monday at 08:00; on Sunday Alice unsubscribes from email.
    queued = cli.invoke(
        app, ["campaign", "remind", "--stage", "end", "--now", "2026-03-07T11:00", "--yes"]
    )
    assert queued.exit_code == 0, queued.output
    alice = session.get(Person, p.alice.id)
    assert alice is not None
    alice.email_opt_out = True
    session.commit()
    monday = cli.invoke(app, ["tick", "--now", "2026-03-09T08:05"])
    assert monday.exit_code == 0, monday.output
    row = session.exec(
        select(OutboxMessage).where(
            OutboxMessage.person_id == p.alice.id, OutboxMessage.kind == MessageKind.CAMPAIGN
        )
    ).one()
    session.refresh(row)
    assert row.state == OutboxState.WITHDRAWN and "opted out" in (row.last_error or "")
    to_alice = [
        message["Subject"]
        for message in (
            email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            for path in (tmp_path / "mail").glob("*.eml")
        )
        if "alice@riverside.example" in message["To"]
    ]
    # The tick planned and sent her other messages (a booking's confirmation): not the reminder.
    assert not [subject for subject in to_alice if "Reminder" in subject], to_alice
    listed = cli.invoke(app, ["campaign", "list"])
    line = next(line for line in listed.output.splitlines() if line.strip().startswith("1 "))
    assert re.search(r"remind\s+2\s+0\s+", line), line  # queued 2, delivered 0
