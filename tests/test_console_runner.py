"""Under ``evalbot run``, the sign-in email goes out at once: the web app wakes the running
dispatcher, so the link arrives (by SMTP, at an aiosmtpd server on loopback) long before the
dispatcher's next poll or the next tick."""

from __future__ import annotations

import asyncio
import email
import email.policy
import os
import signal

import httpx

from bot.runner import Runner
from bot.settings import load_settings
from schedules.policy import default_policy
from tests.console_helpers import FORM_TOKEN, LINK, add_staff
from tests.loopback import free_port
from tests.smtp_servers import running
from tests.timeline import at

CARLA = "carla.mendes@partnership.example"


async def _until(condition, seconds: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_the_sign_in_email_goes_at_once_under_evalbot_run(engine, database_url):
    add_staff(database_url, CARLA, name="Carla Mendes")
    with running() as smtp:
        settings = load_settings(
            database_url=database_url,
            smtp_host="127.0.0.1",
            smtp_port=smtp.port,
            smtp_security="none",
            outbox_poll_seconds=600,  # without the wake-up, nothing would go for ten minutes
        )
        port = free_port()
        runner = Runner(
            settings,
            default_policy(),
            host="127.0.0.1",
            port=port,
            engine=engine,
            clock=lambda: at("2026-03-02 09:00"),
            tick_seconds=3600,
        )
        serving = asyncio.create_task(runner.serve())
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=base) as client:
            await _until(lambda: runner.server.started and runner.ticks == 1)
            form = await client.get("/admin/sign-in")
            token = FORM_TOKEN.search(form.text)[1]
            sent = await client.post("/admin/sign-in", data={"email": CARLA, "form_token": token})
            assert sent.status_code == 200
            await _until(lambda: len(smtp.received) == 1, 10)
            message = email.message_from_bytes(smtp.received[0].data, policy=email.policy.default)
            assert smtp.received[0].rcpt_tos == [CARLA]
            link = LINK.search(message.get_body(preferencelist=("plain",)).get_content())
            path = f"/admin/sign-in/{link[1]}"
            page = await client.get(path)
            assert "Carla Mendes" in page.text
            signed = await client.post(path, data={"form_token": FORM_TOKEN.search(page.text)[1]})
            assert signed.status_code == 303
            dashboard = await client.get("/admin/")
            assert "Carla Mendes (coordinator)" in dashboard.text
        os.kill(os.getpid(), signal.SIGINT)
        await asyncio.wait_for(serving, 15)
