"""The Telegram webhook: updates POSTed by Telegram onto the bot application's queue.

The path is secret (``bot.telegram.runtime.webhook_path``) and every request must carry the
``X-Telegram-Bot-Api-Secret-Token`` header that Evalbot gave Telegram with ``setWebhook``; a
request without it is refused and logged, so no one can feed the bot forged updates.

Telegram POSTs every update on its own, so the hook is answered as plain ASGI ahead of
FastAPI's middleware, routing and request objects (``serve``, called by ``bot.web.app.WebApp``
for every POST under ``/telegram/``), which cost more than the rest of taking an update.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.datastructures import State
from telegram import Update

from bot.settings import Settings
from bot.telegram.runtime import webhook_path, webhook_secret
from bot.telegram.transport import drop_tapped_keyboards

log = logging.getLogger("evalbot.telegram")
HEADER = "X-Telegram-Bot-Api-Secret-Token"
PREFIX = "/telegram/"
_HEADER_NAME = HEADER.lower().encode()
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


async def serve(state: State, scope: Scope, receive: Receive, send: Send) -> None:
    """Answer a POST under ``/telegram/``: 404 unless it is the hook's path (and the bot runs
    by webhook), 403 without the secret header, 400 for a body that is not an update."""
    chunks: list[bytes] = []
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    given = b""
    for name, value in scope["headers"]:
        if name == _HEADER_NAME:
            given = value
            break
    client = scope["client"][0] if scope.get("client") else "?"
    status = await take(state, scope["path"], given, b"".join(chunks), client)
    await send(
        {"type": "http.response.start", "status": status, "headers": [(b"content-length", b"0")]}
    )
    await send({"type": "http.response.body", "body": b""})


async def take(state: State, path: str, given: bytes, body: bytes, client: str) -> int:
    """Check the path and the secret header, parse the update and queue it; the HTTP status."""
    application = getattr(state, "telegram", None)
    expected_path, expected_secret = _expected(state)
    # Bytes, not str: compare_digest refuses a str with non-ASCII characters in it.
    if application is None or not hmac.compare_digest(path.encode(), expected_path):
        return 404
    if not hmac.compare_digest(given, expected_secret):
        log.warning("refused a Telegram webhook call from %s: wrong or missing %s", client, HEADER)
        return 403
    try:
        data = json.loads(body)
        if not isinstance(data, dict) or not isinstance(data.get("update_id"), int):
            raise ValueError("an update is a JSON object with an integer update_id")
        drop_tapped_keyboards(data)
        update = Update.de_json(data, application.bot)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        log.warning("refused a Telegram webhook call whose body is not an update: %s", exc)
        return 400
    await application.update_queue.put(update)
    return 200


def _expected(state: State) -> tuple[bytes, bytes]:
    """The hook's path and secret for the app's settings (two HMACs, worked out once)."""
    settings: Settings = state.settings
    cached = getattr(state, "telegram_hook", None)
    if cached is None or cached[0] is not settings:
        path = webhook_path(settings).encode()
        cached = (settings, path, webhook_secret(settings).encode())
        state.telegram_hook = cached
    return cached[1], cached[2]
