"""Planning: each booking's invitations and queued messages, and how they follow changes."""

from __future__ import annotations

from sqlmodel import Session, col, select

from schedules.planning import cancel_session, request_replan
from schedules.policy import load_policy
from surveys import outbox, tokens
from surveys.models import (
    Booking,
    BookingStatus,
    InvitationStatus,
    LinkPurpose,
    MessageKind,
    OutboxMessage,
    OutboxState,
    Stage,
)
from tests.conftest import utc
from tests.timeline import Timeline, at

# The standard world's session: Monday 16 March 2026, 09:30-16:30 (GMT).


def pending(timeline: Timeline) -> dict[str, tuple[str, object]]:
    """Unsent messages: key -> (recipient, due time in London)."""
    return {
        row.idempotency_key: (row.recipient, row.due_at.astimezone(at("2026-01-01 00:00").tzinfo))
        for row in timeline.rows(state=OutboxState.PENDING)
    }


def test_a_booking_gets_its_invitations_and_messages(world, engine, settings):
    people = world.standard()
    timeline = Timeline(engine, settings)
    report = timeline.tick("2026-03-02 09:00", deliver=False)
    assert report.plan.bookings == 2 and report.plan.invitations == 6

    alice = people["alice_booking"].id
    pre = timeline.invitation("BK-1001", Stage.PRE)
    end = timeline.invitation("BK-1001", Stage.END)
    impact = timeline.invitation("BK-1001", Stage.IMPACT)
    assert (pre.opens_at, pre.closes_at) == (utc("2026-03-09 09:30"), utc("2026-03-16 09:30"))
    # On the local clock: 14 days after 16:30 GMT is 16:30 British Summer Time.
    assert (end.opens_at, end.closes_at) == (at("2026-03-16 16:30"), at("2026-03-30 16:30"))
    # 91 days (13 weeks) after the end: Monday 15 June, 16:30.
    assert impact.opens_at == at("2026-06-15 16:30")
    assert impact.closes_at == at("2026-07-13 16:30")
    assert {pre.status, end.status, impact.status} == {InvitationStatus.PLANNED}

    # Planning queues the confirmation; each survey's invitation is queued as the survey opens.
    email = "alice.okafor@riverside.example"
    assert pending(timeline) == {
        f"booking:{alice}:confirmation:s1v1": (email, at("2026-03-02 09:00")),
        f"booking:{people['chloe_booking'].id}:confirmation:s1v1": (
            "chloe.obrien@northgate.example",
            at("2026-03-02 09:00"),
        ),
    }
    timeline.tick("2026-03-09 09:29", deliver=False)
    assert f"inv:{pre.id}:open:s1v1" not in pending(timeline)
    report = timeline.tick("2026-03-09 09:30", deliver=False)
    assert report.opened == 2 and report.invitations == 2
    assert pending(timeline)[f"inv:{pre.id}:open:s1v1"] == (email, at("2026-03-09 09:30"))
    timeline.tick("2026-03-16 16:30", deliver=False)
    assert pending(timeline)[f"inv:{end.id}:open:s1v1"] == (email, at("2026-03-16 16:30"))
    timeline.tick("2026-06-15 16:30", deliver=False)
    assert pending(timeline)[f"inv:{impact.id}:open:s1v1"] == (email, at("2026-06-15 16:30"))
    # No manager survey by default.
    assert "dev.patel@northgate.example" not in {r for r, _ in pending(timeline).values()}


def test_messages_carry_what_their_templates_show(world, engine, settings):
    people = world.standard()
    timeline = Timeline(engine, settings)
    timeline.tick("2026-03-02 09:00", deliver=False)
    timeline.tick("2026-03-09 09:30", deliver=False)
    confirmation, pre_invitation = (
        row
        for row in timeline.rows(booking_id=people["alice_booking"].id)
        if row.template in ("booking-confirmation", "survey-invitation")
        and (row.template == "booking-confirmation" or row.context["stage"] == "pre")
    )
    assert confirmation.kind == MessageKind.NOTICE
    assert confirmation.context["course_title"] == "Working Together to Safeguard Children"
    assert confirmation.context["session_starts_at"] == "2026-03-16T09:30:00+00:00"
    assert confirmation.context["venue"] == "Civic Centre, Room 2"
    assert confirmation.context["changed"] is False
    assert confirmation.context["cancel_by"] == "2026-03-13T00:00:00+00:00"
    booking_id = people["alice_booking"].id
    assert confirmation.context["links"]["cancel"] == ["cancel", f"booking:{booking_id}"]
    alice = people["alice"]
    assert confirmation.context["links"]["telegram"] == ["telegram", f"person:{alice.id}:0"]

    assert pre_invitation.kind == MessageKind.INVITATION
    context = pre_invitation.context
    assert context["stage"] == "pre"
    assert context["closes_at"] == "2026-03-16T09:30:00+00:00"
    invitation_id = pre_invitation.invitation_id
    assert context["links"]["survey"] == ["survey", f"invitation:{invitation_id}"]
    assert "cancel" in context["links"]
    assert context["first_question"]["text"]
    assert context["first_question"]["options"]

    # The links resolve: the survey link until the survey closes, the cancel link until the start.
    with Session(engine) as session:
        survey = tokens.make_token(
            settings.secret, LinkPurpose.SURVEY, f"invitation:{invitation_id}"
        )
        assert tokens.resolve(session, LinkPurpose.SURVEY, survey, utc("2026-03-10 10:00"))
        assert not tokens.resolve(session, LinkPurpose.SURVEY, survey, utc("2026-03-16 09:30"))
        cancel = tokens.make_token(settings.secret, LinkPurpose.CANCEL, f"booking:{booking_id}")
        assert tokens.resolve(session, LinkPurpose.CANCEL, cancel, utc("2026-03-15 10:00"))


def test_the_manager_survey_when_enabled(world, engine, settings):
    people = world.standard()
    no_manager = world.person("Eve Stone", "eve.stone@riverside.example", people["riverside"])
    world.booking(people["session"], no_manager, None, "BK-1003")
    world.session.commit()
    timeline = Timeline(engine, settings, load_policy({"manager_survey": True}))
    timeline.tick("2026-03-02 09:00", deliver=False)
    timeline.tick("2026-06-15 16:30", deliver=False)
    manager = timeline.invitation("BK-1001", Stage.MANAGER)
    assert manager.person_id == people["bob"].id
    assert (manager.opens_at, manager.closes_at) == (at("2026-06-15 16:30"), at("2026-07-13 16:30"))
    assert set(timeline.invitations("BK-1003")) == {"pre", "end", "impact"}
    row = timeline.rows(invitation_id=manager.id)[0]
    assert row.recipient == "bob.whitfield@riverside.example"
    assert row.context["delegate_name"] == "Alice Okafor"


def test_a_late_booking_gets_only_the_stages_still_open(world, engine, settings):
    people = world.standard()
    timeline = Timeline(engine, settings)
    # Booked on Friday evening 13 March, after the pre-course survey opened.
    timeline.tick("2026-03-13 19:00", deliver=False)
    pre = timeline.invitation("BK-1001", Stage.PRE)
    assert pre.status == InvitationStatus.OPEN
    queued = pending(timeline)
    # Sent at the next opening of the window: Monday 08:00, before the 09:30 start.
    assert queued[f"inv:{pre.id}:open:s1v1"][1] == at("2026-03-16 08:00")
    assert queued[f"booking:{people['alice_booking'].id}:confirmation:s1v1"][1] == at(
        "2026-03-16 08:00"
    )


def test_a_booking_imported_after_the_session_never_gets_a_closed_stage(world, engine, settings):
    people = world.standard()
    timeline = Timeline(engine, settings)
    timeline.tick("2026-03-31 10:00", deliver=False)  # the end-of-course survey closed yesterday
    assert timeline.invitations("BK-1001") == {"impact": "planned"}
    assert timeline.rows(booking_id=people["alice_booking"].id) == []  # no confirmation now


def test_a_survey_closing_before_the_window_opens_is_not_sent(world, engine, settings):
    world.standard()
    timeline = Timeline(engine, settings)
    # Sunday evening before a Monday 09:30 start... moved to a Monday 07:30 start.
    timeline.move_session("WT-2026-03-16", utc("2026-03-16 07:30"), utc("2026-03-16 15:00"))
    timeline.tick("2026-03-15 20:00", deliver=False)
    pre = timeline.invitation("BK-1001", Stage.PRE)
    assert pre.status == InvitationStatus.OPEN
    assert timeline.rows(invitation_id=pre.id) == []  # it would close at 07:30, before 08:00


def test_a_time_change_moves_unsent_messages_and_keeps_sent_ones(world, engine, settings):
    people = world.standard()
    timeline = Timeline(engine, settings)
    timeline.tick("2026-03-02 09:00", deliver=False)
    timeline.tick("2026-03-09 09:30", deliver=False)
    pre = timeline.invitation("BK-1001", Stage.PRE)
    chloe_pre = timeline.invitation("BK-1002", Stage.PRE)
    # Alice's confirmation and pre-course invitation went out; Chloé's are still waiting.
    with Session(engine) as session:
        for row in session.exec(
            select(OutboxMessage).where(col(OutboxMessage.booking_id) == people["alice_booking"].id)
        ):
            row.state, row.sent_at = OutboxState.SENT, row.due_at
            session.add(row)
        session.commit()

    timeline.move_session("WT-2026-03-16", utc("2026-03-23 09:30"), utc("2026-03-23 16:30"))
    report = timeline.tick("2026-03-10 11:00", deliver=False)
    assert report.plan.bookings == 2

    alice = people["alice_booking"].id
    by_key = {row.idempotency_key: row for row in timeline.rows(booking_id=alice)}
    assert by_key[f"booking:{alice}:confirmation:s1v1"].state == OutboxState.SENT
    assert by_key[f"inv:{pre.id}:open:s1v1"].state == OutboxState.SENT
    changed = by_key[f"booking:{alice}:confirmation:s1v2"]
    assert changed.state == OutboxState.PENDING
    assert changed.context["changed"] is True
    assert changed.context["previous_starts_at"] == "2026-03-16T09:30:00+00:00"
    # Her pre-course link is out: the survey stays open, to the new start, and is not re-sent.
    assert f"inv:{pre.id}:open:s1v2" not in by_key
    pre_now = timeline.invitation("BK-1001", Stage.PRE)
    assert pre_now.status == InvitationStatus.OPEN
    assert pre_now.closes_at == utc("2026-03-23 09:30")
    end = timeline.invitation("BK-1001", Stage.END)
    assert (end.opens_at, end.closes_at) == (at("2026-03-23 16:30"), at("2026-04-06 16:30"))

    # Chloé's had not gone out: they are withdrawn, and come at the new times instead.
    chloe = people["chloe_booking"].id
    chloe_rows = {row.idempotency_key: row for row in timeline.rows(booking_id=chloe)}
    assert chloe_rows[f"booking:{chloe}:confirmation:s1v1"].state == OutboxState.WITHDRAWN
    assert chloe_rows[f"booking:{chloe}:confirmation:s1v2"].context["changed"] is False
    assert chloe_rows[f"inv:{chloe_pre.id}:open:s1v1"].state == OutboxState.WITHDRAWN
    assert timeline.invitation("BK-1002", Stage.PRE).status == InvitationStatus.PLANNED
    assert timeline.tick("2026-03-10 11:00", deliver=False).plan.bookings == 0  # once only
    timeline.tick("2026-03-16 09:30", deliver=False)
    assert pending(timeline)[f"inv:{chloe_pre.id}:open:s1v2"][1] == at("2026-03-16 09:30")


def test_a_cancelled_session_withdraws_and_tells_delegates_and_managers(world, engine, settings):
    people = world.standard()
    timeline = Timeline(engine, settings)
    timeline.tick("2026-03-02 09:00", deliver=False)
    with Session(engine) as session:
        row = session.get(type(people["session"]), people["session"].id)
        assert row is not None
        cancel_session(session, row, now=at("2026-03-11 19:00"), actor="cli:admin")
        session.commit()
    report = timeline.tick("2026-03-11 19:00", deliver=False)
    assert report.plan.sessions_cancelled == 2
    notices = timeline.rows(template="session-cancelled")
    assert sorted((row.recipient, row.context["role"]) for row in notices) == [
        ("alice.okafor@riverside.example", "delegate"),
        ("bob.whitfield@riverside.example", "manager"),
        ("chloe.obrien@northgate.example", "delegate"),
        ("dev.patel@northgate.example", "manager"),
    ]
    # Not held for the sending window: it is evening, and they may be about to travel.
    assert {row.due_at for row in notices} == {at("2026-03-11 19:00")}
    assert all(row.state == OutboxState.PENDING for row in notices)
    planned = [row for row in timeline.rows() if row.template != "session-cancelled"]
    assert {row.state for row in planned} == {OutboxState.WITHDRAWN}
    assert set(timeline.invitations("BK-1001").values()) == {"withdrawn"}
    again = timeline.tick("2026-03-11 19:05", deliver=False)
    assert again.plan.sessions_cancelled == 0
    assert len(timeline.rows(template="session-cancelled")) == 4


def test_a_session_cancelled_after_it_ran_tells_nobody(world, engine, settings):
    people = world.standard()
    with Session(engine) as session:
        row = session.get(type(people["session"]), people["session"].id)
        assert row is not None
        cancel_session(session, row, now=at("2026-03-20 10:00"), actor="cli:admin")
        session.commit()
    timeline = Timeline(engine, settings)
    timeline.tick("2026-03-20 10:00", deliver=False)
    assert timeline.rows() == []


def test_a_cancelled_booking_loses_its_planned_messages_but_not_its_notices(
    world, engine, settings
):
    people = world.standard()
    timeline = Timeline(engine, settings)
    timeline.tick("2026-03-02 09:00", deliver=False)
    with Session(engine) as session:
        booking = session.get(Booking, people["alice_booking"].id)
        alice = session.get(type(people["alice"]), people["alice"].id)
        assert booking is not None and alice is not None
        booking.status = BookingStatus.CANCELLED
        session.add(booking)
        outbox.enqueue(
            session,
            key=f"booking:{booking.id}:cancelled",
            person=alice,
            template="cancellation-confirmed",
            context={},
            due_at=at("2026-03-03 10:00"),
            kind=MessageKind.NOTICE,
            booking_id=booking.id,
        )
        session.commit()
    report = timeline.tick("2026-03-03 10:00", deliver=False)
    assert report.bookings_withdrawn == 1
    states = {
        row.template: row.state for row in timeline.rows(booking_id=people["alice_booking"].id)
    }
    assert states == {
        "booking-confirmation": OutboxState.WITHDRAWN,
        "cancellation-confirmed": OutboxState.PENDING,
    }
    assert set(timeline.invitations("BK-1001").values()) == {"withdrawn"}
    assert set(timeline.invitations("BK-1002").values()) == {"planned"}
    assert timeline.tick("2026-03-03 10:00", deliver=False).bookings_withdrawn == 0


def test_a_replacement_gets_the_pre_course_survey_without_a_second_joining_notice(
    world, engine, settings
):
    people = world.standard()
    timeline = Timeline(engine, settings)
    timeline.tick("2026-03-02 09:00", deliver=False)
    eve = world.person("Eve Stone", "eve.stone@riverside.example", people["riverside"])
    world.session.commit()
    with Session(engine) as session:
        original = session.get(Booking, people["alice_booking"].id)
        assert original is not None
        original.status = BookingStatus.REPLACED
        session.add(original)
        session.commit()
    world.booking(
        people["session"], eve, people["bob"], "BK-1001-R", replaces_id=people["alice_booking"].id
    )
    world.session.commit()
    timeline.tick("2026-03-12 14:00", deliver=False)
    replacement = timeline.invitation("BK-1001-R", Stage.PRE)
    rows = timeline.rows(person_id=eve.id)
    assert [(row.template, row.due_at) for row in rows] == [
        ("survey-invitation", at("2026-03-12 14:00")),
    ]
    assert rows[0].invitation_id == replacement.id
    assert set(timeline.invitations("BK-1001").values()) == {"withdrawn"}


def test_a_course_policy_sets_its_own_impact_survey(world, engine, settings):
    world.standard()
    policy = load_policy(
        {
            "courses": {
                "Working Together to Safeguard Children": {
                    "stages": {"impact": {"opens_after": "6w"}}
                }
            }
        }
    )
    timeline = Timeline(engine, settings, policy)
    timeline.tick("2026-03-02 09:00", deliver=False)
    impact = timeline.invitation("BK-1001", Stage.IMPACT)
    assert impact.opens_at == at("2026-04-27 16:30")  # six weeks on, in summer time


def test_a_booking_active_again_gets_its_surveys_back(world, engine, settings):
    people = world.standard()
    timeline = Timeline(engine, settings)
    timeline.tick("2026-03-02 09:00", deliver=False)
    with Session(engine) as session:
        booking = session.get(Booking, people["alice_booking"].id)
        assert booking is not None
        booking.status = BookingStatus.NO_SHOW
        session.add(booking)
        session.commit()
    timeline.tick("2026-03-16 17:00", deliver=False)
    assert timeline.invitations("BK-1001")["end"] == "withdrawn"
    # The register is corrected: she was there after all.
    with Session(engine) as session:
        booking = session.get(Booking, people["alice_booking"].id)
        assert booking is not None
        booking.status = BookingStatus.ATTENDED
        request_replan(session, booking)
        session.commit()
    timeline.tick("2026-03-17 09:00", deliver=False)
    assert timeline.invitations("BK-1001") == {"pre": "closed", "end": "open", "impact": "planned"}
    end = timeline.invitation("BK-1001", Stage.END)
    revived = [
        row for row in timeline.rows(invitation_id=end.id) if row.state == OutboxState.PENDING
    ]
    assert [row.due_at for row in revived] == [at("2026-03-17 09:00")]


def test_an_impact_survey_three_calendar_months_on_keeps_the_day_of_the_month(
    world, engine, settings
):
    world.standard()
    policy = load_policy(
        {"stages": {"impact": {"opens_after": "3mo", "reminders": ["1mo"], "closes_after": "2mo"}}}
    )
    timeline = Timeline(engine, settings, policy)
    timeline.tick("2026-03-02 09:00", deliver=False)
    impact = timeline.invitation("BK-1001", Stage.IMPACT)
    # Monday 16 March 16:30 GMT, three calendar months on: 16 June 16:30 (summer time).
    assert impact.opens_at == at("2026-06-16 16:30")
    assert impact.closes_at == at("2026-08-16 16:30")
    # The reminder follows one calendar month after the opening, and not before.
    assert timeline.tick("2026-06-16 17:00").opened == 2  # both delegates
    assert timeline.tick("2026-07-15 10:00").reminders == 0
    assert timeline.tick("2026-07-16 17:00").reminders == 2
