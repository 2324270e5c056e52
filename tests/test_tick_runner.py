"""``evalbot run``: the web app, the tick and the dispatcher in one loop, and a clean stop."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from bot.runner import Runner
from bot.settings import load_settings
from schedules.policy import default_policy
from surveys.models import OutboxState
from tests.loopback import free_port
from tests.smtp_servers import running
from tests.timeline import Timeline, at


async def _until(condition, seconds: float = 15.0) -> None:
    """Wait for something the service does in the background (polling, never a fixed sleep)."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_the_service_ticks_at_once_and_delivers_what_is_due(world, engine, database_url):
    world.standard()
    with running() as smtp:
        settings = load_settings(
            database_url=database_url,
            smtp_host="127.0.0.1",
            smtp_port=smtp.port,
            smtp_security="none",
        )
        port = free_port()
        runner = Runner(
            settings,
            default_policy(),
            host="127.0.0.1",
            port=port,
            engine=engine,
            clock=lambda: at("2026-03-02 09:00"),
        )
        serving = asyncio.create_task(runner.serve())
        await _until(lambda: len(smtp.received) == 2, 30)
        async with httpx.AsyncClient() as client:
            await _until(lambda: runner.server.started, 30)
            response = await client.get(f"http://127.0.0.1:{port}/health")
        assert response.json() == {"status": "ok"}
        assert sorted(item.rcpt_tos[0] for item in smtp.received) == [
            "alice.okafor@riverside.example",
            "chloe.obrien@northgate.example",
        ]
        assert runner.ticks == 1
        os.kill(os.getpid(), signal.SIGINT)  # what Ctrl+C does: a clean stop, not an exception
        await asyncio.wait_for(serving, 15)
    timeline = Timeline(engine, settings)
    states = {row.template: row.state for row in timeline.rows(template="booking-confirmation")}
    assert states == {"booking-confirmation": OutboxState.SENT}


def test_evalbot_run_stops_cleanly_on_sigterm(tmp_path: Path, database_url, engine):
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("EVALBOT_")},
        "EVALBOT_DATABASE_URL": database_url,
        "EVALBOT_SECRET_KEY": "test-secret-key-not-for-production",
        "EVALBOT_MAIL_DIR": str(tmp_path / "mail"),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "run", "--host", "127.0.0.1", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60  # a loaded CI machine imports slowly
        while True:
            assert process.poll() is None, process.communicate()[1]
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the service did not start"
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr
