"""Commands: /register for trainers, /stats and /remind for admins, /bookings with Cancel, /help."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from sqlmodel import select

from surveys.models import AuditEntry, Booking, BookingStatus, CourseSession, Person
from tests.conftest import utc
from tests.fake_telegram import FakeTelegram
from tests.telegram_harness import Clock, Phone, running_bot, telegram_settings

SESSION_DAY = utc("2026-03-16 09:20")  # the register opened at 09:15, before the 09:30 start
TARIQ_CHAT = 7002
ADMIN_CHAT = 7001
CHLOE_CHAT = 5_000_001
STRANGER_CHAT = 5_000_099


@pytest.fixture
def fake() -> Iterator[FakeTelegram]:
    with FakeTelegram() as server:
        yield server


@pytest.fixture
def tg(database_url, fake):
    return telegram_settings(
        database_url,
        fake,
        telegram_admins=str(ADMIN_CHAT),
        telegram_trainers=str(TARIQ_CHAT),
    )


@pytest.fixture
def people(world, session):
    found = world.standard()
    for key, chat in (("tariq", TARIQ_CHAT), ("chloe", CHLOE_CHAT)):
        person: Person = found[key]
        person.telegram_chat_id = chat
        session.add(person)
    session.commit()
    return found


async def test_a_trainer_marks_and_closes_the_register(session, engine, fake, tg, people):
    trainer = Phone(fake, TARIQ_CHAT, "Tariq")
    async with running_bot(tg, engine, Clock(SESSION_DAY)):
        [register] = await trainer.send("/register")
        assert register.text.splitlines()[:5] == [
            "Register: Working Together to Safeguard Children",
            "WT-2026-03-16, 09:30, Civic Centre, Room 2",
            "",
            "1. Alice Okafor: not marked",
            "2. Chloé O'Brien <Health & Care>: not marked",
        ]
        labels = [label for label, _ in register.buttons]
        assert labels[:3] == ["1 Attended", "1 Partly", "1 No-show"]
        assert labels[-1] == "Close register"

        tapped = await trainer.tap("1 Attended")
        assert tapped.toast == "Alice Okafor: attended"
        assert "1. Alice Okafor: attended" in tapped.text
        assert "✓ 1 Attended" in [label for label, _ in tapped.shown[-1].buttons]

        early = await trainer.tap("Close register")
        assert early.toast == "1 still to mark: mark everyone before closing the register."
        assert early.answer.params["show_alert"] is True

        await trainer.tap("2 No-show")
        confirm = await trainer.tap("Close register")
        assert "Close the register for WT-2026-03-16?" in confirm.text
        assert "1 attended, 0 partly attended, 1 no-show" in confirm.text
        closed = await trainer.tap("Yes, close the register")
        assert closed.toast == "Register closed."
        assert "The register was closed at 09:20 on 16 March." in closed.text
        assert closed.shown[-1].buttons == []

    session.expire_all()
    statuses = dict(session.exec(select(Booking.ref, Booking.status)).all())
    assert statuses == {"BK-1001": BookingStatus.ATTENDED, "BK-1002": BookingStatus.NO_SHOW}
    course_session = session.exec(select(CourseSession)).one()
    assert course_session.register_closed_at == SESSION_DAY
    assert course_session.register_closed_by == f"telegram:{TARIQ_CHAT}"


async def test_a_delegate_with_a_long_name_full_of_emoji_is_marked(
    session, engine, fake, tg, people
):
    alice: Person = people["alice"]
    alice.name = "Alice 👩🏽‍⚕️ <Okafor> & " + "🧒" * 120  # well over 200 UTF-16 code units
    session.add(alice)
    session.commit()
    trainer = Phone(fake, TARIQ_CHAT, "Tariq")
    async with running_bot(tg, engine, Clock(SESSION_DAY)):
        [register] = await trainer.send("/register")
        assert "1. Alice 👩🏽‍⚕️ <Okafor> & 🧒🧒" in register.text
        tapped = await trainer.tap("1 Partly")
    assert tapped.answer.status == 200  # Telegram takes the toast, cut to its 200 units
    assert tapped.toast.startswith("Alice 👩🏽‍⚕️ <Okafor> & 🧒") and tapped.toast.endswith("…")
    assert len(tapped.toast.encode("utf-16-le")) // 2 <= 200
    assert "1. Alice 👩🏽‍⚕️ <Okafor> & 🧒" in tapped.text and "partly attended" in tapped.text
    session.expire_all()
    assert session.get(Booking, people["alice_booking"].id).status == BookingStatus.PARTLY_ATTENDED


async def test_the_register_is_not_open_too_early(session, engine, fake, tg, people):
    trainer = Phone(fake, TARIQ_CHAT, "Tariq")
    async with running_bot(tg, engine, Clock(utc("2026-03-16 08:00"))):
        [register] = await trainer.send("/register")
    assert "The register opens at 09:15." in register.text
    assert register.buttons == []


async def test_strangers_are_refused_trainer_and_admin_commands(
    session, engine, fake, tg, people, caplog
):
    stranger = Phone(fake, STRANGER_CHAT, "Mallory")
    delegate = Phone(fake, CHLOE_CHAT, "Chloé")
    caplog.set_level(logging.WARNING, logger="evalbot.telegram")
    async with running_bot(tg, engine, Clock(SESSION_DAY)):
        [register] = await stranger.send("/register")
        [stats] = await delegate.send("/stats")
        [remind] = await stranger.send("/remind")
        # A forged register button from a delegate's chat changes nothing either.
        fake.say(CHLOE_CHAT, "/help")
        await fake.wait_for(lambda: fake.sent(CHLOE_CHAT)[-1].text.startswith("What I can do"))
        message_id, _, _ = fake.last_message(CHLOE_CHAT)
        booking = people["alice_booking"]
        forged = fake.tap_data(CHLOE_CHAT, message_id, f"r:{booking.id}:n:0")
        answer = await fake.answered(forged)

    assert register.text == "Only the trainers configured for this bot can use /register."
    assert (
        stats.text == remind.text == "Only the admins configured for this bot can use that command."
    )
    assert answer.params["text"].startswith("Only the trainers")
    refusals = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert f"refused /register from chat {STRANGER_CHAT}: not a configured trainer" in refusals
    assert f"refused /stats from chat {CHLOE_CHAT}: not a configured admin" in refusals
    assert f"refused /remind from chat {STRANGER_CHAT}: not a configured admin" in refusals
    session.expire_all()
    assert session.get(Booking, booking.id).status == BookingStatus.BOOKED


async def test_an_admin_sees_the_figures(session, engine, fake, tg, people):
    admin = Phone(fake, ADMIN_CHAT, "Admin")
    async with running_bot(tg, engine, Clock(SESSION_DAY)):
        [stats] = await admin.send("/stats")
        [help_text] = await admin.send("/help")
    assert stats.text.startswith("Riverside & District <Safeguarding> Partnership\nPeople: 5")
    assert "(2 in Telegram)" in stats.text
    assert "Bookings: 2 booked" in stats.text
    assert "/stats" in help_text.text and "/register" in help_text.text


async def test_bookings_list_and_cancel_in_time(session, engine, fake, tg, people):
    delegate = Phone(fake, CHLOE_CHAT, "Chloé")
    async with running_bot(tg, engine, Clock(utc("2026-03-02 10:00"))):
        [listing] = await delegate.send("/bookings")
        assert "Working Together to Safeguard Children" in listing.text
        assert "Monday 16 March 2026, 09:30, Civic Centre, Room 2 (booking BK-1002)" in listing.text
        asked = await delegate.tap("Cancel BK-1002")
        assert "Cancel this booking?" in asked.text
        assert "You are cancelling in time" in asked.text
        kept = await delegate.tap("No, keep my place")
        assert "your place on booking BK-1002 stands" in kept.text
        assert session.get(Booking, people["chloe_booking"].id).status == BookingStatus.BOOKED

        asked = await delegate.tap("Cancel BK-1002")
        confirm_id = asked.shown[-1].result["message_id"]
        confirm_data = dict(asked.shown[-1].buttons)["Yes, cancel my place"]
        done = await delegate.tap("Yes, cancel my place")
        assert done.toast == "Cancelled."
        assert "Booking BK-1002 for Working Together to Safeguard Children is cancelled" in (
            done.text
        )
        again = await fake.answered(fake.tap_data(CHLOE_CHAT, confirm_id, confirm_data))
        [listing] = await delegate.send("/bookings")

    assert again.params["text"] == "Not cancelled."  # a double tap
    assert listing.text == "You have no upcoming bookings."
    session.expire_all()
    assert session.get(Booking, people["chloe_booking"].id).status == BookingStatus.CANCELLED
    entry = session.exec(select(AuditEntry).where(AuditEntry.action == "booking.cancelled")).one()
    assert entry.actor == f"telegram:{CHLOE_CHAT}"


async def test_a_late_cancellation_says_the_manager_is_asked(session, engine, fake, tg, people):
    from surveys.models import OutboxMessage

    dev: Person = people["dev"]
    dev.name = "Dev O'Patel <Ward 3 & 4>"
    session.add(dev)
    session.commit()
    delegate = Phone(fake, CHLOE_CHAT, "Chloé")
    async with running_bot(tg, engine, Clock(utc("2026-03-13 10:00"))):
        await delegate.send("/bookings")
        asked = await delegate.tap("Cancel BK-1002")
        assert "This is a late cancellation (the cut-off is" in asked.text
        assert "your line manager will be asked to nominate a colleague" in asked.text
        done = await delegate.tap("Yes, cancel my place")
    assert done.toast == "Cancelled."
    assert "Booking BK-1002 for Working Together to Safeguard Children is cancelled late" in (
        done.text
    )
    assert "Dev O'Patel <Ward 3 & 4> has been asked to nominate a colleague" in done.text
    session.expire_all()
    late = session.get(Booking, people["chloe_booking"].id)
    assert late.status == BookingStatus.LATE_CANCELLATION
    request = session.exec(
        select(OutboxMessage).where(OutboxMessage.template == "nominate-request")
    ).one()
    assert request.person_id == dev.id


async def test_someone_elses_booking_cannot_be_cancelled(session, engine, fake, tg, people):
    delegate = Phone(fake, CHLOE_CHAT, "Chloé")
    async with running_bot(tg, engine, Clock(utc("2026-03-02 10:00"))):
        await delegate.send("/bookings")
        message_id, _, _ = fake.last_message(CHLOE_CHAT)
        alice_booking = people["alice_booking"]
        forged = fake.tap_data(CHLOE_CHAT, message_id, f"cy:{alice_booking.id}")
        answer = await fake.answered(forged)
    assert answer.params["text"] == "That booking is not yours, or no longer exists."
    session.expire_all()
    assert session.get(Booking, alice_booking.id).status == BookingStatus.BOOKED


async def test_an_admin_previews_then_confirms_a_reminder_campaign(
    session, engine, fake, tg, people
):
    from surveys.models import Channel, MessageKind, OutboxMessage, Stage
    from tests.telegram_harness import open_invitation

    now = utc("2026-03-17 10:00")  # a Tuesday, inside the sending window
    chloe = people["chloe"]
    chloe.preferred_channel = Channel.TELEGRAM
    session.add(chloe)
    session.commit()
    open_invitation(session, people["alice_booking"], Stage.END, now)
    open_invitation(session, people["chloe_booking"], Stage.END, now)
    admin = Phone(fake, ADMIN_CHAT, "Admin")
    async with running_bot(tg, engine, Clock(now)):
        [bad] = await admin.send("/remind stage")
        assert "is not name=value" in bad.text
        [shown] = await admin.send(
            '/remind stage=end course="Working Together to Safeguard Children"'
        )
        assert shown.text.startswith("Reminder campaign\nReminder campaign (")
        assert "2 to message (1 by email, 1 by telegram)" in shown.text
        assert "Chloé O'Brien <Health & Care>" in shown.text
        assert [label for label, _ in shown.buttons] == ["Confirm", "Cancel"]
        assert not session.exec(
            select(OutboxMessage).where(OutboxMessage.kind == MessageKind.CAMPAIGN)
        ).all()  # a preview writes nothing

        preview_id = shown.result["message_id"]
        confirm_data = dict(shown.buttons)["Confirm"]
        done = await admin.tap("Confirm")
        assert done.toast == "Campaign queued."
        assert done.text.startswith("Queued: Reminder campaign (")
        again = await fake.answered(fake.tap_data(ADMIN_CHAT, preview_id, confirm_data))
        assert again.params["text"] == "This campaign was already sent."

        # Another chat cannot replay the admin's Confirm.
        stranger = Phone(fake, STRANGER_CHAT, "Mallory")
        await stranger.send("/help")
        message_id, _, _ = fake.last_message(STRANGER_CHAT)
        forged = await fake.answered(fake.tap_data(STRANGER_CHAT, message_id, confirm_data))
        assert forged.params["text"].startswith("Only the admins")

    session.expire_all()
    queued = session.exec(
        select(OutboxMessage).where(OutboxMessage.kind == MessageKind.CAMPAIGN)
    ).all()
    assert sorted(row.channel for row in queued) == ["email", "telegram"]


async def test_a_failing_update_is_logged_and_the_person_told(
    session, engine, fake, tg, people, caplog
):
    from sqlalchemy import text

    delegate = Phone(fake, CHLOE_CHAT, "Chloé")
    caplog.set_level(logging.ERROR, logger="evalbot.telegram")
    async with running_bot(tg, engine, Clock(SESSION_DAY)):
        with engine.begin() as connection:  # the database loses a table under the bot
            connection.execute(text("ALTER TABLE course_session RENAME TO course_session_gone"))
        [sorry] = await delegate.send("/bookings")
        with engine.begin() as connection:
            connection.execute(text("ALTER TABLE course_session_gone RENAME TO course_session"))
        [listing] = await delegate.send("/bookings")
    assert sorry.text == "Sorry, something went wrong on our side. Please try again in a minute."
    assert "Working Together" in listing.text  # the bot carries on
    [failure] = [r for r in caplog.records if r.getMessage().startswith("a Telegram update failed")]
    assert failure.exc_info is not None and "course_session" in str(failure.exc_info[1])
