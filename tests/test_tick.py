"""The tick: opening and closing, reminders only for those who have not finished, the trainer's
register reminder, no-show notices, idempotence, dry runs and ticks in several processes."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from sqlmodel import Session

from schedules import attendance
from schedules.policy import load_policy
from schedules.tick import tick
from surveys.models import BookingStatus, CourseSession, OutboxState, Stage
from tests.conftest import utc
from tests.timeline import LONDON, Timeline, at

ALICE = "alice.okafor@riverside.example"
CHLOE = "chloe.obrien@northgate.example"
BOB = "bob.whitfield@riverside.example"
DEV = "dev.patel@northgate.example"
TARIQ = "tariq.aziz@partnership.example"


def test_invitations_open_and_close_on_time(world, engine, settings):
    world.standard()
    timeline = Timeline(engine, settings)
    timeline.tick("2026-03-02 09:00")
    assert timeline.invitations("BK-1001") == {
        "pre": "planned",
        "end": "planned",
        "impact": "planned",
    }
    report = timeline.tick("2026-03-09 09:30")
    assert report.opened == 2
    assert timeline.invitations("BK-1001")["pre"] == "open"
    report = timeline.tick("2026-03-16 09:30")
    assert report.closed == 2
    assert timeline.invitations("BK-1001")["pre"] == "closed"


def test_reminders_go_only_to_those_who_have_not_finished(world, engine, settings):
    world.standard()
    timeline = Timeline(engine, settings)
    timeline.tick("2026-03-02 09:00")
    timeline.tick("2026-03-09 09:30")  # the pre-course survey goes to both
    assert timeline.sent(since=at("2026-03-09 09:30")) == [
        (ALICE, "survey-invitation", "pre"),
        (CHLOE, "survey-invitation", "pre"),
    ]
    timeline.finish("BK-1001", Stage.PRE, "2026-03-10 12:00")
    # Saturday 14 March 09:30 is five days on: the reminder waits for Monday 08:00.
    report = timeline.tick("2026-03-14 09:30")
    assert report.reminders == 1
    assert timeline.sent(since=at("2026-03-14 00:00")) == []
    timeline.tick("2026-03-16 08:00")
    assert timeline.sent(since=at("2026-03-16 08:00")) == [(CHLOE, "survey-reminder", "pre")]
    # Only one reminder in the pre-course policy: nothing more, and nothing after the closing.
    assert timeline.tick("2026-03-16 09:00").reminders == 0
    assert timeline.tick("2026-03-16 10:00").reminders == 0


def test_finishing_withdraws_a_reminder_still_waiting_for_the_window(world, engine, settings):
    world.standard()
    timeline = Timeline(engine, settings)
    timeline.tick("2026-03-02 09:00")
    timeline.tick("2026-03-09 09:30")
    timeline.tick("2026-03-14 09:30")  # both reminders queued for Monday 08:00
    timeline.finish("BK-1002", Stage.PRE, "2026-03-15 20:00")  # Chloé finishes on Sunday
    report = timeline.tick("2026-03-16 08:00")
    assert report.messages_withdrawn == 1
    assert timeline.sent(since=at("2026-03-16 08:00")) == [(ALICE, "survey-reminder", "pre")]


def test_end_of_course_reminders_stop_at_the_cap_and_at_closing(world, engine, settings):
    world.standard()
    timeline = Timeline(engine, settings)
    for moment in (
        "2026-03-02 09:00",
        "2026-03-16 16:30",  # the session ends: the evaluation goes out
        "2026-03-18 16:30",  # two days on
        "2026-03-21 16:30",  # five days on (a Saturday)
        "2026-03-23 08:00",
        "2026-03-27 12:00",
        "2026-03-30 16:30",  # closes
        "2026-04-02 12:00",
    ):
        timeline.tick(moment)
    end_messages = [
        (email, template, when)
        for email, template, when in timeline.sent_at(since=at("2026-03-16 00:00"))
        if email == ALICE and template.startswith("survey")
    ]
    assert end_messages == [
        (ALICE, "survey-invitation", at("2026-03-16 16:30")),
        (ALICE, "survey-reminder", at("2026-03-18 16:30")),
        (ALICE, "survey-reminder", at("2026-03-23 08:00")),
    ]
    assert timeline.invitations("BK-1001")["end"] == "closed"


def test_a_reminder_counts_from_when_the_invitation_really_went_out(world, engine, settings):
    world.standard()
    # A session ending on Friday evening: the evaluation waits for Monday 08:00, and its first
    # reminder comes two days after that, not with it.
    timeline = Timeline(engine, settings)
    timeline.move_session("WT-2026-03-16", utc("2026-03-20 12:00"), utc("2026-03-20 19:00"))
    for moment in ("2026-03-02 09:00", "2026-03-20 19:00", "2026-03-22 19:00", "2026-03-23 08:00"):
        timeline.tick(moment)
    assert [
        (template, when)
        for email, template, when in timeline.sent_at(since=at("2026-03-20 00:00"))
        if email == ALICE
    ] == [("survey-invitation", at("2026-03-23 08:00"))]
    timeline.tick("2026-03-25 08:00")
    assert [
        template
        for email, template, _ in timeline.sent_at(since=at("2026-03-25 08:00"))
        if email == ALICE
    ] == ["survey-reminder"]


def test_the_trainer_is_reminded_once_of_a_register_left_open(world, engine, settings):
    world.standard()
    timeline = Timeline(engine, settings)
    timeline.tick("2026-03-02 09:00")
    timeline.tick("2026-03-16 16:30")
    assert timeline.tick("2026-03-17 16:29").register_reminders == 0
    assert timeline.tick("2026-03-17 16:30").register_reminders == 1
    assert timeline.tick("2026-03-17 16:31").register_reminders == 0
    (row,) = timeline.rows(template="register-reminder")
    assert row.recipient == TARIQ and row.state == OutboxState.SENT
    assert row.context["unmarked"] == 2 and row.context["on_register"] == 2


def test_a_register_closed_before_the_window_opens_needs_no_reminder(world, engine, settings):
    people = world.standard()
    timeline = Timeline(engine, settings)
    # A session on Friday 13 March: its reminder falls due on Saturday and waits for Monday.
    timeline.move_session("WT-2026-03-16", utc("2026-03-13 09:30"), utc("2026-03-13 16:30"))
    timeline.tick("2026-03-02 09:00")
    assert timeline.tick("2026-03-14 17:00").register_reminders == 1
    with Session(engine) as session:
        course_session = session.get(CourseSession, people["session"].id)
        assert course_session is not None
        for booking in attendance.register_bookings(session, course_session):
            attendance.mark(
                session, booking, BookingStatus.ATTENDED, now=at("2026-03-15 10:00"), actor="t"
            )
        attendance.close_register(session, course_session, now=at("2026-03-15 10:00"), actor="t")
        session.commit()
    timeline.tick("2026-03-16 08:00")
    (row,) = timeline.rows(template="register-reminder")
    assert row.state == OutboxState.WITHDRAWN


def test_a_closed_register_turns_into_no_show_notices(world, engine, settings):
    people = world.standard()
    timeline = Timeline(engine, settings)
    timeline.tick("2026-03-02 09:00")
    with Session(engine) as session:
        course_session = session.get(CourseSession, people["session"].id)
        assert course_session is not None
        alice, chloe = attendance.register_bookings(session, course_session)
        now = at("2026-03-16 10:00")
        attendance.mark(session, alice, BookingStatus.ATTENDED, now=now, actor="t")
        attendance.mark(session, chloe, BookingStatus.NO_SHOW, now=now, actor="t")
        attendance.close_register(session, course_session, now=now, actor="t")
        session.commit()
    report = timeline.tick("2026-03-16 10:01")
    assert report.no_show_notices == 1
    sent = timeline.sent(since=at("2026-03-16 10:00"))
    assert sorted(email for email, template, _ in sent if template.startswith("no-show")) == [
        CHLOE,
        DEV,
    ]
    # The no-show delegate gets no end-of-course evaluation; Alice does (and the trainer is
    # asked for a report).
    timeline.tick("2026-03-16 16:30")
    assert timeline.sent(since=at("2026-03-16 16:30")) == [
        (ALICE, "survey-invitation", "end"),
        (TARIQ, "survey-invitation", "trainer"),
    ]
    assert timeline.invitations("BK-1002")["end"] == "withdrawn"


def test_a_second_tick_at_the_same_time_does_nothing(world, engine, settings):
    world.standard()
    timeline = Timeline(engine, settings)
    for moment in ("2026-03-02 09:00", "2026-03-09 09:30", "2026-03-14 09:30", "2026-03-17 16:30"):
        timeline.tick(moment)
        rows_before = [(row.idempotency_key, row.state) for row in timeline.rows()]
        again = timeline.tick(moment)
        assert [(row.idempotency_key, row.state) for row in timeline.rows()] == rows_before
        assert again.plan.bookings == again.opened == again.closed == again.reminders == 0
        assert again.register_reminders == again.messages_withdrawn == 0
        assert not again.queued


def test_a_dry_run_reports_and_changes_nothing(world, engine, settings):
    world.standard()
    timeline = Timeline(engine, settings)
    report = timeline.tick("2026-03-09 09:30", dry_run=True)
    assert report.plan.bookings == 2 and report.opened == 2
    assert report.queued == Counter({"survey-invitation": 2, "booking-confirmation": 2})
    assert report.due == 4  # two confirmations and two pre-course invitations
    assert timeline.rows() == []
    assert timeline.invitations("BK-1001") == {}
    real = timeline.tick("2026-03-09 09:30")
    assert real.queued == report.queued


def _concurrent_ticks(engine, settings, moments, workers=4):
    """Several ticks at once at each moment, then one delivery of what they queued."""
    policy = load_policy({})
    timeline = Timeline(engine, settings)
    errors: list[BaseException] = []
    for moment in moments:
        barrier = threading.Barrier(workers)

        def run(now=moment, barrier=barrier):
            try:
                barrier.wait()
                tick(engine, now=now, policy=policy, zone=LONDON, secret=settings.secret)
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=run) for _ in range(workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        timeline.tick(moment)  # delivers; its own tick finds nothing left to do


def _many_bookings(world, count=40):
    people = world.standard()
    for n in range(count):
        person = world.person(
            f"Delegate {n}", f"delegate{n}@riverside.example", people["riverside"]
        )
        world.booking(people["session"], person, people["bob"], f"BK-2{n:03d}")
    world.session.commit()
    return people


MOMENTS = [at(text) for text in ("2026-03-02 09:00", "2026-03-09 09:30", "2026-03-14 09:30")]


def test_ticks_in_several_processes_queue_each_message_once(world, engine, settings):
    _many_bookings(world)
    _concurrent_ticks(engine, settings, MOMENTS)
    timeline = Timeline(engine, settings)
    rows = timeline.rows()
    keys = [row.idempotency_key for row in rows]
    assert len(keys) == len(set(keys))
    counts = Counter(row.template for row in rows)
    # 42 bookings: a confirmation, the pre-course invitation and its reminder each.
    assert counts == Counter(
        {"booking-confirmation": 42, "survey-invitation": 42, "survey-reminder": 42}
    )


def test_ticks_in_several_processes_on_postgresql(postgres_engine, settings):
    with Session(postgres_engine) as session:
        from tests.conftest import World

        _many_bookings(World(session))
    _concurrent_ticks(postgres_engine, settings, MOMENTS)
    timeline = Timeline(postgres_engine, settings)
    rows = timeline.rows()
    assert len(rows) == len({row.idempotency_key for row in rows})
    assert Counter(row.template for row in rows) == Counter(
        {"booking-confirmation": 42, "survey-invitation": 42, "survey-reminder": 42}
    )


def test_tick_refuses_a_naive_now(engine, settings):
    from datetime import datetime

    with pytest.raises(ValueError, match="aware"):
        tick(
            engine,
            now=datetime(2026, 3, 2, 9),
            policy=load_policy({}),
            zone=LONDON,
            secret=settings.secret,
        )


def test_a_no_show_corrected_after_the_evaluation_went_out_gets_it_back(world, engine, settings):
    people = world.standard()
    timeline = Timeline(engine, settings)
    timeline.tick("2026-03-02 09:00")
    timeline.tick("2026-03-16 16:30")  # the evaluation goes to both before the register closes
    with Session(engine) as session:
        course_session = session.get(CourseSession, people["session"].id)
        assert course_session is not None
        alice, chloe = attendance.register_bookings(session, course_session)
        now = at("2026-03-17 09:00")
        attendance.mark(session, alice, BookingStatus.ATTENDED, now=now, actor="t")
        attendance.mark(session, chloe, BookingStatus.NO_SHOW, now=now, actor="t")
        attendance.close_register(session, course_session, now=now, actor="t")
        session.commit()
    timeline.tick("2026-03-17 09:01")
    assert timeline.invitations("BK-1002")["end"] == "withdrawn"
    # The trainer had it wrong: Chloé was there.
    with Session(engine) as session:
        chloe_booking = session.get(type(people["chloe_booking"]), people["chloe_booking"].id)
        assert chloe_booking is not None
        attendance.mark(
            session,
            chloe_booking,
            BookingStatus.ATTENDED,
            now=at("2026-03-17 10:00"),
            actor="t",
            admin=True,
        )
        session.commit()
    timeline.tick("2026-03-17 10:01")
    assert timeline.invitations("BK-1002")["end"] == "open"
    # Her link works again, nothing is sent twice, and her reminder comes as it would have.
    assert [t for e, t, _ in timeline.sent(since=at("2026-03-17 10:00")) if e == CHLOE] == [
        "no-show-correction"
    ]
    timeline.tick("2026-03-18 16:30")
    assert (CHLOE, "survey-reminder", "end") in timeline.sent(since=at("2026-03-18 16:00"))
    # The reminder knows her mark, so its wording about the certificate can follow it.
    reminder = [row for row in timeline.rows(template="survey-reminder") if row.booking_id]
    assert {row.context["attendance"] for row in reminder} == {"attended"}
