"""The Telegram webhook: updates POSTed by Telegram onto the bot application's queue.

The path is secret (``bot.telegram.runtime.webhook_path``) and every request must carry the
``X-Telegram-Bot-Api-Secret-Token`` header that Evalbot gave Telegram with ``setWebhook``; a
request without it is refused and logged, so no one can feed the bot forged updates.
"""

from __future__ import annotations

import hmac
import json
import logging

from fastapi import APIRouter, Request, Response
from telegram import Update

from bot.telegram.runtime import webhook_path, webhook_secret

log = logging.getLogger("evalbot.telegram")
router = APIRouter()
HEADER = "X-Telegram-Bot-Api-Secret-Token"


@router.post("/telegram/{token}", include_in_schema=False)
async def telegram_update(token: str, request: Request) -> Response:
    """One update from Telegram, queued for the bot's handlers."""
    application = getattr(request.app.state, "telegram", None)
    settings = request.app.state.settings
    # Bytes, not str: compare_digest refuses a str with non-ASCII characters in it.
    given_path = request.url.path.encode()
    if application is None or not hmac.compare_digest(given_path, webhook_path(settings).encode()):
        return Response(status_code=404)
    given = request.headers.get(HEADER, "")
    if not hmac.compare_digest(given.encode(), webhook_secret(settings).encode()):
        client = request.client.host if request.client else "?"
        log.warning("refused a Telegram webhook call from %s: wrong or missing %s", client, HEADER)
        return Response(status_code=403)
    try:
        data = json.loads(await request.body())
        if not isinstance(data, dict) or not isinstance(data.get("update_id"), int):
            raise ValueError("an update is a JSON object with an integer update_id")
        update = Update.de_json(data, application.bot)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        log.warning("refused a Telegram webhook call whose body is not an update: %s", exc)
        return Response(status_code=400)
    await application.update_queue.put(update)
    return Response(status_code=200)
