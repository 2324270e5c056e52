"""No personal link's token, webhook secret path or bot token reaches a log, at any level, and
no email address in full.

Every log record is redacted when it is made (``install``): its message, each of its arguments
(uvicorn's access log passes the path as one), its traceback and its stack. So the access log
still says which page was asked for and what it answered (``GET /s/… HTTP/1.1" 200``) and
uvicorn's error log, which names the path when a request fails, names it without the token.

Email addresses keep their first letter and their domain (``a…@riverside.example``): enough to
tell a relay's fault about one organisation from another's, while a log line, which erasure
cannot reach, names no one. The outbox row's id in the same line leads to the whole address.
"""

from __future__ import annotations

import logging
import re
import traceback
from typing import Any

HIDDEN = "…"
# The pages whose next path segment is a personal link's token.
TOKEN_PAGES = (
    "s",
    "cancel",
    "nominate",
    "reason",
    "certificate",
    "unsubscribe",
    "register",
    "offer",
    "admin/sign-in",
    "telegram",  # the webhook's secret path
)
_TOKEN_PATH = re.compile(
    r"(/(?:" + "|".join(re.escape(page) for page in TOKEN_PAGES) + r")/)(?!…)[^/?#\s\"'<>]+"
)
# A Bot API URL carries the bot's token (https://api.telegram.org/bot<token>/getMe).
_BOT_TOKEN = re.compile(r"(/bot)\d+:[A-Za-z0-9_-]+")
_EMAIL = re.compile(r"(?<![\w.%+-])([\w%+-])[\w.%+-]*@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)")
# Query strings may carry a token too (?token=..., ?start=...): their values are dropped.
_QUERY_VALUE = re.compile(r"([?&][A-Za-z0-9_.-]+=)[^&#\s\"']+")


def redact(text: str) -> str:
    """``text`` with every token in a path or query, and every email address's local part,
    replaced by ``…``."""
    if "@" in text:
        text = _EMAIL.sub(rf"\g<1>{HIDDEN}@\g<2>", text)
    if "/" not in text and "=" not in text:
        return text
    text = _TOKEN_PATH.sub(rf"\g<1>{HIDDEN}", text)
    text = _BOT_TOKEN.sub(rf"\g<1>{HIDDEN}", text)
    return _QUERY_VALUE.sub(rf"\g<1>{HIDDEN}", text)


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, bytes):
        return redact(value.decode("utf-8", "replace"))
    return value


def redact_record(record: logging.LogRecord) -> logging.LogRecord:
    """Redact ``record`` in place (message, arguments, traceback, stack) and return it."""
    if isinstance(record.msg, str):
        record.msg = redact(record.msg)
    if isinstance(record.args, tuple):
        record.args = tuple(_redact_value(value) for value in record.args)
    elif isinstance(record.args, dict):
        record.args = {key: _redact_value(value) for key, value in record.args.items()}
    if record.exc_info and record.exc_info[0] is not None and not record.exc_text:
        record.exc_text = redact("".join(traceback.format_exception(*record.exc_info)).rstrip())
    elif record.exc_text:
        record.exc_text = redact(record.exc_text)
    if record.stack_info:
        record.stack_info = redact(record.stack_info)
    return record


_installed = False


def install() -> None:
    """Redact every log record this process makes, from any library, when it is made."""
    global _installed
    if _installed:
        return
    make = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        return redact_record(make(*args, **kwargs))

    logging.setLogRecordFactory(factory)
    _installed = True
