"""Surveys in chat: buttons and text, Back and Skip, double taps, restarts, and the web form."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlmodel import select

from surveys.models import Answer, InvitationStatus, Person, Stage, SurveyInvitation
from tests.conftest import utc
from tests.fake_telegram import FakeTelegram
from tests.telegram_harness import Clock, Phone, open_invitation, running_bot, telegram_settings

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

NOW = utc("2026-03-16 17:00")
CHLOE_CHAT = 5_000_001
ALICE_CHAT = 5_000_002


@pytest.fixture
def fake() -> Iterator[FakeTelegram]:
    with FakeTelegram() as server:
        yield server


@pytest.fixture
def tg(database_url, fake):
    return telegram_settings(database_url, fake)


@pytest.fixture
def people(world, session):
    found = world.standard()
    for key, chat in (("chloe", CHLOE_CHAT), ("alice", ALICE_CHAT)):
        person: Person = found[key]
        person.telegram_chat_id = chat
        session.add(person)
    session.commit()
    return found


def answers(session, invitation) -> dict[str, Answer]:
    session.expire_all()
    rows = session.exec(select(Answer).where(Answer.invitation_id == invitation.id)).all()
    return {row.question_key: row for row in rows}


async def test_a_whole_survey_by_buttons_and_text(session, engine, fake, tg, people):
    invitation = open_invitation(session, people["chloe_booking"], Stage.END, NOW)
    phone = Phone(fake, CHLOE_CHAT, "Chloé")
    async with running_bot(tg, engine, Clock(NOW)):
        [listing] = await phone.send("/surveys")
        assert "End of the course: Working Together to Safeguard Children" in listing.text
        assert "(12 questions; open until 30 March 2026)" in listing.text

        started = await phone.tap("Start: End of the course")
        first = started.shown[-1]
        assert first.method == "sendMessage"
        assert "Question 1 of 12" in first.text
        assert "how to recognise the signs of neglect?" in first.text
        assert "1 = Very little · 5 = Very well" in first.text
        assert [label for label, _ in first.buttons] == ["1", "2", "3", "4", "5"]
        question_message = first.result["message_id"]

        # Buttons: each answer edits the same message into the next question.
        for expected in range(2, 11):
            tapped = await phone.tap("4")
            assert tapped.toast == "Saved."
            assert tapped.shown[-1].method == "editMessageText"
            assert f"Question {expected} of 12" in tapped.text
        assert "accessible to you" in tapped.text
        tapped = await phone.tap("Partly")
        assert "Question 11 of 13" in tapped.text  # a follow-up question now applies
        assert "What made the course harder" in tapped.text

        # Free text as a reply, with characters that break careless HTML.
        [reply] = await phone.send("Captions & a hearing loop <please>, and 'quiet' breaks")
        assert "Question 12 of 13" in reply.text
        assert "What will you do differently" in reply.text

        # Back shows the answer given and lets it be changed by typing again.
        back = await phone.tap("« Back")
        assert "Question 11 of 13" in back.text
        assert "Your answer: Captions & a hearing loop <please>, and 'quiet' breaks" in back.text
        [reply] = await phone.send("A hearing loop & captions")
        assert "Question 12 of 13" in reply.text
        [reply] = await phone.send("Share information sooner with the school nurse.")
        assert "Question 13 of 13" in reply.text  # the optional comments
        assert [label for label, _ in reply.buttons] == ["« Back", "Skip"]

        review = await phone.tap("Skip")
        assert review.toast == "Skipped."
        assert "That was the last question" in review.text
        assert "A hearing loop & captions" in review.text
        done = await phone.tap("Send my answers")
        assert "Thank you, Chloé O'Brien <Health & Care>. Your answers have been sent." in done.text

        # An old keyboard of this survey changes nothing and says why.
        stale = fake.tap_data(CHLOE_CHAT, question_message, f"a:{invitation.id}:knowledge.0:0")
        answer = await fake.answered(stale)
        assert answer.params["text"] == "You have already finished this survey; thank you."

    session.refresh(invitation)
    assert invitation.status == InvitationStatus.FINISHED and invitation.finished_at == NOW
    got = answers(session, invitation)
    assert got["knowledge.0"].value_num == 4.0 and got["knowledge.0"].channel == "telegram"
    assert got["accessibility"].value_text == "partly"
    assert got["accessibility_detail"].value_text == "A hearing loop & captions"
    assert got["comments"].value_text is None
    assert len(got) == 13
    for call in fake.requests():
        for _, data in call.buttons:
            assert len(data.encode()) <= 64


async def test_double_taps_and_old_keyboards_are_harmless(session, engine, fake, tg, people):
    invitation = open_invitation(session, people["alice_booking"], Stage.IMPACT, NOW)
    phone = Phone(fake, ALICE_CHAT, "Alice")
    async with running_bot(tg, engine, Clock(NOW)):
        await phone.send("/surveys")
        started = await phone.tap("Start: Three months on")
        message_id = started.shown[-1].result["message_id"]
        assert "Have you used what you learned" in started.text
        yes_data = dict(started.shown[-1].buttons)["Yes"]

        first = fake.tap_data(ALICE_CHAT, message_id, yes_data)
        second = fake.tap_data(ALICE_CHAT, message_id, yes_data)  # a double tap
        assert (await fake.answered(first)).params["text"] == "Saved."
        assert (await fake.answered(second)).params["text"] == (
            "You have already answered this question."
        )
        _, text, _ = phone.screen()
        assert "Please give an example" in text

        # Someone else's survey, and nonsense, change nothing.
        forged = fake.tap_data(ALICE_CHAT, message_id, "a:999999:applied:0")
        assert "out of date" in (await fake.answered(forged)).params["text"]

    got = answers(session, invitation)
    assert got["applied"].value_text == "yes" and len(got) == 1


async def test_two_delegates_answering_at_once_each_get_their_own_answers(
    session, engine, fake, tg, people
):
    import asyncio

    chloe_survey = open_invitation(session, people["chloe_booking"], Stage.END, NOW)
    alice_survey = open_invitation(session, people["alice_booking"], Stage.END, NOW)

    async def answer_all(phone: Phone, value: str) -> None:
        await phone.send("/surveys")
        await phone.tap("Start: End of the course")
        for _ in range(9):  # the nine rating questions, tapped as soon as each is shown
            tapped = await phone.tap(value)
            assert tapped.toast == "Saved."

    async with running_bot(tg, engine, Clock(NOW)):
        await asyncio.gather(
            answer_all(Phone(fake, CHLOE_CHAT, "Chloé"), "5"),
            answer_all(Phone(fake, ALICE_CHAT, "Alice"), "2"),
        )

    chloe, alice = answers(session, chloe_survey), answers(session, alice_survey)
    assert len(chloe) == len(alice) == 9
    assert {a.value_num for a in chloe.values()} == {5.0}
    assert {a.value_num for a in alice.values()} == {2.0}


async def test_multiple_choice_toggles_then_done(session, engine, fake, tg, people):
    invitation = open_invitation(session, people["alice_booking"], Stage.IMPACT, NOW)
    phone = Phone(fake, ALICE_CHAT, "Alice")
    async with running_bot(tg, engine, Clock(NOW)):
        await phone.send("/surveys")
        await phone.tap("Start: Three months on")
        tapped = await phone.tap("No")
        assert "What has got in the way" in tapped.text
        assert "Choose all that apply, then tap Done." in tapped.text
        [nudge] = await phone.send("too busy")  # typed where buttons are wanted
        assert "What has got in the way" in nudge.text
        assert nudge.text.endswith("Please answer this question with the buttons under it.")
        tapped = await phone.tap("Workload or lack of time")
        assert "☑ Workload or lack of time" in [label for label, _ in tapped.shown[-1].buttons]
        await phone.tap("Something else")
        tapped = await phone.tap("☑ Workload or lack of time")  # changed my mind
        tapped = await phone.tap("Done")
        assert "What else has got in the way?" in tapped.text

    got = answers(session, invitation)
    assert got["barriers"].value_json == ["other"]


async def test_a_restart_loses_nothing(session, engine, fake, tg, people):
    invitation = open_invitation(session, people["alice_booking"], Stage.IMPACT, NOW)
    phone = Phone(fake, ALICE_CHAT, "Alice")
    clock = Clock(NOW)
    async with running_bot(tg, engine, clock):
        await phone.send("/surveys")
        await phone.tap("Start: Three months on")
        tapped = await phone.tap("Yes")
        assert "Please give an example" in tapped.text

    # A new Application on the same database: the typed answer goes to the question on screen.
    clock.advance(hours=2)
    async with running_bot(tg, engine, clock):
        [reply] = await phone.send("We spotted neglect early & referred within a day.")
        assert "Question 3 of 9" in reply.text
        tapped = await phone.tap("5")
        assert "Question 4 of 9" in tapped.text

    got = answers(session, invitation)
    assert got["example"].value_text == "We spotted neglect early & referred within a day."
    assert got["knowledge.0"].value_num == 5.0


async def test_started_in_chat_finished_on_the_web(session, engine, fake, tg, people):
    from bot.web.app import create_app
    from surveys import tokens
    from surveys.models import LinkPurpose

    invitation = open_invitation(session, people["alice_booking"], Stage.IMPACT, NOW)
    token = tokens.issue(
        session,
        tg.secret,
        LinkPurpose.SURVEY,
        subject=f"invitation:{invitation.id}",
        invitation_id=invitation.id,
        person_id=invitation.person_id,
        expires_at=invitation.closes_at,
    )
    session.commit()
    phone = Phone(fake, ALICE_CHAT, "Alice")
    async with running_bot(tg, engine, Clock(NOW)):
        await phone.send("/surveys")
        await phone.tap("Start: Three months on")
        await phone.tap("Yes")
        await phone.send("Earlier referrals.")

    app = create_app(tg, engine)
    app.state.clock = Clock(NOW)
    web = TestClient(app, base_url=tg.public_url)
    page = web.get(f"/s/{token}")
    assert "Question 3 of 9" in page.text  # the web form carries on where the chat stopped
    for key in ("knowledge.0", "knowledge.1", "knowledge.2"):
        page = _answer(web, token, page.text, key, "3")
    for key in ("confidence.0", "confidence.1", "confidence.2"):
        page = _answer(web, token, page.text, key, "4")
    page = _answer(web, token, page.text, "further_support")
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text).group(1)
    done = web.post(f"/s/{token}", data={"csrf": csrf, "action": "finish"})
    assert "Thank you" in done.text

    session.refresh(invitation)
    assert invitation.status == InvitationStatus.FINISHED
    got = answers(session, invitation)
    assert got["example"].channel == "telegram" and got["knowledge.0"].channel == "web"

    # Back in chat, the survey is finished and says so.
    async with running_bot(tg, engine, Clock(NOW)):
        [listing] = await phone.send("/surveys")
        assert "no surveys waiting" in listing.text


async def test_started_on_the_web_carried_on_in_chat(session, engine, fake, tg, people):
    from bot.web.app import create_app
    from surveys import tokens
    from surveys.models import LinkPurpose

    invitation = open_invitation(session, people["alice_booking"], Stage.IMPACT, NOW)
    token = tokens.issue(
        session,
        tg.secret,
        LinkPurpose.SURVEY,
        subject=f"invitation:{invitation.id}",
        invitation_id=invitation.id,
        person_id=invitation.person_id,
        expires_at=invitation.closes_at,
    )
    session.commit()
    app = create_app(tg, engine)
    app.state.clock = Clock(NOW)
    web = TestClient(app, base_url=tg.public_url)
    page = web.get(f"/s/{token}")
    page = _answer(web, token, page.text, "applied", "yes")
    page = _answer(web, token, page.text, "example", "Referred <early> & kept notes")
    assert "Question 3 of 9" in page.text

    phone = Phone(fake, ALICE_CHAT, "Alice")
    async with running_bot(tg, engine, Clock(NOW)):
        [listing] = await phone.send("/surveys")
        assert "Three months on" in listing.text and "(2 of 9 answered;" in listing.text
        tapped = await phone.tap("Continue: Three months on")
        assert "Question 3 of 9" in tapped.text  # where the web form stopped
        back = await phone.tap("« Back")
        assert "Question 2 of 9" in back.text
        assert "Your answer: Referred <early> & kept notes" in back.text
        kept = await phone.tap("Keep »")
        assert "Question 3 of 9" in kept.text
        tapped = await phone.tap("5")
        assert tapped.toast == "Saved." and "Question 4 of 9" in tapped.text

    got = answers(session, invitation)
    assert got["example"].channel == "web"
    assert got["example"].value_text == "Referred <early> & kept notes"
    assert got["knowledge.0"].channel == "telegram" and got["knowledge.0"].value_num == 5.0


def _answer(web, token, html, key, *values):
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', html).group(1)
    return web.post(f"/s/{token}", data={"csrf": csrf, "q": key, "a": list(values)})


async def test_a_closed_survey_says_so(session, engine, fake, tg, people):
    invitation = open_invitation(session, people["alice_booking"], Stage.IMPACT, NOW, days=1)
    phone = Phone(fake, ALICE_CHAT, "Alice")
    clock = Clock(NOW)
    async with running_bot(tg, engine, clock):
        await phone.send("/surveys")
        await phone.tap("Start: Three months on")
        clock.advance(days=2)
        tapped = await phone.tap("Yes")
        assert tapped.toast == "This survey has closed, so it cannot take answers any more."
        [reply] = await phone.send("an example")
        assert "closed" in reply.text
    assert answers(session, invitation) == {}
    assert session.get(SurveyInvitation, invitation.id).status == InvitationStatus.OPEN


async def test_a_planned_invitation_arrives_in_chat_and_is_answered_there(
    session, engine, fake, tg, people
):
    from bot.channels.registry import build_channels
    from bot.dispatcher import deliver_due
    from schedules.policy import default_policy
    from schedules.tick import tick
    from surveys.models import Channel

    chloe: Person = people["chloe"]
    chloe.preferred_channel = Channel.TELEGRAM
    session.add(chloe)
    session.commit()
    phone = Phone(fake, CHLOE_CHAT, "Chloé")
    opens = utc("2026-03-09 09:30")  # a week before the session: the pre-course questionnaire
    channels = build_channels(tg)
    try:
        for now in (opens, opens + timedelta(minutes=1)):
            tick(engine, now=now, policy=default_policy(), zone=tg.zone, secret=tg.secret)
            await deliver_due(engine, tg, channels, now=now)
    finally:
        for channel in channels.values():
            await channel.close()

    sent = {call.text.split("\n")[0]: call for call in fake.sent(CHLOE_CHAT)}
    assert "Your place on Working Together to Safeguard Children" in sent  # the confirmation
    [invitation_message] = [c for c in sent.values() if c.buttons]
    assert "Before Working Together to Safeguard Children" in invitation_message.text
    assert [label for label, _ in invitation_message.buttons] == ["Answer here"]
    async with running_bot(tg, engine, Clock(opens)):
        started = await phone.tap("Answer here")
        assert "Before the course: Working Together to Safeguard Children" in started.text
        assert "Question 1 of 7" in started.text
        tapped = await phone.tap("2")
        assert "Question 2 of 7" in tapped.text
    invitation = session.exec(
        select(SurveyInvitation).where(
            SurveyInvitation.person_id == chloe.id, SurveyInvitation.stage == Stage.PRE
        )
    ).one()
    assert answers(session, invitation)["knowledge.0"].value_num == 2.0


async def test_answers_in_chat_on_postgresql(postgres_url, postgres_engine, fake):
    from sqlmodel import Session

    from tests.conftest import World

    tg = telegram_settings(postgres_url, fake)
    with Session(postgres_engine, expire_on_commit=False) as session:
        people = World(session).standard()
        alice: Person = people["alice"]
        alice.telegram_chat_id = ALICE_CHAT
        session.add(alice)
        session.commit()
        invitation = open_invitation(session, people["alice_booking"], Stage.IMPACT, NOW)
        phone = Phone(fake, ALICE_CHAT, "Alice")
        clock = Clock(NOW)
        async with running_bot(tg, postgres_engine, clock):
            await phone.send("/surveys")
            await phone.tap("Start: Three months on")
            await phone.tap("Yes")
        async with running_bot(tg, postgres_engine, clock):  # a restart in between
            [reply] = await phone.send("Earlier referrals & better notes.")
            assert "Question 3 of 9" in reply.text
        got = answers(session, invitation)
    assert got["example"].value_text == "Earlier referrals & better notes."
    assert got["applied"].channel == "telegram"
