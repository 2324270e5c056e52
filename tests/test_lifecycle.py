"""Whole bookings moved through time: what arrives, to whom and when, against the policy.

The first test drives ``evalbot tick --now`` through the command line against a real SMTP server
on loopback; the others move time with the same tick and the real dispatcher, writing mail to
the mail folder, and check when each message went out in London time.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlmodel import Session, select
from typer.testing import CliRunner

from bot.cli import app
from schedules import attendance
from surveys.models import Booking, BookingStatus, CourseSession, Stage
from tests.conftest import utc
from tests.smtp_servers import SmtpServer, running
from tests.timeline import Timeline, at

ALICE = "alice.okafor@riverside.example"
CHLOE = "chloe.obrien@northgate.example"
BOB = "bob.whitfield@riverside.example"
DEV = "dev.patel@northgate.example"
TARIQ = "tariq.aziz@partnership.example"
COURSE = "Working Together to Safeguard Children"


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with running() as server:
        yield server


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, database_url: str, smtp: SmtpServer) -> CliRunner:
    monkeypatch.setenv("EVALBOT_DATABASE_URL", database_url)
    monkeypatch.setenv("EVALBOT_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("EVALBOT_SMTP_PORT", str(smtp.port))
    monkeypatch.setenv("EVALBOT_SMTP_SECURITY", "none")
    monkeypatch.setenv("EVALBOT_MAIL_FROM", "Training <training@partnership.example>")
    return CliRunner()


class Inbox:
    """What the SMTP server received, read a batch at a time."""

    def __init__(self, server: SmtpServer):
        self.server = server
        self.seen = 0

    def new(self) -> list[tuple[str, str]]:
        """(recipient, subject) of each message since the last look, sorted."""
        fresh = self.server.received[self.seen :]
        self.seen = len(self.server.received)
        return sorted((", ".join(item.rcpt_tos), str(item.message["Subject"])) for item in fresh)


def run_tick(runner: CliRunner, when: str) -> str:
    result = runner.invoke(app, ["tick", "--now", when])
    assert result.exit_code == 0, result.output
    return result.output


def test_a_booking_from_confirmation_to_impact_through_evalbot_tick(
    world, engine, settings, cli_env, smtp
):
    people = world.standard()
    inbox = Inbox(smtp)

    output = run_tick(cli_env, "2026-03-02T09:00")
    assert "booking-confirmation: 2 sent" in output
    assert inbox.new() == [
        (ALICE, f"Your place: {COURSE}, 16 March 2026"),
        (CHLOE, f"Your place: {COURSE}, 16 March 2026"),
    ]
    assert inbox.new() == []
    run_tick(cli_env, "2026-03-05T09:00")
    assert inbox.new() == []  # nothing twice

    # Pre-course questionnaire: opens 7 days before the start.
    run_tick(cli_env, "2026-03-09T09:29")
    assert inbox.new() == []
    output = run_tick(cli_env, "2026-03-09T09:30")
    assert "survey-invitation: 2 sent" in output
    assert inbox.new() == [
        (ALICE, f"Before {COURSE}: three minutes of questions"),
        (CHLOE, f"Before {COURSE}: three minutes of questions"),
    ]
    timeline = Timeline(engine, settings)
    timeline.finish("BK-1001", Stage.PRE, "2026-03-10 12:00")

    # Its reminder, two days before the start, falls on Saturday: it waits for Monday 08:00,
    # and goes only to Chloé, who has not answered.
    run_tick(cli_env, "2026-03-14T09:30")
    run_tick(cli_env, "2026-03-15T12:00")
    assert inbox.new() == []
    run_tick(cli_env, "2026-03-16T08:00")
    assert inbox.new() == [(CHLOE, f"Reminder: Before {COURSE}: three minutes of questions")]

    # The register: Alice attended, Chloé did not come.
    with Session(engine) as session:
        course_session = session.get(CourseSession, people["session"].id)
        assert course_session is not None
        alice, chloe = attendance.register_bookings(session, course_session)
        now = at("2026-03-16 10:00")
        attendance.mark(session, alice, BookingStatus.ATTENDED, now=now, actor="cli:tariq")
        attendance.mark(session, chloe, BookingStatus.NO_SHOW, now=now, actor="cli:tariq")
        attendance.close_register(session, course_session, now=now, actor="cli:tariq")
        session.commit()
    run_tick(cli_env, "2026-03-16T10:05")
    assert [to for to, _ in inbox.new()] == [CHLOE, DEV]  # the no-show notices

    # End-of-course evaluation at the end of the session, to Alice only; reminders after 2 days
    # and (on Saturday, so Monday) after 5, until she answers.
    # The trainer's report opens with it, to Tariq, and is reminded once, after 2 days.
    run_tick(cli_env, "2026-03-16T16:30")
    assert inbox.new() == [
        (ALICE, f"How was {COURSE}? Your evaluation and certificate"),
        (TARIQ, f"Your report on {COURSE}, 16 March 2026"),
    ]
    run_tick(cli_env, "2026-03-18T16:30")
    assert inbox.new() == [
        (ALICE, f"Reminder: How was {COURSE}? Your evaluation"),
        (TARIQ, f"Reminder: Your report on {COURSE}, 16 March 2026"),
    ]
    run_tick(cli_env, "2026-03-21T16:30")
    assert inbox.new() == []
    run_tick(cli_env, "2026-03-23T08:00")
    assert inbox.new() == [(ALICE, f"Reminder: How was {COURSE}? Your evaluation")]
    run_tick(cli_env, "2026-03-30T16:30")  # closed
    assert timeline.invitations("BK-1001")["end"] == "closed"
    assert inbox.new() == []

    # Impact survey 13 weeks after the end; reminders after 7 and 14 days; she answers after
    # the first, so the second never comes.
    run_tick(cli_env, "2026-06-15T16:29")
    assert inbox.new() == []
    run_tick(cli_env, "2026-06-15T16:30")
    assert inbox.new() == [(ALICE, f"{COURSE}: what difference has it made?")]
    run_tick(cli_env, "2026-06-22T16:30")
    assert inbox.new() == [(ALICE, f"Reminder: {COURSE}: what difference has it made?")]
    timeline.finish("BK-1001", Stage.IMPACT, "2026-06-23 09:00")
    for moment in ("2026-06-29T16:30", "2026-07-13T16:30", "2026-07-20T09:00"):
        run_tick(cli_env, moment)
    assert inbox.new() == []
    assert timeline.invitations("BK-1001") == {
        "pre": "finished",
        "end": "closed",
        "impact": "finished",
    }
    assert timeline.invitations("BK-1002") == {
        "pre": "closed",
        "end": "withdrawn",
        "impact": "withdrawn",
    }


def test_a_dry_run_through_the_command_line_sends_nothing(world, cli_env, smtp):
    world.standard()
    result = cli_env.invoke(app, ["tick", "--now", "2026-03-09T09:30", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "Dry run" in result.output
    assert "Queued: booking-confirmation 2, survey-invitation 2" in result.output
    assert smtp.received == []
    again = cli_env.invoke(app, ["tick", "--now", "2026-03-09T09:30", "--dry-run"])
    assert "Bookings planned: 2" in again.output


def _booking_on(world, starts_at, ends_at, ref="S-1"):
    people = world.standard()
    with Session(world.session.get_bind()) as session:
        row = session.get(CourseSession, people["session"].id)
        assert row is not None
        row.starts_at, row.ends_at, row.ref = starts_at, ends_at, ref
        session.add(row)
        session.commit()
    return people


@pytest.mark.parametrize(
    ("imported", "too_early", "due"),
    [
        # Spring: Saturday 28 March is GMT; Monday 30 March 08:00 is BST, 07:00 UTC.
        ("2026-03-28 12:00", utc("2026-03-30 06:59"), utc("2026-03-30 07:00")),
        # Autumn: Saturday 24 October is BST; Monday 26 October 08:00 is GMT, 08:00 UTC (an hour
        # after what would have been 08:00 in summer).
        ("2026-10-24 12:00", utc("2026-10-26 07:00"), utc("2026-10-26 08:00")),
    ],
)
def test_a_message_due_at_eight_goes_at_eight_local_across_the_clock_change(
    world, engine, settings, imported, too_early, due
):
    # A Monday session at 09:30 local, booked on the Saturday before.
    monday = due.astimezone(at("2026-01-01 00:00").tzinfo).date().isoformat()
    _booking_on(world, at(f"{monday} 09:30"), at(f"{monday} 16:30"))
    timeline = Timeline(engine, settings)
    timeline.tick(imported)
    assert timeline.sent() == []
    timeline.tick(too_early)
    assert timeline.sent() == []
    timeline.tick(due)
    sent = timeline.sent_at()
    assert {(email, template) for email, template, _ in sent} == {
        (ALICE, "booking-confirmation"),
        (ALICE, "survey-invitation"),
        (CHLOE, "booking-confirmation"),
        (CHLOE, "survey-invitation"),
    }
    assert {when.strftime("%H:%M %Z") for _, _, when in sent} == {
        "08:00 BST" if due.month == 3 else "08:00 GMT"
    }


def test_nothing_goes_out_over_easter(world, engine, settings):
    # A session ending on Thursday 2 April 2026 at 19:00, after the window has shut.
    _booking_on(world, at("2026-04-02 10:00"), at("2026-04-02 19:00"))
    timeline = Timeline(engine, settings)
    timeline.tick("2026-03-20 09:00")
    since = at("2026-04-02 18:00")
    for moment in ("2026-04-02 19:00", "2026-04-03 10:00", "2026-04-04 10:00", "2026-04-06 10:00"):
        timeline.tick(moment)
        assert timeline.sent(since=since) == []  # Good Friday, the weekend, Easter Monday
    timeline.tick("2026-04-07 08:00")
    assert timeline.sent_at(since=since) == [
        (ALICE, "survey-invitation", at("2026-04-07 08:00")),
        (CHLOE, "survey-invitation", at("2026-04-07 08:00")),
        (TARIQ, "survey-invitation", at("2026-04-07 08:00")),  # the trainer's report
        # The register left open 24 hours after the end: Friday evening, so Tuesday too.
        (TARIQ, "register-reminder", at("2026-04-07 08:00")),
    ]


def test_an_impact_survey_due_on_christmas_day_waits_until_the_29th(world, engine, settings):
    # A session ending on Friday 25 September: 13 weeks on is Christmas Day.
    _booking_on(world, at("2026-09-25 09:30"), at("2026-09-25 16:30"))
    timeline = Timeline(engine, settings)
    timeline.tick("2026-09-01 09:00")
    assert timeline.invitation("BK-1001", Stage.IMPACT).opens_at == at("2026-12-25 16:30")
    since = at("2026-12-01 00:00")
    for moment in ("2026-12-25 16:30", "2026-12-28 10:00"):  # Boxing Day is observed on the 28th
        timeline.tick(moment)
        assert timeline.sent(since=since) == []
    timeline.tick("2026-12-29 08:00")
    assert [(email, when) for email, _, when in timeline.sent_at(since=since)] == [
        (ALICE, at("2026-12-29 08:00")),
        (CHLOE, at("2026-12-29 08:00")),
    ]


def test_after_downtime_what_is_still_open_goes_out_and_what_closed_does_not(
    world, engine, settings
):
    world.standard()
    timeline = Timeline(engine, settings)
    for moment in ("2026-03-02 09:00", "2026-03-09 09:30", "2026-03-14 09:30"):
        timeline.tick(moment)
    # The pre-course reminders are queued for Monday 08:00, and then Evalbot is stopped from
    # Sunday until Tuesday: the pre-course survey closed on Monday at 09:30 and the session ended.
    timeline.tick("2026-03-17 10:00")
    since = at("2026-03-15 00:00")
    assert timeline.sent(since=since) == [
        (ALICE, "survey-invitation", "end"),
        (CHLOE, "survey-invitation", "end"),
        (TARIQ, "survey-invitation", "trainer"),
    ]
    reminders = timeline.rows(template="survey-reminder")
    assert [row.state for row in reminders] == ["withdrawn", "withdrawn"]
    # Stopped again for ten days: the end-of-course reminders due meanwhile are not sent in a
    # burst. One (the latest due) goes now, and none twice.
    # The register reminder, due on the 17th at 16:30, goes too: the register is still open and
    # the end-of-course period has not ended. The trainer's report closed on the 23rd: its
    # reminder is not sent late.
    timeline.tick("2026-03-27 11:00")
    assert timeline.sent(since=at("2026-03-27 00:00")) == [
        (ALICE, "survey-reminder", "end"),
        (CHLOE, "survey-reminder", "end"),
        (TARIQ, "register-reminder", None),
    ]
    timeline.tick("2026-03-27 11:01")
    assert len(timeline.sent(since=at("2026-03-27 00:00"))) == 3


def test_re_planning_after_a_time_change_moves_what_is_still_to_come(world, engine, settings):
    world.standard()
    timeline = Timeline(engine, settings)
    timeline.tick("2026-03-02 09:00")
    timeline.tick("2026-03-09 09:30")  # confirmation and pre-course invitation have gone
    # The import moves the session a week later.
    timeline.move_session("WT-2026-03-16", utc("2026-03-23 09:30"), utc("2026-03-23 16:30"))
    timeline.tick("2026-03-10 11:00")
    assert sorted(timeline.sent(since=at("2026-03-10 00:00"))) == [
        (ALICE, "booking-confirmation", None),
        (CHLOE, "booking-confirmation", None),
    ]
    confirmations = [
        row for row in timeline.rows(template="booking-confirmation") if row.context["changed"]
    ]
    assert len(confirmations) == 2
    # The old times pass quietly; the new ones are kept.
    for moment in ("2026-03-14 09:30", "2026-03-16 16:30", "2026-03-20 12:00"):
        timeline.tick(moment)
    assert timeline.sent(since=at("2026-03-11 00:00")) == []
    timeline.tick("2026-03-23 08:00")  # the reminder two days before the new start (a Saturday)
    assert sorted(timeline.sent(since=at("2026-03-23 00:00"))) == [
        (ALICE, "survey-reminder", "pre"),
        (CHLOE, "survey-reminder", "pre"),
    ]
    timeline.tick("2026-03-23 16:30")
    assert sorted(timeline.sent(since=at("2026-03-23 16:00"))) == [
        (ALICE, "survey-invitation", "end"),
        (CHLOE, "survey-invitation", "end"),
        (TARIQ, "survey-invitation", "trainer"),  # the trainer's report moved with it
    ]


def test_a_cancelled_session_is_announced_to_delegates_and_managers(world, cli_env, smtp, engine):
    from schedules.planning import cancel_session

    people = world.standard()
    inbox = Inbox(smtp)
    run_tick(cli_env, "2026-03-02T09:00")
    assert len(inbox.new()) == 2
    with Session(engine) as session:
        row = session.get(CourseSession, people["session"].id)
        assert row is not None
        cancel_session(session, row, now=at("2026-03-13 19:30"), actor="cli:admin")
        session.commit()
    # Friday evening, outside the sending window: a cancellation goes at once all the same.
    output = run_tick(cli_env, "2026-03-13T19:30")
    assert "session-cancelled: 4 sent" in output
    subject = f"Cancelled: {COURSE}, 16 March 2026"
    assert inbox.new() == [(ALICE, subject), (BOB, subject), (CHLOE, subject), (DEV, subject)]
    bob = next(item for item in smtp.received if BOB in item.rcpt_tos).message
    assert "that Alice Okafor was booked on" in bob.get_body(("plain",)).get_content()
    for moment in ("2026-03-16T08:00", "2026-03-16T16:30", "2026-03-18T16:30"):
        run_tick(cli_env, moment)
    assert inbox.new() == []  # no survey for a session that never ran


def test_every_message_of_this_area_renders_for_telegram_too(world, engine, settings):
    """The Telegram versions of the confirmation, the cancellation and the register reminder."""
    from bot.rendering import render_telegram
    from schedules.planning import cancel_session

    people = world.standard()
    timeline = Timeline(engine, settings)
    timeline.tick("2026-03-02 09:00", deliver=False)
    timeline.tick("2026-03-17 16:30", deliver=False)  # the register reminder
    with Session(engine) as session:
        row = session.get(CourseSession, people["session"].id)
        assert row is not None
        row.starts_at, row.ends_at = utc("2026-03-30 09:30"), utc("2026-03-30 16:30")
        row.schedule_version += 1
        session.add(row)
        session.commit()
    timeline.tick("2026-03-18 09:00", deliver=False)  # "changed" confirmations
    with Session(engine) as session:
        row = session.get(CourseSession, people["session"].id)
        assert row is not None
        cancel_session(session, row, now=at("2026-03-19 09:00"), actor="cli:admin")
        session.commit()
    timeline.tick("2026-03-19 09:00", deliver=False)
    rendered = {}
    for message in timeline.rows():
        if message.template in ("booking-confirmation", "session-cancelled", "register-reminder"):
            out = render_telegram(
                settings, message, recipient="1", recipient_name="Alice", now=at("2026-03-19 09:00")
            )
            rendered.setdefault(message.template, out.text)
    assert set(rendered) == {"booking-confirmation", "session-cancelled", "register-reminder"}
    assert "Cannot attend?" in rendered["booking-confirmation"]
    assert "<b>Cancelled: Working Together" in rendered["session-cancelled"]
    assert "Register still open" in rendered["register-reminder"]


def test_a_tick_outside_the_window_sends_nothing_that_belongs_in_it(world, engine, settings):
    world.standard()
    timeline = Timeline(engine, settings)
    timeline.tick("2026-03-02 09:00")
    # The end-of-course evaluation is queued on Monday 16 March at 16:30, and then the mail
    # stops until Saturday: the evaluation is overdue, but Saturday is outside the window.
    timeline.tick("2026-03-16 16:30", deliver=False)
    report = timeline.tick("2026-03-21 10:00")
    # (the two evaluations and the trainer's report)
    assert report.held == 3 and timeline.sent(since=at("2026-03-16 00:00")) == []
    timeline.tick("2026-03-22 20:00")
    assert timeline.sent(since=at("2026-03-16 00:00")) == []
    timeline.tick("2026-03-23 08:00")
    assert timeline.sent_at(since=at("2026-03-16 00:00")) == [
        (ALICE, "survey-invitation", at("2026-03-23 08:00")),
        (CHLOE, "survey-invitation", at("2026-03-23 08:00")),
        (TARIQ, "survey-invitation", at("2026-03-23 08:00")),
        (TARIQ, "register-reminder", at("2026-03-23 08:00")),
    ]


CHARGES = """
[policy]
charge_full_day_pence = 7500
charge_half_day_pence = 4000
"""


def run(runner: CliRunner, *args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def bodies(smtp: SmtpServer, address: str) -> list[str]:
    """The plain-text bodies of what ``address`` received, oldest first."""
    return [
        item.message.get_body(("plain",)).get_content()
        for item in smtp.received
        if address in item.rcpt_tos
    ]


def test_a_late_charge_and_a_certificate_through_evalbot_tick(
    world, engine, settings, cli_env, smtp, tmp_path
):
    (tmp_path / "evalbot.toml").write_text(CHARGES)
    world.standard()
    inbox = Inbox(smtp)
    run_tick(cli_env, "2026-03-02T09:00")
    run_tick(cli_env, "2026-03-09T09:30")
    assert len(inbox.new()) == 4  # confirmations and pre-course questionnaires

    # Friday 13 March, after the cut-off: Chloé cancels late; her manager is asked to nominate.
    output = run(
        cli_env, "cancel", "BK-1002", "--reason", "Court hearing", "--now", "2026-03-13T10:00"
    )
    assert "late" in output.lower()
    run_tick(cli_env, "2026-03-13T10:01")
    received = inbox.new()
    assert [to for to, _ in received] == [CHLOE, DEV]
    assert "£75" in bodies(smtp, DEV)[-1]

    # Nobody takes the place: at the start the charge is recorded, once.
    output = run_tick(cli_env, "2026-03-16T09:29")
    assert "Late cancellations charged: 0" in output
    output = run_tick(cli_env, "2026-03-16T09:30")
    assert "Late cancellations charged: 1" in output
    assert "Late cancellations charged: 0" in run_tick(cli_env, "2026-03-16T09:31")
    with Session(engine) as session:
        chloe = session.exec(select(Booking).where(Booking.ref == "BK-1002")).one()
        assert chloe.charge_pence == 7500
    # Monday's pre-course reminder goes to Alice; Chloé's was withdrawn with her booking.
    assert inbox.new() == [(ALICE, f"Reminder: Before {COURSE}: three minutes of questions")]

    # Alice attends and finishes the evaluation: the next tick sends her certificate.
    run(
        cli_env,
        "attendance",
        "WT-2026-03-16",
        "--attended",
        "BK-1001",
        "--close",
        "--now",
        "2026-03-16T16:00",
    )
    run_tick(cli_env, "2026-03-16T16:30")
    report = f"Your report on {COURSE}, 16 March 2026"  # the trainer's
    assert inbox.new() == [
        (ALICE, f"How was {COURSE}? Your evaluation and certificate"),
        (TARIQ, report),
    ]
    Timeline(engine, settings).finish("BK-1001", Stage.END, "2026-03-16 18:00")
    output = run_tick(cli_env, "2026-03-16T18:05")  # after the window: waits for the morning
    assert "Certificate notices: 1" in output and inbox.new() == []
    output = run_tick(cli_env, "2026-03-17T08:00")
    assert "certificate-ready: 1 sent" in output
    assert inbox.new() == [(ALICE, f"Your certificate of attendance: {COURSE}")]
    assert "http://" in bodies(smtp, ALICE)[-1] and "/certificate/" in bodies(smtp, ALICE)[-1]
    for moment in ("2026-03-17T09:00", "2026-03-18T16:30", "2026-03-30T16:30"):
        assert "Certificate notices: 0" in run_tick(cli_env, moment)
    # No reminder of a finished evaluation, no second certificate: only the trainer's reminder.
    assert inbox.new() == [(TARIQ, f"Reminder: {report}")]


def test_a_register_corrected_after_the_no_show_notices_went_out(
    world, engine, settings, cli_env, smtp, tmp_path
):
    (tmp_path / "evalbot.toml").write_text(CHARGES)
    world.standard()
    inbox = Inbox(smtp)
    run_tick(cli_env, "2026-03-02T09:00")
    run_tick(cli_env, "2026-03-09T09:30")
    run_tick(cli_env, "2026-03-16T08:00")
    inbox.new()

    # Tariq closes the register with Chloé as a no-show; the notices go out at once.
    run(
        cli_env,
        "attendance",
        "WT-2026-03-16",
        "--attended",
        "BK-1001",
        "--no-show",
        "BK-1002",
        "--close",
        "--now",
        "2026-03-16T10:00",
    )
    output = run_tick(cli_env, "2026-03-16T10:05")
    assert "No-show notices: 1 booking" in output
    assert [to for to, _ in inbox.new()] == [CHLOE, DEV]
    assert "£75" in bodies(smtp, CHLOE)[-1] and "£75" in bodies(smtp, DEV)[-1]

    # She had signed in late at the back of the room: the register is corrected.
    output = run(
        cli_env, "attendance", "WT-2026-03-16", "--attended", "BK-1002", "--now", "2026-03-16T11:00"
    )
    assert "changed after the register closed" in output
    assert "2 correction(s) queued" in output
    output = run_tick(cli_env, "2026-03-16T11:05")
    assert "no-show-correction: 2 sent" in output
    corrections = inbox.new()
    assert [to for to, _ in corrections] == [CHLOE, DEV]
    assert all(subject.startswith("Correction: ") for _, subject in corrections)
    assert "The charge of £75 no longer applies." in bodies(smtp, CHLOE)[-1]
    with Session(engine) as session:
        chloe = session.exec(select(Booking).where(Booking.ref == "BK-1002")).one()
        assert chloe.status == BookingStatus.ATTENDED and chloe.charge_pence is None

    # As an attendee again she gets the end-of-course evaluation, and her certificate.
    run_tick(cli_env, "2026-03-16T16:30")
    evaluation = f"How was {COURSE}? Your evaluation and certificate"
    report = f"Your report on {COURSE}, 16 March 2026"  # the trainer's
    assert inbox.new() == [(ALICE, evaluation), (CHLOE, evaluation), (TARIQ, report)]
    Timeline(engine, settings).finish("BK-1002", Stage.END, "2026-03-17 09:00")
    run_tick(cli_env, "2026-03-17T09:01")
    assert inbox.new() == [(CHLOE, f"Your certificate of attendance: {COURSE}")]
    # Nothing about the no-show ever again; Alice alone is reminded.
    for moment in ("2026-03-17T12:00", "2026-03-18T16:30", "2026-03-30T16:30"):
        run_tick(cli_env, moment)
    assert inbox.new() == [
        (ALICE, f"Reminder: How was {COURSE}? Your evaluation"),
        (TARIQ, f"Reminder: {report}"),
    ]
