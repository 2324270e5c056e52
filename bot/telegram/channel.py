"""The Telegram channel of the outbox: one rendered message to one chat, through the Bot API.

Its errors say what the dispatcher should do next:

- 403 (the person blocked the bot, or deleted their account) and 400 "chat not found" are
  permanent: the dispatcher marks the person's Telegram unusable and sends by email instead;
- 429 carries Telegram's ``retry_after``; 5xx, timeouts and network errors are transient;
- any other 400 (a template whose HTML Telegram will not take, a keyboard it refuses) is a fault
  of Evalbot's, never of the person's chat: the chat stays usable, and the message fails with
  Telegram's reason (retried with backoff, so a mended template goes out, and dead after
  ``EVALBOT_OUTBOX_MAX_ATTEMPTS``), where ``evalbot outbox`` shows it to admins. HTML that
  Telegram would refuse is caught before anything is sent, so such a message never arrives half.

A message that links to a survey (``<public URL>/s/<token>``) gets an "Answer here" button,
which starts that survey in the chat (``bot.telegram.surveys``).

The rate limits (``EVALBOT_TELEGRAM_PER_SECOND``, 30 messages a second, and
``EVALBOT_TELEGRAM_PER_CHAT_PER_SECOND``, one a second per chat) are applied twice: by the
dispatcher when it claims messages (``bot.ratelimit``), and here, at the moment of sending, by a
``Pacer``: claimed messages wait their turn in the dispatcher's queues for different lengths of
time, and Telegram counts them as they arrive.
"""

from __future__ import annotations

import asyncio
import logging
import re
from datetime import timedelta

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, LinkPreviewOptions
from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden, InvalidToken, RetryAfter, TelegramError

from bot.channels.base import ChannelError, Delivered, Outgoing
from bot.settings import Settings
from bot.telegram.html import problem, split
from bot.telegram.transport import make_request

log = logging.getLogger("evalbot.telegram")

PERMANENT_BAD_REQUESTS = ("chat not found", "user not found", "peer_id_invalid", "chat_id is empty")


def make_bot(settings: Settings, *, connections: int = 16) -> Bot:
    """A ``telegram.Bot`` for the configured token, reaching ``EVALBOT_TELEGRAM_API_URL``."""
    assert settings.telegram_token is not None
    request = make_request(
        connections=connections,
        read_timeout=15,
        force_httpx=settings.telegram_transport == "httpx",
    )
    if settings.telegram_api_url:
        return Bot(
            settings.telegram_token.get_secret_value(),
            base_url=settings.telegram_api_url,
            request=request,
        )
    return Bot(settings.telegram_token.get_secret_value(), request=request)


def retry_seconds(error: RetryAfter) -> float:
    value: object = error._retry_after  # the number Telegram sent, without the deprecation dance
    if isinstance(value, timedelta):
        return value.total_seconds()
    return float(value)  # type: ignore[arg-type]


class TelegramChannel:
    """Sends outbox messages as Telegram messages in HTML parse mode."""

    name = "telegram"
    concurrency = 8  # messages in flight; the dispatcher's limits keep the rate

    def __init__(self, bot: Bot, *, public_url: str = "", pacer: Pacer | None = None):
        self.bot = bot
        self.pacer = pacer or Pacer(0, 0)
        self._ready = False
        # A survey link in a message gets an "Answer here" button that starts it in the chat.
        self._survey_link = re.compile(re.escape(public_url) + r"/s/([A-Za-z0-9_-]{16,64})\"")

    @classmethod
    def from_settings(cls, settings: Settings) -> TelegramChannel:
        pacer = Pacer(settings.telegram_per_second, settings.telegram_per_chat_per_second)
        return cls(make_bot(settings), public_url=settings.public_url, pacer=pacer)

    async def send(self, message: Outgoing) -> Delivered:
        try:
            chat = int(message.recipient)
        except ValueError:
            raise ChannelError(
                f"{message.recipient!r} is not a Telegram chat id", permanent=True
            ) from None
        html = message.html or message.text
        parts = split(html)
        for index, part in enumerate(parts):
            fault = problem(part)
            if fault is not None:
                where = f" (part {index + 1} of {len(parts)})" if len(parts) > 1 else ""
                log.error("outbox %s: its HTML would be refused: %s", message.outbox_id, fault)
                raise ChannelError(
                    f"not sent: Telegram would refuse this message's HTML{where}: {fault}. "
                    "This is a fault in the message's template, not in the person's chat."
                )
        found = self._survey_link.search(html)
        keyboard = _keyboard(message.buttons, found.group(1) if found else None)
        ids: list[str] = []
        try:
            if not self._ready:
                await self.bot.initialize()
                self._ready = True
            for index, part in enumerate(parts):
                await self.pacer.wait(chat)
                try:
                    sent = await self.bot.send_message(
                        chat,
                        part,
                        parse_mode=ParseMode.HTML,
                        reply_markup=keyboard if index == len(parts) - 1 else None,
                        link_preview_options=LinkPreviewOptions(is_disabled=True),
                    )
                finally:
                    self.pacer.done(chat)
                ids.append(str(sent.message_id))
        except TelegramError as exc:
            raise classify(exc, sent=len(ids), parts=len(parts)) from exc
        return Delivered(server_reply=f"telegram message {', '.join(ids)} in chat {chat}")

    async def close(self) -> None:
        if self._ready:
            await self.bot.shutdown()
            self._ready = False


def classify(error: TelegramError, *, sent: int = 0, parts: int = 1) -> ChannelError:
    """A Bot API error as the dispatcher's ``ChannelError``."""
    where = f" (after {sent} of {parts} parts)" if sent else ""
    text = f"Telegram: {error.message}{where}"
    if isinstance(error, RetryAfter):
        return ChannelError(text, retry_after=retry_seconds(error))
    if isinstance(error, Forbidden):
        return ChannelError(text, permanent=True)
    if isinstance(error, InvalidToken):
        # The bot's own configuration, not the person's chat: Telegram pauses until it is
        # mended (bot.pauses), and the coordinator is told by email.
        log.error("Telegram refuses the bot token: %s", error.message)
        return ChannelError(f"{text}; check EVALBOT_TELEGRAM_TOKEN", channel_fault=True)
    if isinstance(error, BadRequest):
        lowered = error.message.lower()
        if any(marker in lowered for marker in PERMANENT_BAD_REQUESTS):
            return ChannelError(text, permanent=True)
        # Malformed HTML, a refused keyboard: Evalbot's fault, so the chat is not to blame.
        log.error("Telegram refused a message as malformed: %s", error.message)
        return ChannelError(
            f"{text}. Telegram refused the message itself (a fault in its template), "
            "not the person's chat."
        )
    return ChannelError(text)


def _keyboard(
    buttons: list[list[tuple[str, str]]], survey_token: str | None
) -> InlineKeyboardMarkup | None:
    rows = [[InlineKeyboardButton(label, url=url) for label, url in row] for row in buttons]
    if survey_token is not None:
        rows.insert(0, [InlineKeyboardButton("Answer here", callback_data=f"t:{survey_token}")])
    rows = [row for row in rows if row]
    return InlineKeyboardMarkup(rows) if rows else None


class Pacer:
    """Spaces sends as Telegram counts them: at most ``rate`` a second overall, with bursts of a
    few after a pause, and ``per_chat`` a second to any one chat, a little under the limit so
    that jitter on the way never makes two arrive too close. A rate of 0 is no limit.

    The spacing to a chat counts from the moment the previous message to it was answered, not
    sent: however long a message waited on a busy event loop, the next one cannot arrive within
    the gap. This is the one place outside the runner that reads a clock: pacing is about real
    time, and it reads only the event loop's monotonic clock, never the date.
    """

    BURST = 5
    MARGIN = 1.02  # per-chat spacing, as a multiple of the least Telegram allows

    def __init__(self, rate: float, per_chat: float):
        self.gap = 1 / rate if rate > 0 else 0.0
        self.chat_gap = self.MARGIN / per_chat if per_chat > 0 else 0.0
        self._due = 0.0  # the theoretical time of the next send overall
        self._next: dict[int, float] = {}  # per chat: the earliest next start
        self._locks: dict[int, asyncio.Lock] = {}  # per chat: one message in flight
        self._holders: dict[int, int] = {}  # per chat: how many hold or wait for its lock

    async def wait(self, chat: int) -> None:
        """Return when a message may go to ``chat``; call ``done(chat)`` once it is answered."""
        loop = asyncio.get_running_loop()
        if self.chat_gap:
            lock = self._locks.setdefault(chat, asyncio.Lock())
            self._holders[chat] = self._holders.get(chat, 0) + 1
            try:
                await lock.acquire()
            except BaseException:
                self._leave(chat)
                raise
            try:
                pause = self._next.get(chat, 0.0) - loop.time()
                if pause > 0:
                    await asyncio.sleep(pause)
            except BaseException:
                self.done(chat)
                raise
        if self.gap:
            now = loop.time()
            start = max(now, self._due - (self.BURST - 1) * self.gap)
            self._due = max(self._due, now) + self.gap
            if start > now:
                await asyncio.sleep(start - now)

    def done(self, chat: int) -> None:
        """The message to ``chat`` was answered (or failed): the gap to the next starts now."""
        if not self.chat_gap:
            return
        now = asyncio.get_running_loop().time()
        self._next[chat] = now + self.chat_gap
        self._locks[chat].release()
        self._leave(chat)
        if len(self._next) > 10_000:
            self._next = {c: t for c, t in self._next.items() if t > now}

    def _leave(self, chat: int) -> None:
        self._holders[chat] -= 1
        if not self._holders[chat]:
            del self._holders[chat]
            del self._locks[chat]
