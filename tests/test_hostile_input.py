"""Hostile input to the web app: bodies and paths an attacker or a broken client sends.

None of it may give a 5xx: a malformed Telegram webhook call is refused with a 400 (or a 404
for a path that is not the hook's), and a NUL or other control character in a reason or a name
is dropped before it reaches the database (PostgreSQL refuses a NUL in text).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.settings import Settings
from bot.telegram.runtime import webhook_path
from bot.web.app import create_app
from schedules.cancellation import booking_subject
from surveys import tokens
from surveys.models import Booking, BookingStatus, LinkPurpose
from tests.conftest import World, utc
from tests.fake_telegram import FakeTelegram
from tests.telegram_harness import Clock, running_bot, telegram_settings

NOW = utc("2026-03-02 10:00")
SECRET_HEADER = {"X-Telegram-Bot-Api-Secret-Token": "s3cret-header_value"}


@pytest.fixture
def fake() -> Iterator[FakeTelegram]:
    with FakeTelegram() as server:
        yield server


NOT_UPDATES: list[Any] = [
    [1, 2, 3],
    "an update",
    42,
    None,
    {"update_id": "seven"},
    {"update_id": 7, "message": 5},
    {"update_id": 7, "message": "hello"},
    {"update_id": 7, "message": [1]},
    {"update_id": 7, "callback_query": 3.5},
]


async def test_the_webhook_refuses_bodies_that_are_not_updates(
    engine: Engine, database_url: str, fake: FakeTelegram
) -> None:
    tg = telegram_settings(
        database_url,
        fake,
        telegram_mode="webhook",
        public_url="http://127.0.0.1:9",
        telegram_webhook_secret="s3cret-header_value",
    )
    app = create_app(tg, engine)
    async with running_bot(tg, engine, Clock(NOW), app=app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            hook = webhook_path(tg)
            answers = [
                (await client.post(hook, json=body, headers=SECRET_HEADER)).status_code
                for body in NOT_UPDATES
            ]
            not_json = await client.post(hook, content=b"\xff\xfe{", headers=SECRET_HEADER)
            odd_path = await client.post(
                "/telegram/caf\u00e9-\u2603", json={"update_id": 1}, headers=SECRET_HEADER
            )
    assert answers == [400] * len(NOT_UPDATES)
    assert not_json.status_code == 400
    assert odd_path.status_code == 404


def _booking_link(
    session: Session, settings: Settings, purpose: LinkPurpose, booking: Booking
) -> str:
    return tokens.issue(
        session,
        settings.secret,
        purpose,
        subject=booking_subject(booking),
        person_id=booking.delegate_id,
        booking_id=booking.id,
    )


def _nul_text_survives(engine: Engine, settings: Settings, session: Session, world: World) -> None:
    people = world.standard()
    alice: Booking = people["alice_booking"]
    chloe: Booking = people["chloe_booking"]
    cancel_token = _booking_link(session, settings, LinkPurpose.CANCEL, alice)
    chloe.status = BookingStatus.NO_SHOW
    session.add(chloe)
    reason_token = _booking_link(session, settings, LinkPurpose.REASON, chloe)
    session.commit()

    app = create_app(settings, engine)
    app.state.clock = lambda: NOW
    from fastapi.testclient import TestClient

    with TestClient(app, raise_server_exceptions=False) as client:
        for path, token, fields in (
            ("/cancel", cancel_token, {"reason": "off sick\x00\x07 today"}),
            ("/reason", reason_token, {"reason": "car broke\x00 down\x1b"}),
        ):
            page = client.get(f"{path}/{token}")
            assert page.status_code == 200, page.text
            csrf = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
            answer = client.post(f"{path}/{token}", data={"csrf": csrf, **fields})
            assert answer.status_code < 500, answer.text
    session.expire_all()
    assert session.get(Booking, alice.id).cancel_reason == "off sick today"  # type: ignore[union-attr]
    assert session.get(Booking, chloe.id).no_show_reason == "car broke down"  # type: ignore[union-attr]


def test_control_characters_in_free_text_are_dropped_on_sqlite(
    engine: Engine, settings: Settings, session: Session, world: World
) -> None:
    _nul_text_survives(engine, settings, session, world)


def test_a_nul_in_free_text_is_no_server_error_on_postgresql(
    postgres_url: str, postgres_engine: Engine, tmp_path: Any
) -> None:
    from bot.settings import load_settings

    settings = load_settings(database_url=postgres_url, mail_dir=tmp_path / "mail")
    with Session(postgres_engine, expire_on_commit=False) as session:
        _nul_text_survives(postgres_engine, settings, session, World(session))


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
MESSAGE_FIELDS = ("message_id", "date", "chat", "from", "text", "entities")


def _an_update(chat: int = 666) -> dict[str, Any]:
    return {
        "update_id": 7,
        "message": {
            "message_id": 1,
            "date": 0,
            "chat": {"id": chat, "type": "private"},
            "from": {"id": chat, "is_bot": False, "first_name": "Mallory"},
            "text": "/surveys",
            "entities": [{"type": "bot_command", "offset": 0, "length": 8}],
        },
    }


@st.composite
def webhook_bodies(draw: st.DrawFn) -> Any:
    """Any JSON, or a real update with some of its fields replaced by any JSON."""
    if draw(st.booleans()):
        return draw(JSON_VALUES)
    update = _an_update()
    for field in draw(st.sets(st.sampled_from(MESSAGE_FIELDS), max_size=3)):
        update["message"][field] = draw(JSON_VALUES)
    if draw(st.booleans()):
        update[draw(st.sampled_from(["callback_query", "edited_message", "my_chat_member"]))] = (
            draw(JSON_VALUES)
        )
    return update


@contextlib.contextmanager
def bot_behind_a_webhook(tg: Settings, engine: Engine) -> Iterator[str]:
    """The web app and the bot in webhook mode on their own event loop in a thread; yields the
    hook's URL. The socket listens before the thread starts, so no request races the start."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    app = create_app(tg, engine)
    ready: dict[str, Any] = {}
    started = threading.Event()

    async def serve() -> None:
        stop = asyncio.Event()
        ready["loop"], ready["stop"] = asyncio.get_running_loop(), stop
        async with running_bot(tg, engine, Clock(NOW), app=app):
            server = uvicorn.Server(
                uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
            )
            serving = asyncio.create_task(server.serve(sockets=[listener]))
            started.set()
            await stop.wait()
            server.should_exit = True
            await serving

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    assert started.wait(timeout=30), "the bot did not start"
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}{webhook_path(tg)}"
    finally:
        ready["loop"].call_soon_threadsafe(ready["stop"].set)
        thread.join(timeout=30)
        listener.close()


def test_fuzzed_webhook_bodies_are_accepted_or_refused_never_a_server_error(
    engine: Engine, database_url: str, fake: FakeTelegram
) -> None:
    tg = telegram_settings(
        database_url,
        fake,
        telegram_mode="webhook",
        public_url="http://127.0.0.1:9",
        telegram_webhook_secret="s3cret-header_value",
    )
    answers: list[int] = []
    with bot_behind_a_webhook(tg, engine) as hook, httpx.Client() as client:

        @settings(max_examples=300, deadline=None, derandomize=True, database=None)
        @given(body=webhook_bodies())
        def post(body: Any) -> None:
            response = client.post(hook, content=json.dumps(body), headers=SECRET_HEADER)
            answers.append(response.status_code)
            assert response.status_code in (200, 400), (body, response.status_code)

        post()
    assert set(answers) == {200, 400}  # some bodies were updates, some were refused
