"""The waiting list: numbers, offers down the list, accept links, full and cancelled sessions.

Alice's and Chloé's course starts on Monday 16 March 2026 at 09:30 (GMT), 20 places. Three
colleagues wait for a place: Wen (booked first), Xavier, then Yusuf. In-time cancellations end
on Thursday 12 March; offers close at the end of Friday 13 March (1 working day before).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, col, select
from typer.testing import CliRunner

from bot.cli import app as cli_app
from bot.settings import Settings
from bot.web.security import form_token
from schedules.cancellation import NominationError, nominate_replacement
from schedules.offers import find_offer
from schedules.planning import plan
from schedules.policy import Policy, load_policy
from schedules.tick import TickReport, tick
from surveys.models import (
    Booking,
    BookingStatus,
    CourseSession,
    OfferState,
    OutboxMessage,
    PlaceOffer,
    SessionStatus,
    SurveyInvitation,
    Vacancy,
    VacancyState,
)
from tests.conftest import utc
from tests.test_cancellation import (
    ADMIN,
    IN_TIME,
    LATE,
    Mailbox,
    cancel,
    client_at,
    link_in,
    make_settings,
    reload,
    to,
)

WAITING = ("Wen Li", "Xavier Hughes", "Yusuf Demir")


@pytest.fixture
def charged(database_url: str, tmp_path: Path) -> Settings:
    """A partnership that charges £75 for a full day, with a coordinator's address."""
    return make_settings(database_url, tmp_path, policy={"charge_full_day_pence": 7500})


@pytest.fixture
def policy(charged: Settings) -> Policy:
    return load_policy(charged.policy)


@pytest.fixture
def people(world, session, charged, policy) -> dict:
    """Alice and Chloé booked and planned (confirmations queued) on Monday 2 March."""
    people = world.standard()
    plan(
        session,
        now=utc("2026-03-02 09:00"),
        policy=policy,
        zone=charged.zone,
        secret=charged.secret,
    )
    session.commit()
    return reload(session, people)


@pytest.fixture
def waiters(people, world, session: Session) -> dict[str, Booking]:
    """Wen, Xavier and Yusuf on the waiting list, in that order of booking."""
    found = {}
    for n, name in enumerate(WAITING):
        first = name.split()[0].lower()
        person = world.person(name, f"{first}@riverside.example", people["riverside"])
        booking = world.booking(
            people["session"], person, people["bob"], f"BK-W{n + 1}", status=BookingStatus.WAITING
        )
        # Booked later than Alice and Chloé, an hour apart; ids in the reverse order, so the
        # list's order is seen to come from booked_at.
        booking.booked_at = utc("2026-01-20 10:00") + timedelta(hours=n)
        found[first] = booking
    session.commit()
    return found


def run_tick(engine, settings, policy, now) -> TickReport:
    return tick(
        engine,
        now=now,
        policy=policy,
        zone=settings.zone,
        secret=settings.secret,
        admin_email=settings.admin_email,
    )


def offer_link(mails, address: str) -> str:
    """The accept link in the place offer ``address`` was sent."""
    offers = [m for m in to(mails, address) if m.subject.startswith("A place for you")]
    assert len(offers) == 1, [m.subject for m in to(mails, address)]
    return link_in(offers[0].text, "/offer/")


def status_of(session: Session, ref: str) -> str:
    session.expire_all()
    booking = session.exec(select(Booking).where(Booking.ref == ref)).one()
    return str(booking.status)


def accept_page(client, path: str) -> tuple[int, str]:
    page = client.get(path)
    return page.status_code, page.text


def post_accept(client, session: Session, settings, path: str):
    found = find_offer(session, path.removeprefix("/offer/"))
    assert found is not None
    csrf = form_token(settings.secret, f"offer:{found.offer.id}")
    return client.post(path, data={"csrf": csrf}, headers={"Origin": "http://testserver"})


# -- The list -------------------------------------------------------------------------------------


def test_each_waiting_delegate_is_told_their_number_and_nothing_else(
    waiters, session, engine, charged, policy
):
    mailbox = Mailbox(engine, charged)
    run_tick(engine, charged, policy, utc("2026-03-03 09:00"))
    mails = mailbox.deliver(utc("2026-03-03 09:00"))
    for number, name in enumerate(WAITING, start=1):
        address = f"{name.split()[0].lower()}@riverside.example"
        theirs = to(mails, address)
        assert [m.subject for m in theirs] == [
            "Waiting list: Working Together to Safeguard Children, 16 March 2026"
        ]
        assert f"you are on its waiting list, number {number}" in theirs[0].text
    waiting_ids = [b.id for b in waiters.values()]
    session.expire_all()
    assert not session.exec(
        select(SurveyInvitation).where(col(SurveyInvitation.booking_id).in_(waiting_ids))
    ).all(), "a waiting delegate gets no survey"
    templates = {
        m.template
        for m in session.exec(
            select(OutboxMessage).where(col(OutboxMessage.booking_id).in_(waiting_ids))
        ).all()
    }
    assert templates == {"waitlist-joined"}
    # A second tick tells nobody again.
    run_tick(engine, charged, policy, utc("2026-03-03 09:05"))
    assert mailbox.deliver(utc("2026-03-03 09:05")) == []


def test_the_waitlist_command_lists_the_queue_in_booking_order(
    waiters, database_url, monkeypatch, tmp_path: Path
):
    monkeypatch.setenv("EVALBOT_DATABASE_URL", database_url)
    result = CliRunner().invoke(cli_app, ["waitlist", "WT-2026-03-16"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "Session WT-2026-03-16: 2 booked of 20 places; 3 waiting."
    assert [line.split()[1] for line in lines[1:]] == ["BK-W1", "BK-W2", "BK-W3"]
    assert "1. BK-W1  Wen Li <wen@riverside.example>, Riverside Children's Services" in lines[1]
    unknown = CliRunner().invoke(cli_app, ["waitlist", "NO-SUCH"])
    assert unknown.exit_code == 1
    assert "No session has the reference 'NO-SUCH'" in unknown.output


# -- Offers ---------------------------------------------------------------------------------------


def test_a_cancelled_place_is_offered_to_the_first_in_line_who_accepts_it(
    people, waiters, session, engine, charged, policy
):
    mailbox = Mailbox(engine, charged)
    run_tick(engine, charged, policy, utc("2026-03-03 09:00"))
    mailbox.deliver(utc("2026-03-03 09:00"))

    outcome = cancel(session, people["alice_booking"], charged, policy, IN_TIME)
    assert "the waiting list (the place is offered to the first in line)" in outcome.told
    report = run_tick(engine, charged, policy, IN_TIME)
    assert report.offers.offered == 1
    mails = mailbox.deliver(IN_TIME)
    assert to(mails, ADMIN) == [], "someone is waiting: the coordinator is not told"
    offer_mail = to(mails, "wen@riverside.example")
    assert [m.subject for m in offer_mail] == [
        "A place for you: Working Together to Safeguard Children, 16 March 2026"
    ]
    assert "accept by 11:59 on Friday 13 March 2026" in offer_mail[0].text
    assert to(mails, "xavier@riverside.example") == []
    path = link_in(offer_mail[0].text, "/offer/")

    client = client_at(charged, engine, IN_TIME + timedelta(hours=1))
    for _ in range(2):  # a mail scanner opening the link changes nothing
        code, text = accept_page(client, path)
        assert (
            code == 200
            and "Accept the place" in text
            and "open until 11:59 on Friday 13 March 2026" in text
        )
    assert status_of(session, "BK-W1") == "waiting"

    accepted = post_accept(client, session, charged, path)
    assert accepted.status_code == 200, accepted.text
    assert "The place is yours" in accepted.text
    assert status_of(session, "BK-W1") == "booked"

    later = IN_TIME + timedelta(hours=1, minutes=1)
    run_tick(engine, charged, policy, later)
    mails = mailbox.deliver(later)
    wen = to(mails, "wen@riverside.example")
    assert sorted(m.subject for m in wen) == [
        "Before Working Together to Safeguard Children: three minutes of questions",
        "Your place: Working Together to Safeguard Children, 16 March 2026",
    ], "a normal booking: its confirmation, and the pre-course questionnaire, open since Monday"
    manager = to(mails, "bob.whitfield@riverside.example")
    assert [m.subject for m in manager] == [
        "Wen Li has a place on Working Together to Safeguard Children"
    ]
    session.expire_all()
    wen_booking = session.exec(select(Booking).where(Booking.ref == "BK-W1")).one()
    stages = session.exec(
        select(SurveyInvitation.stage).where(SurveyInvitation.booking_id == wen_booking.id)
    ).all()
    assert "pre" in stages, "the new booking is planned: its pre-course questionnaire is due"

    # The link used again: a clear page, and nothing changes.
    again = post_accept(client, session, charged, path)
    assert again.status_code == 409
    assert "You have already accepted this place" in again.text
    assert status_of(session, "BK-W2") == "waiting"
    session.expire_all()
    assert len(session.exec(select(PlaceOffer)).all()) == 1


def test_an_offer_not_taken_in_time_passes_to_the_next_and_its_link_then_refuses(
    people, waiters, session, engine, charged, policy
):
    mailbox = Mailbox(engine, charged)
    cancel(session, people["alice_booking"], charged, policy, IN_TIME)
    run_tick(engine, charged, policy, IN_TIME)
    wen_path = offer_link(mailbox.deliver(IN_TIME), "wen@riverside.example")

    lapsed_at = utc("2026-03-13 12:00")  # Friday noon: Wen's 24 hours are up
    report = run_tick(engine, charged, policy, lapsed_at)
    assert (report.offers.lapsed, report.offers.offered) == (1, 1)
    xavier = to(mailbox.deliver(lapsed_at), "xavier@riverside.example")
    # Offers close at the end of Friday: Xavier's is shorter than 24 hours.
    assert "accept by 23:59 on Friday 13 March 2026" in xavier[0].text

    client = client_at(charged, engine, lapsed_at + timedelta(minutes=5))
    code, text = accept_page(client, wen_path)
    assert code == 409 and "This offer has ended" in text
    refused = post_accept(client, session, charged, wen_path)
    assert refused.status_code == 409 and "This offer has ended" in refused.text
    assert status_of(session, "BK-W1") == "waiting", "Wen stays on the list"

    xavier_path = link_in(xavier[0].text, "/offer/")
    assert post_accept(client, session, charged, xavier_path).status_code == 200
    assert status_of(session, "BK-W2") == "booked"
    # Wen's old link, now that the place went to Xavier: a clear page, nothing changes.
    code, text = accept_page(client, wen_path)
    assert code == 409 and "This place has already gone to someone else" in text
    refused = post_accept(client, session, charged, wen_path)
    assert refused.status_code == 409 and "already gone to someone else" in refused.text
    assert status_of(session, "BK-W1") == "waiting"


def test_when_the_whole_list_lets_the_offers_lapse_the_coordinator_is_told(
    people, waiters, session, engine, charged, policy
):
    mailbox = Mailbox(engine, charged)
    cancel(session, people["alice_booking"], charged, policy, IN_TIME)
    run_tick(engine, charged, policy, IN_TIME)
    friday = utc("2026-03-13 12:00")
    run_tick(engine, charged, policy, friday)  # Wen lapses; Xavier offered until midnight
    report = run_tick(engine, charged, policy, utc("2026-03-14 00:00"))
    # Xavier lapses at midnight, and offers have closed: Yusuf is not offered it.
    assert (report.offers.lapsed, report.offers.offered, report.offers.unfilled) == (1, 0, 1)
    mails = mailbox.deliver(utc("2026-03-14 00:00"))
    assert to(mails, "yusuf@riverside.example") == []
    admin = [m for m in to(mails, ADMIN) if not m.subject.startswith("Under its minimum")]
    assert [m.subject for m in admin] == [
        "A place is free: Working Together to Safeguard Children, 16 March 2026"
    ]
    assert "It was offered to the waiting list (2 offers)" in admin[0].text


def test_nobody_waiting_tells_the_coordinator_as_before(people, session, engine, charged, policy):
    mailbox = Mailbox(engine, charged)
    cancel(session, people["alice_booking"], charged, policy, IN_TIME)
    run_tick(engine, charged, policy, IN_TIME)
    admin = [m for m in to(mailbox.deliver(IN_TIME), ADMIN) if "minimum" not in m.subject]
    assert [m.subject.split(":")[0] for m in admin] == ["A place is free"]
    assert "cancelled booking BK-1001 in time" in admin[0].text
    assert session.exec(select(Vacancy)).all() == []


def test_a_place_cancelled_in_the_booking_system_is_offered_too(
    people, waiters, session, engine, charged, policy
):
    # What an import of a "cancelled" row does to the booking.
    chloe = session.get(Booking, people["chloe_booking"].id)
    assert chloe is not None
    chloe.status = BookingStatus.CANCELLED
    chloe.cancelled_at = IN_TIME
    session.add(chloe)
    session.commit()
    report = run_tick(engine, charged, policy, IN_TIME)
    assert report.offers.offered == 1
    offer = session.exec(select(PlaceOffer)).one()
    assert offer.booking_id == waiters["wen"].id
    assert session.exec(select(Vacancy.reason)).one() == "cancelled"


def test_a_late_place_goes_to_the_list_after_the_nomination_deadline_with_no_charge(
    people, waiters, session, engine, charged, policy
):
    mailbox = Mailbox(engine, charged)
    cancel(session, people["alice_booking"], charged, policy, LATE)  # Friday 10:00
    report = run_tick(engine, charged, policy, LATE)
    assert report.offers.offered == 0, "Bob may nominate a colleague first"
    assert session.exec(select(Vacancy.state)).one() == VacancyState.NOMINATING
    deadline = LATE + timedelta(hours=4)
    report = run_tick(engine, charged, policy, deadline)
    assert report.offers.offered == 1
    with pytest.raises(NominationError, match="offered to the session's waiting list"):
        nominate_replacement(
            session,
            session.get(Booking, people["alice_booking"].id),  # type: ignore[arg-type]
            name="Priya Shah",
            email="priya.shah@riverside.example",
            now=deadline + timedelta(minutes=1),
            actor="web",
        )
    session.rollback()
    path = offer_link(mailbox.deliver(deadline), "wen@riverside.example")
    client = client_at(charged, engine, deadline + timedelta(minutes=30))
    assert post_accept(client, session, charged, path).status_code == 200
    assert status_of(session, "BK-1001") == "replaced"
    run_tick(engine, charged, policy, utc("2026-03-16 10:00"))
    session.expire_all()
    alice = session.exec(select(Booking).where(Booking.ref == "BK-1001")).one()
    assert alice.charge_pence is None, "the place was taken: no charge"


def test_a_nominated_colleague_before_the_deadline_keeps_the_place_from_the_list(
    people, waiters, session, engine, charged, policy
):
    cancel(session, people["alice_booking"], charged, policy, LATE)
    run_tick(engine, charged, policy, LATE)
    nominate_replacement(
        session,
        session.get(Booking, people["alice_booking"].id),  # type: ignore[arg-type]
        name="Priya Shah",
        email="priya.shah@riverside.example",
        now=LATE + timedelta(hours=1),
        actor="web",
    )
    session.commit()
    report = run_tick(engine, charged, policy, LATE + timedelta(hours=4))
    assert report.offers.offered == 0
    assert session.exec(select(Vacancy.state)).one() == VacancyState.WITHDRAWN


# -- Cancelled sessions ---------------------------------------------------------------------------


def test_cancelling_a_session_tells_its_waiting_list_and_kills_open_offers(
    people, waiters, session, engine, charged, policy, database_url, monkeypatch
):
    mailbox = Mailbox(engine, charged)
    cancel(session, people["alice_booking"], charged, policy, IN_TIME)
    run_tick(engine, charged, policy, IN_TIME)
    path = offer_link(mailbox.deliver(IN_TIME), "wen@riverside.example")

    monkeypatch.setenv("EVALBOT_DATABASE_URL", database_url)
    monkeypatch.setenv("EVALBOT_ADMIN_EMAIL", ADMIN)
    when = "2026-03-12T14:00"
    result = CliRunner().invoke(cli_app, ["session", "cancel", "WT-2026-03-16", "--now", when])
    assert result.exit_code == 0, result.output
    assert "is cancelled" in result.output
    again = CliRunner().invoke(cli_app, ["session", "cancel", "WT-2026-03-16", "--now", when])
    assert again.exit_code == 1 and "already cancelled" in again.output

    at = utc("2026-03-12 14:01")
    run_tick(engine, charged, policy, at)
    mails = mailbox.deliver(at)
    for name in WAITING:
        theirs = to(mails, f"{name.split()[0].lower()}@riverside.example")
        assert [m.subject for m in theirs] == [
            "Cancelled: Working Together to Safeguard Children, 16 March 2026"
        ]
        assert "whose waiting list you were on, has been cancelled" in theirs[0].text
    assert [m.subject.split(":")[0] for m in to(mails, "chloe.obrien@northgate.example")] == [
        "Cancelled"
    ]
    session.expire_all()
    assert session.exec(select(PlaceOffer.state)).one() == OfferState.WITHDRAWN
    code, text = accept_page(client_at(charged, engine, at), path)
    assert code == 409 and "This session has been cancelled" in text
    assert status_of(session, "BK-W1") == "cancelled"


# -- Full and under-filled sessions ---------------------------------------------------------------


def test_a_new_booking_for_a_full_session_goes_on_the_waiting_list(
    people, world, session, engine, charged, policy
):
    course_session = session.get(CourseSession, people["session"].id)
    assert course_session is not None
    course_session.max_places = 2  # Alice and Chloé hold both places
    session.add(course_session)
    late_comer = world.person("Zara Ahmed", "zara@riverside.example", people["riverside"])
    world.booking(course_session, late_comer, people["bob"], "BK-1003")
    session.commit()
    mailbox = Mailbox(engine, charged)
    report = run_tick(engine, charged, policy, utc("2026-03-03 09:00"))
    assert report.waitlisted == 1
    assert status_of(session, "BK-1003") == "waiting"
    zara = to(mailbox.deliver(utc("2026-03-03 09:00")), "zara@riverside.example")
    assert [m.subject.split(":")[0] for m in zara] == ["Waiting list"]
    assert "number 1" in zara[0].text


def test_an_under_filled_session_is_reported_once_at_ten_working_days(
    people, session, engine, charged, policy, database_url, monkeypatch
):
    mailbox = Mailbox(engine, charged)
    # Ten working days before Monday 16 March end with Monday 2 March.
    report = run_tick(engine, charged, policy, utc("2026-03-02 23:00"))
    assert report.under_filled == 0
    report = run_tick(engine, charged, policy, utc("2026-03-03 00:00"))
    assert report.under_filled == 1
    admin = to(mailbox.deliver(utc("2026-03-03 00:00")), ADMIN)
    assert [m.subject for m in admin] == [
        "Under its minimum: Working Together to Safeguard Children, 16 March 2026 (2 of 12)"
    ]
    assert "Booked: 2\nMinimum: 12\nMaximum: 20\nWaiting list: 0" in admin[0].text.replace(
        "\r\n", "\n"
    )
    assert "evalbot session cancel WT-2026-03-16" in admin[0].text
    assert run_tick(engine, charged, policy, utc("2026-03-04 09:00")).under_filled == 0

    monkeypatch.setenv("EVALBOT_DATABASE_URL", database_url)
    listed = CliRunner().invoke(cli_app, ["session", "under-filled", "--now", "2026-03-04T09:00"])
    assert listed.exit_code == 0, listed.output
    assert "WT-2026-03-16  Working Together to Safeguard Children" in listed.output
    assert "2 booked, minimum 12, 0 waiting; coordinator told 03 Mar 2026" in listed.output


def test_a_cancelled_session_is_not_reported_under_filled(people, session, engine, charged, policy):
    course_session = session.get(CourseSession, people["session"].id)
    assert course_session is not None
    course_session.status = SessionStatus.CANCELLED
    session.add(course_session)
    session.commit()
    assert run_tick(engine, charged, policy, utc("2026-03-03 09:00")).under_filled == 0
