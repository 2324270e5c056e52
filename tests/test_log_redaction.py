"""No personal link's token reaches the log: `evalbot run` and `evalbot web` as real processes,
asked for links of every kind, log each request with the token replaced."""

from __future__ import annotations

import logging
import secrets
from pathlib import Path

import httpx
import pytest

from bot.log_redaction import redact, redact_record
from bot.settings import load_settings
from bot.telegram.runtime import webhook_path
from tests.live_service import SECRET, live, prepare

KINDS = (
    "s",
    "cancel",
    "nominate",
    "reason",
    "certificate",
    "unsubscribe",
    "register",
    "offer",
    "admin/sign-in",
)


@pytest.mark.parametrize("command", ["run", "web"])
def test_no_token_reaches_the_log(tmp_path: Path, command: str) -> None:
    real = prepare(tmp_path)
    assert {"s", "cancel"} <= {path.split("/")[1] for path in real}, real
    made_up = {f"/{kind}/{secrets.token_urlsafe(24)}" for kind in KINDS}
    hook = webhook_path(load_settings(secret_key=SECRET))
    tokens = {path.rsplit("/", 1)[1] for path in real | made_up} | {hook.rsplit("/", 1)[1]}

    with live(command, tmp_path) as service:
        with httpx.Client(base_url=service.base_url, timeout=10) as client:
            for path in sorted(real | made_up):
                client.get(path)
                client.post(path, data={"form_token": "x"})
                client.get(path + "?from=email")
            client.post(hook, json={"update_id": 1})
            assert client.get("/health").status_code == 200
        logged = service.stop()

    assert '"GET /health HTTP/1.1" 200' in logged, "requests are logged"
    assert '"GET /s/… HTTP/1.1"' in logged and '"POST /cancel/… HTTP/1.1"' in logged
    assert '"POST /telegram/… HTTP/1.1"' in logged
    assert sorted(token for token in tokens if token in logged) == []


def test_redaction_keeps_the_page_and_drops_the_token() -> None:
    assert redact("GET /s/AbC-123_x HTTP/1.1") == "GET /s/… HTTP/1.1"
    assert redact("http://h/unsubscribe/t0k/undo?a=b") == "http://h/unsubscribe/…/undo?a=…"
    assert redact("/admin/sign-in/Zz9") == "/admin/sign-in/…"
    assert redact("/admin/sign-in") == "/admin/sign-in"
    assert redact("POST https://api.telegram.org/bot123:AAE-x_y/getMe") == (
        "POST https://api.telegram.org/bot…/getMe"
    )
    assert redact("/sessions and /status") == "/sessions and /status"


def test_a_log_line_names_no_one_by_email() -> None:
    """What the dispatcher logs when a relay refuses an address: the line erasure cannot reach."""
    record = logging.LogRecord(
        "evalbot.dispatcher",
        logging.WARNING,
        __file__,
        1,
        "%s of person %s marked undeliverable: %s",
        (
            "email",
            7,
            "refused alice.okafor@riverside.example: 550 <Alice.Okafor@Riverside.example>",
        ),
        None,
    )
    line = redact_record(record).getMessage()
    assert line == (
        "email of person 7 marked undeliverable: refused a…@riverside.example: 550 "
        "<A…@Riverside.example>"
    )
