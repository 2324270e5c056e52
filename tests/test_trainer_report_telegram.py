"""The trainer's report in Telegram: a trainer who uses Telegram gets it in the chat when the
session ends (the real python-telegram-bot client against the fake Bot API on loopback), and
answers it there with buttons and typed replies, as delegates answer theirs."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from sqlmodel import select

from surveys.models import Answer, Channel, InvitationStatus, Person, Stage, SurveyInvitation
from tests.conftest import utc
from tests.fake_telegram import FakeTelegram
from tests.telegram_harness import Clock, Phone, running_bot, telegram_settings
from tests.timeline import Timeline

TARIQ_CHAT = 5_000_009
ENDS = utc("2026-03-16 16:30")


@pytest.fixture
def fake() -> Iterator[FakeTelegram]:
    with FakeTelegram() as server:
        yield server


async def test_a_trainer_in_telegram_reports_in_the_chat(
    session, engine, fake, database_url, world
):
    people = world.standard()
    tariq: Person = people["tariq"]
    tariq.telegram_chat_id = TARIQ_CHAT
    tariq.preferred_channel = Channel.TELEGRAM
    session.add(tariq)
    session.commit()
    tg = telegram_settings(database_url, fake)
    phone = Phone(fake, TARIQ_CHAT, "Tariq")
    timeline = Timeline(engine, tg)
    # The timeline delivers with asyncio.run: in a thread of its own, beside this test's loop.
    for moment in ("2026-03-02 09:00", "2026-03-16 16:30"):
        await asyncio.to_thread(timeline.tick, moment)

    [row] = timeline.rows(template="survey-invitation", person_id=tariq.id)
    assert row.channel == Channel.TELEGRAM and row.state == "sent"
    [message] = [call for call in fake.sent(TARIQ_CHAT) if call.buttons]
    assert (
        "Thank you for delivering <b>Working Together to Safeguard Children</b>"
        in (message.params["text"])
    )
    assert [label for label, _ in message.buttons] == ["Answer here"]
    async with running_bot(tg, engine, Clock(ENDS)):
        started = await phone.tap("Answer here")
        assert "Your report on the session: Working Together" in started.text
        assert "Question 1 of 5" in started.text
        tapped = await phone.tap("5")
        assert "How many delegates attended" in tapped.text
        [reply] = await phone.send("12")
        assert "any issues with the session" in reply.text
        skipped = await phone.tap("Skip")
        assert skipped.toast == "Skipped."
        tapped = await phone.tap("No")
        assert "What would you change" in tapped.text  # no details asked after "No"
        [reply] = await phone.send("Nothing: it went well")
        assert "That was the last question" in reply.text
        done = await phone.tap("Send my answers")
        assert "Your answers have been sent" in done.text

    invitation = session.exec(
        select(SurveyInvitation).where(SurveyInvitation.stage == Stage.TRAINER)
    ).one()
    session.refresh(invitation)
    assert invitation.status == InvitationStatus.FINISHED
    given = {
        a.question_key: a
        for a in session.exec(select(Answer).where(Answer.invitation_id == invitation.id))
    }
    assert given["trainer_went"].value_num == 5.0 and given["trainer_went"].channel == "telegram"
    assert given["trainer_attended"].value_text == "12"
    assert given["trainer_issues"].value_text is None
    assert given["trainer_concern"].value_text == "no"
    assert "trainer_concern_details" not in given
