"""A first run says what it is doing: what the outbox holds and until when, each message sent,
and a warning when no one is named to reply to."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from datetime import UTC, datetime

import pytest
from typer.testing import CliRunner

from bot.cli import app
from bot.logtext import mask_address
from bot.runner import TICK_JOB, Runner
from bot.settings import load_settings
from schedules.policy import default_policy
from tests.loopback import free_port
from tests.timeline import at


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, database_url: str, engine) -> None:
    monkeypatch.setenv("EVALBOT_DATABASE_URL", database_url)


def test_tick_on_a_sunday_night_says_the_messages_wait_for_monday(world, env):
    world.standard()
    result = CliRunner().invoke(app, ["tick", "--now", "2026-03-01T22:00"])
    assert result.exit_code == 0, result.output
    assert "2 messages due, held until the sending window opens Monday 08:00." in result.output
    result = CliRunner().invoke(app, ["tick", "--now", "2026-03-02T09:00"])
    assert "Delivery: sent 2." in result.output
    assert "Nothing is due now; nothing else is waiting." in result.output


def test_masked_addresses_keep_only_a_hint():
    assert mask_address("alice.okafor@riverside.example") == "al***@riverside.example"
    assert mask_address("123456789") == "***789"


async def test_the_service_says_what_it_holds_and_logs_each_message_sent(
    world, engine, database_url, caplog, tmp_path
):
    world.standard()
    caplog.set_level(logging.INFO)
    settings = load_settings(database_url=database_url, mail_dir=tmp_path / "mail")
    now = [at("2026-03-01 22:00")]  # a Sunday night
    runner = Runner(
        settings,
        default_policy(),
        host="127.0.0.1",
        port=free_port(),
        engine=engine,
        clock=lambda: now[0],
    )
    serving = asyncio.create_task(runner.serve())
    try:
        while runner.ticks < 1:
            await asyncio.sleep(0.02)
        now[0] = at("2026-03-02 08:00")
        runner.scheduler.modify_job(TICK_JOB, next_run_time=datetime.now(UTC))  # tick again now
        deadline = asyncio.get_running_loop().time() + 30
        while len([r for r in caplog.records if r.getMessage().startswith("sent ")]) < 2:
            assert asyncio.get_running_loop().time() < deadline, "nothing was sent"
            await asyncio.sleep(0.02)
        while not runner.server.started:
            assert asyncio.get_running_loop().time() < deadline, "the server did not start"
            await asyncio.sleep(0.02)
    finally:
        os.kill(os.getpid(), signal.SIGINT)
        await asyncio.wait_for(serving, 15)
    messages = [record.getMessage() for record in caplog.records]
    assert "Outbox: 2 messages due, held until the sending window opens Monday 08:00." in messages
    warnings = [m for m in messages if "Neither EVALBOT_REPLY_TO nor EVALBOT_ADMIN_EMAIL" in m]
    assert len(warnings) == 1
    sent = sorted(m for m in messages if m.startswith("sent "))
    assert [m.split(" (outbox")[0] for m in sent] == [
        "sent booking-confirmation to al***@riverside.example",
        "sent booking-confirmation to ch***@northgate.example",
    ]
    assert not any("alice.okafor" in m for m in messages)
