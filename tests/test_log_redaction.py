"""No personal link's token reaches the log: `evalbot run` and `evalbot web` as real processes,
asked for links of every kind, log each request with the token replaced."""

from __future__ import annotations

import email
import email.policy
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from bot.cli import app
from bot.log_redaction import redact
from bot.settings import load_settings
from bot.telegram.runtime import webhook_path
from tests.smtp_servers import free_port

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "bookings.csv"
SECRET = "test-secret-key-not-for-production"
LINK = re.compile(r"http://127\.0\.0\.1:8000(/[a-z/-]+/[A-Za-z0-9_-]{16,})")


def links_in_written_mail(folder: Path) -> set[str]:
    """The personal links' paths in the emails the tick wrote (decoded, as a person reads them)."""
    found: set[str] = set()
    for path in folder.glob("*.eml"):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        found |= set(LINK.findall(str(message.get("List-Unsubscribe", ""))))
        for part in message.walk():
            if part.get_content_maintype() == "text":
                found |= set(LINK.findall(part.get_content()))
    return found


@pytest.fixture
def prepared(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """A database with the example bookings, their first emails written: real links."""
    runner = CliRunner()
    for args in (
        ["db", "upgrade"],
        ["import", "bookings", str(EXAMPLE)],
        ["tick", "--now", "2026-11-24T09:30"],
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
    return links_in_written_mail(tmp_path / "evalbot-mail")


@pytest.fixture(params=["run", "web"])
def service(
    request: pytest.FixtureRequest, tmp_path: Path, prepared: set[str]
) -> Iterator[tuple[int, Path, subprocess.Popen[bytes]]]:
    port = free_port()
    output = tmp_path / "service.log"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("EVALBOT_")},
        "EVALBOT_SECRET_KEY": SECRET,
        "EVALBOT_DATABASE_URL": f"sqlite:///{tmp_path / 'evalbot.db'}",
    }
    with output.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "bot", request.param, "--port", str(port)],
            cwd=tmp_path,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, output.read_text()
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert time.monotonic() < deadline, output.read_text()
            time.sleep(0.05)
        yield port, output, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)


def test_no_token_reaches_the_log(
    service: tuple[int, Path, subprocess.Popen[bytes]], prepared: set[str]
) -> None:
    port, output, process = service
    kinds = {path.split("/")[1] for path in prepared}
    assert {"s", "cancel"} <= kinds, prepared
    made_up = {
        f"/{kind}/{secrets.token_urlsafe(24)}"
        for kind in ("s", "cancel", "nominate", "reason", "certificate", "unsubscribe",
                     "register", "offer", "admin/sign-in")
    }  # fmt: skip
    settings = load_settings(secret_key=SECRET)
    hook = webhook_path(settings)
    tokens = {path.rsplit("/", 1)[1] for path in prepared | made_up} | {hook.rsplit("/", 1)[1]}
    base = f"http://127.0.0.1:{port}"
    with httpx.Client(base_url=base, timeout=10) as client:
        for path in sorted(prepared | made_up):
            client.get(path)
            client.post(path, data={"form_token": "x"})
            client.get(path + "?from=email")
        client.post(hook, json={"update_id": 1})
        client.get(f"/s/{secrets.token_urlsafe(24)}/../../etc")  # a path that is not a page
        assert client.get("/health").status_code == 200

    process.send_signal(signal.SIGTERM)
    process.wait(timeout=30)
    logged = output.read_text(encoding="utf-8")
    assert '"GET /health HTTP/1.1" 200' in logged, "requests are logged"
    assert '"GET /s/… HTTP/1.1"' in logged and '"POST /cancel/… HTTP/1.1"' in logged
    assert '"POST /telegram/… HTTP/1.1"' in logged
    leaked = sorted(token for token in tokens if token in logged)
    assert leaked == []


def test_redaction_keeps_the_page_and_drops_the_token() -> None:
    assert redact("GET /s/AbC-123_x HTTP/1.1") == "GET /s/… HTTP/1.1"
    assert redact("http://h/unsubscribe/t0k/undo?a=b") == "http://h/unsubscribe/…/undo?a=…"
    assert redact("/admin/sign-in/Zz9") == "/admin/sign-in/…"
    assert redact("/admin/sign-in") == "/admin/sign-in"
    assert redact("POST https://api.telegram.org/bot123:AAE-x_y/getMe") == (
        "POST https://api.telegram.org/bot…/getMe"
    )
    assert redact("/sessions and /status") == "/sessions and /status"
