"""Webhook mode: Telegram POSTs updates to the web app, which checks the secret header."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Iterator

import httpx
import pytest
import uvicorn

from bot.telegram.runtime import webhook_path
from bot.web.app import create_app
from surveys.models import Person
from tests.conftest import utc
from tests.fake_telegram import FakeTelegram
from tests.telegram_harness import Clock, Phone, deep_link_token, running_bot, telegram_settings

NOW = utc("2026-03-02 10:00")
CHLOE_CHAT = 5_000_001


@pytest.fixture
def fake() -> Iterator[FakeTelegram]:
    with FakeTelegram() as server:
        yield server


@pytest.fixture
def listening() -> Iterator[socket.socket]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    yield sock
    sock.close()


async def test_updates_arrive_by_webhook_with_the_secret_header(
    world, session, engine, fake, database_url, listening, caplog
):
    port = listening.getsockname()[1]
    tg = telegram_settings(
        database_url,
        fake,
        telegram_mode="webhook",
        public_url=f"http://127.0.0.1:{port}",
        telegram_webhook_secret="s3cret-header_value",
    )
    chloe: Person = world.standard()["chloe"]
    token = deep_link_token(session, tg, chloe)
    app = create_app(tg, engine)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    serving = asyncio.create_task(server.serve(sockets=[listening]))
    caplog.set_level(logging.WARNING, logger="evalbot.telegram")
    try:
        while not server.started:
            await asyncio.sleep(0.01)
        async with running_bot(tg, engine, Clock(NOW), app=app):
            assert fake.webhook == {
                "url": f"http://127.0.0.1:{port}{webhook_path(tg)}",
                "secret_token": "s3cret-header_value",
            }
            phone = Phone(fake, CHLOE_CHAT, "Chloé")
            [greeting] = await phone.send(f"/start {token}")
            assert greeting.text.startswith("Hello Chloé O'Brien <Health & Care>!")
            assert all(status == 200 for _, status in fake.webhook_deliveries)
            assert not fake.requests("getUpdates")  # nothing polls in webhook mode

            # Forged updates: no header, a wrong header, a wrong path. None reaches the bot.
            forged = {
                "update_id": 999,
                "message": {
                    "message_id": 1,
                    "date": 0,
                    "chat": {"id": 666, "type": "private"},
                    "from": {"id": 666, "is_bot": False, "first_name": "Mallory"},
                    "text": "/stop",
                    "entities": [{"type": "bot_command", "offset": 0, "length": 5}],
                },
            }
            hook = f"http://127.0.0.1:{port}{webhook_path(tg)}"
            async with httpx.AsyncClient() as client:
                bare = await client.post(hook, json=forged)
                wrong = await client.post(
                    hook, json=forged, headers={"X-Telegram-Bot-Api-Secret-Token": "guess"}
                )
                elsewhere = await client.post(
                    f"http://127.0.0.1:{port}/telegram/not-the-path",
                    json=forged,
                    headers={"X-Telegram-Bot-Api-Secret-Token": "s3cret-header_value"},
                )
            assert (bare.status_code, wrong.status_code, elsewhere.status_code) == (403, 403, 404)
            [still] = await phone.send("/start")
            assert "This chat is linked to your record" in still.text
    finally:
        server.should_exit = True
        await serving

    assert not fake.requests("sendMessage", 666)
    session.refresh(chloe)
    assert chloe.telegram_chat_id == CHLOE_CHAT
    refusals = [r.getMessage() for r in caplog.records]
    assert sum("refused a Telegram webhook call" in m for m in refusals) == 2


async def test_without_a_running_bot_the_hook_is_not_there(settings, engine):
    app = create_app(settings, engine)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.post(webhook_path(settings), json={"update_id": 1})
    assert response.status_code == 404


async def test_evalbot_run_starts_the_bot_beside_the_web_app(
    world, session, engine, fake, database_url, listening, caplog
):
    from bot.runner import Runner
    from schedules.policy import default_policy

    port = listening.getsockname()[1]
    listening.close()  # the runner binds it again
    tg = telegram_settings(database_url, fake, web_port=port)
    chloe: Person = world.standard()["chloe"]
    token = deep_link_token(session, tg, chloe)
    runner = Runner(tg, default_policy(), engine=engine, clock=Clock(NOW), tick_seconds=3600)
    serving = asyncio.create_task(runner.serve())
    try:
        phone = Phone(fake, CHLOE_CHAT, "Chloé")
        [greeting] = await phone.send(f"/start {token}")
        assert greeting.text.startswith("Hello Chloé O'Brien <Health & Care>!")
        async with httpx.AsyncClient() as client:
            health = await client.get(f"http://127.0.0.1:{port}/health")
        assert health.status_code == 200
    finally:
        runner.stop()
        await serving
    assert fake.requests("getUpdates")  # polling, the default

    caplog.set_level(logging.WARNING, logger="bot.runner")
    Runner(
        telegram_settings(database_url, fake, telegram_token=None), default_policy(), engine=engine
    )
    assert [r.getMessage() for r in caplog.records if "Telegram is off" in r.getMessage()] == [
        "Telegram is off: EVALBOT_TELEGRAM_TOKEN is not set, so messages go by email."
    ]
