"""Updates that arrive together: their database work goes to the worker thread as one batch.

Each update keeps its own transaction, so one that fails leaves the others' answers stored and
answered; one chat's updates in a batch are still handled in the order they were sent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from bot.settings import load_settings
from bot.telegram.context import KEY, Services
from bot.telegram.errors import SORRY
from surveys.models import Answer, Person, Stage, TelegramChat
from tests.conftest import utc
from tests.fake_telegram import FakeTelegram
from tests.telegram_harness import Clock, Phone, open_invitation, running_bot, telegram_settings

NOW = utc("2026-03-16 17:00")
CHLOE_CHAT = 5_000_001
ALICE_CHAT = 5_000_002


@pytest.fixture
def fake() -> Iterator[FakeTelegram]:
    with FakeTelegram() as server:
        yield server


@pytest.fixture
def people(world, session):
    found = world.standard()
    for key, chat in (("chloe", CHLOE_CHAT), ("alice", ALICE_CHAT)):
        person: Person = found[key]
        person.telegram_chat_id = chat
        session.add(person)
    session.commit()
    return found


async def test_updates_waiting_together_are_answered_in_each_chats_order(
    session, engine, fake, database_url, people
):
    invitation = open_invitation(session, people["alice_booking"], Stage.IMPACT, NOW)
    tg = telegram_settings(database_url, fake)
    alice = Phone(fake, ALICE_CHAT, "Alice")
    chloe = Phone(fake, CHLOE_CHAT, "Chloé")
    async with running_bot(tg, engine, Clock(NOW)):
        await alice.send("/surveys")
        started = await alice.tap("Start: Three months on")
        message_id = started.shown[-1].result["message_id"]
        yes_data = dict(started.shown[-1].buttons)["Yes"]
        [nothing] = await chloe.send("/surveys")

    # While the bot is down, Alice taps twice and Chloé writes: all wait for the next poll.
    mark = fake.mark()
    first = fake.tap_data(ALICE_CHAT, message_id, yes_data)
    second = fake.tap_data(ALICE_CHAT, message_id, yes_data)
    fake.say(CHLOE_CHAT, "/surveys")
    # Chloé's tap names a survey id SQLite cannot store: that update fails on its own.
    broken = fake.tap_data(CHLOE_CHAT, nothing.result["message_id"], "s:" + "9" * 40)
    async with running_bot(tg, engine, Clock(NOW)) as service:
        assert (await fake.answered(first)).params["text"] == "Saved."
        assert (await fake.answered(second)).params["text"] == (
            "You have already answered this question."
        )
        assert (await fake.answered(broken)).params["text"] == SORRY
        [listing] = await chloe.wait_messages(mark, 1)
        assert "You have no surveys waiting" in listing.text
        svc: Services = service.application.bot_data[KEY]
        polls = [call for call in fake.since(mark) if call.method == "getUpdates" and call.result]
        assert len(polls[0].result) == 4  # the four updates came in one poll...
        # Each chat's second update waits until its first is answered, so the two chats' first
        # updates go to the database thread together, and their second ones as they come.
        assert svc.batches < 4

    session.expire_all()
    stored = session.exec(select(Answer).where(Answer.invitation_id == invitation.id)).all()
    assert [(a.question_key, a.value_text) for a in stored] == [("applied", "yes")]


async def test_a_failing_transaction_in_a_batch_leaves_the_others_committed(
    engine, database_url, caplog
):
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE batch_note (n INTEGER)"))
    settings = load_settings(database_url=database_url)
    svc = Services(settings, engine)
    order: list[int] = []

    def note(n: int):
        def work(session: Session) -> int:
            order.append(n)
            session.execute(text("INSERT INTO batch_note (n) VALUES (:n)"), {"n": n})
            if n == 2:
                raise ValueError("the second update is broken")
            return n * 10

        return work

    caplog.set_level(logging.ERROR)
    outcomes = await asyncio.gather(
        *(svc.run(note(n)) for n in (1, 2, 3, 4)), return_exceptions=True
    )
    assert outcomes[0] == 10 and outcomes[2] == 30 and outcomes[3] == 40
    assert isinstance(outcomes[1], ValueError)
    assert order == [1, 2, 3, 4]  # in the order asked, in one hand-over
    assert svc.batches == 1
    with engine.connect() as connection:
        kept = connection.execute(text("SELECT n FROM batch_note ORDER BY n")).scalars().all()
    assert kept == [1, 3, 4]  # the broken one's insert was rolled back, nothing else

    # Work asked for while a batch is on the thread goes with the next one.
    again = await asyncio.gather(svc.run(note(5)), svc.run(note(6)))
    assert again == [50, 60] and svc.batches == 2

    # A handler cancelled while its work waits (the bot stopping) leaves that work undone.
    order.clear()
    cancelled = asyncio.create_task(svc.run(note(7)))
    kept_task = asyncio.create_task(svc.run(note(8)))
    await asyncio.sleep(0)
    cancelled.cancel()
    assert await kept_task == 80
    assert cancelled.cancelled() and order == [8]


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
async def test_a_write_refused_in_a_batch_spoils_only_its_own_update(database, request):
    # Refused by a statement or by the session's flush: PostgreSQL refuses everything after an
    # error until it is rolled back, and a failed flush rolls back what the session joined; the
    # updates before and after the broken one must not notice either.
    engine = request.getfixturevalue("engine" if database == "sqlite" else "postgres_engine")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE batch_note (n INTEGER PRIMARY KEY)"))
    svc = Services(load_settings(database_url=engine.url.render_as_string(False)), engine)

    def note(n: int):
        def work(session: Session) -> int:
            session.execute(text("INSERT INTO batch_note (n) VALUES (:n)"), {"n": n})
            return n

        return work

    def chat(n: int):
        def work(session: Session) -> int:
            session.add(TelegramChat(chat_id=n, updated_at=NOW))
            session.flush()
            return n

        return work

    outcomes = await asyncio.gather(
        *(svc.run(work) for work in (note(1), note(1), note(3), chat(7), chat(7), chat(8))),
        return_exceptions=True,
    )
    assert [o if isinstance(o, int) else type(o) for o in outcomes] == [
        1,
        IntegrityError,  # the second 1 breaks the primary key...
        3,
        7,
        IntegrityError,  # ...and so does the second chat 7, when the session flushes it
        8,
    ]
    assert svc.batches == 1
    with engine.connect() as connection:
        kept = connection.execute(text("SELECT n FROM batch_note ORDER BY n")).scalars().all()
        chats = connection.execute(text("SELECT chat_id FROM telegram_chat")).scalars().all()
    assert kept == [1, 3] and sorted(chats) == [7, 8]
