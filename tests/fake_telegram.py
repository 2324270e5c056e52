"""A strict stand-in for the Telegram Bot API, on loopback, for tests and benchmarks.

The real python-telegram-bot client reaches it through its ``base_url``
(``EVALBOT_TELEGRAM_API_URL = fake.api_url``). It runs its own small HTTP/1.1 server on asyncio
in a thread of its own, so a test's event loop and the bot's long polls never block each other.

It records every request (``fake.calls``), serves ``getUpdates`` from a queue the test fills
(``say``, ``command``, ``tap``), delivers the same queue to a webhook once one is set
(``tests.fake_telegram_hook``, as Telegram does: up to ``max_connections`` at once, 40 unless
set; one chat's in turn), and refuses what Telegram refuses: ``callback_data`` over 64 bytes,
text over 4,096 characters after entity parsing, HTML that does not parse (unknown tags,
unbalanced tags, unescaped ``& < >``), edits of unknown messages or to identical content, a
callback query answered twice, messages to chats that never talked to the bot. It can be told to answer 403, 429 or 500 for the next N
calls or for a chat, and (``rate_limits=True``) to enforce 30 messages a second overall and one
a second per chat by answering 429, as Telegram does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tests.fake_telegram_hook import WebhookDelivery

TOKEN = "123456789:TEST-fake-token_for-evalbot"
BOT_ID = 123456789
SENDING_METHODS = frozenset({"sendMessage", "editMessageText", "editMessageReplyMarkup"})
# Parameters python-telegram-bot sends JSON-encoded; every other parameter is a plain string.
JSON_PARAMETERS = frozenset(
    {
        "chat_id",
        "message_id",
        "reply_markup",
        "offset",
        "limit",
        "timeout",
        "allowed_updates",
        "commands",
        "scope",
        "link_preview_options",
        "disable_notification",
        "protect_content",
        "show_alert",
        "cache_time",
        "drop_pending_updates",
        "max_connections",
        "reply_parameters",
        "entities",
    }
)
ALLOWED_TAGS = frozenset(
    {
        "b",
        "strong",
        "i",
        "em",
        "u",
        "ins",
        "s",
        "strike",
        "del",
        "span",
        "tg-spoiler",
        "a",
        "code",
        "pre",
        "blockquote",
        "tg-emoji",
    }
)
NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_TAG = re.compile(
    r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)((?:\s+[a-zA-Z-]+(?:\s*=\s*(?:\"[^\"]*\"|'[^']*'|[^\s>\"']+))?)*)\s*>"
)
_ATTR = re.compile(r"([a-zA-Z-]+)(?:\s*=\s*(\"[^\"]*\"|'[^']*'|[^\s>\"']+))?")
_ENTITY = re.compile(r"&(?:([a-zA-Z]+)|#([0-9]{1,7})|#[xX]([0-9a-fA-F]{1,6}));")
_COMMAND = re.compile(r"^[a-z0-9_]{1,32}$")


class ApiError(Exception):
    """An error answer of the Bot API: HTTP status, description and optional parameters."""

    def __init__(self, status: int, description: str, **parameters: Any) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters


def bad_request(description: str) -> ApiError:
    return ApiError(400, f"Bad Request: {description}")


def utf16_len(text: str) -> int:
    """Telegram counts lengths in UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


def parse_html(text: str) -> str:
    """The plain text of an HTML parse-mode message, or ``ApiError`` where Telegram refuses it."""
    out: list[str] = []
    stack: list[str] = []
    i = 0

    def fail(reason: str) -> ApiError:
        return bad_request(f"can't parse entities: {reason}")

    def offset(at: int) -> int:
        return len(text[:at].encode())

    while i < len(text):
        char = text[i]
        if char == "<":
            match = _TAG.match(text, i)
            if match is None:
                raise fail(f"Unexpected '<' at byte offset {offset(i)}: escape it as &lt;")
            closing, name, attrs = match.group(1), match.group(2).lower(), match.group(3)
            if name not in ALLOWED_TAGS:
                kind = "end" if closing else "start"
                raise fail(f'Unsupported {kind} tag "{name}" at byte offset {offset(i)}')
            if closing:
                if attrs.strip():
                    raise fail(f"End tag with attributes at byte offset {offset(i)}")
                if not stack:
                    raise fail(f'Unexpected end tag "{name}" at byte offset {offset(i)}')
                if stack[-1] != name:
                    raise fail(
                        f"Unmatched end tag at byte offset {offset(i)}, "
                        f'expected "</{stack[-1]}>", found "</{name}>"'
                    )
                stack.pop()
            else:
                _check_start_tag(name, dict(_attributes(attrs)), stack, fail, offset(i))
                stack.append(name)
            i = match.end()
        elif char == "&":
            match = _ENTITY.match(text, i)
            if match is None:
                raise fail(
                    f"Character '&' at byte offset {offset(i)} begins no HTML entity: "
                    "escape it as &amp;"
                )
            named, decimal, hexadecimal = match.groups()
            if named is not None:
                if named not in NAMED_ENTITIES:
                    raise fail(f'Unsupported HTML entity "&{named};" at byte offset {offset(i)}')
                out.append(NAMED_ENTITIES[named])
            else:
                code = int(decimal) if decimal is not None else int(hexadecimal, 16)
                if not 0 < code <= 0x10FFFF:
                    raise fail(f"Wrong HTML entity at byte offset {offset(i)}")
                out.append(chr(code))
            i = match.end()
        elif char == ">":
            raise fail(f"Unexpected '>' at byte offset {offset(i)}: escape it as &gt;")
        else:
            out.append(char)
            i += 1
    if stack:
        raise fail(f'Can\'t find end tag corresponding to start tag "{stack[-1]}"')
    return "".join(out)


def _attributes(raw: str) -> Iterator[tuple[str, str | None]]:
    for match in _ATTR.finditer(raw):
        value = match.group(2)
        if value is not None and value[:1] in "\"'":
            value = value[1:-1]
        yield match.group(1).lower(), value


def _check_start_tag(
    name: str,
    attrs: dict[str, str | None],
    stack: list[str],
    fail: Callable[[str], ApiError],
    at: int,
) -> None:
    if (stack and stack[-1] == "code") or (stack and stack[-1] == "pre" and name != "code"):
        raise fail(f'Tag "{name}" can\'t be nested in "{stack[-1]}" at byte offset {at}')
    allowed: dict[str, set[str]] = {
        "a": {"href"},
        "span": {"class"},
        "code": {"class"},
        "pre": set(),
        "blockquote": {"expandable"},
        "tg-emoji": {"emoji-id"},
    }
    extra = set(attrs) - allowed.get(name, set())
    if extra:
        raise fail(
            f'Unsupported attribute "{sorted(extra)[0]}" of tag "{name}" at byte offset {at}'
        )
    if name == "a" and not attrs.get("href"):
        raise fail(f'Tag "a" must have attribute href at byte offset {at}')
    if name == "span" and attrs.get("class") != "tg-spoiler":
        raise fail(f'Tag "span" must have class "tg-spoiler" at byte offset {at}')


@dataclass
class Call:
    """One request the fake received, and what it answered."""

    method: str
    params: dict[str, Any]
    status: int = 200
    result: Any = None
    error: str | None = None
    at: float = field(default_factory=time.monotonic)

    @property
    def chat_id(self) -> int | None:
        value = self.params.get("chat_id")
        return (
            int(value)
            if isinstance(value, int | str) and str(value).lstrip("-").isdigit()
            else None
        )

    @property
    def text(self) -> str:
        """The message text as the person sees it (entities parsed)."""
        if isinstance(self.result, dict) and "text" in self.result:
            return str(self.result["text"])
        return str(self.params.get("text", ""))

    @property
    def buttons(self) -> list[tuple[str, str]]:
        """(label, callback_data or url) of every inline button, row by row."""
        return _buttons(self.params.get("reply_markup"))


def _buttons(markup: Any) -> list[tuple[str, str]]:
    if not isinstance(markup, dict):
        return []
    found: list[tuple[str, str]] = []
    for row in markup.get("inline_keyboard", []):
        for button in row:
            target = button.get("callback_data", button.get("url", ""))
            found.append((str(button.get("text", "")), str(target)))
    return found


@dataclass
class Failure:
    status: int
    times: int | None  # None: until cleared
    method: str | None = None
    chat_id: int | None = None
    retry_after: int = 1
    description: str | None = None

    def applies(self, method: str, chat_id: int | None) -> bool:
        if self.method is not None and self.method != method:
            return False
        return self.chat_id is None or self.chat_id == chat_id


@dataclass
class _StoredMessage:
    chat_id: int
    message_id: int
    text: str
    markup: dict[str, Any] | None
    from_bot: bool

    def as_json(self, fake: FakeTelegram) -> dict[str, Any]:
        message: dict[str, Any] = {
            "message_id": self.message_id,
            "date": int(time.time()),
            "chat": fake.chat_json(self.chat_id),
            "from": fake.bot_user if self.from_bot else fake.user_json(self.chat_id),
            "text": self.text,
        }
        if self.markup:
            message["reply_markup"] = self.markup
        return message


class _Bucket:
    """A token bucket: ``rate`` a second with bursts of ``capacity``; a little slack for jitter."""

    def __init__(self, rate: float, capacity: float, slack: float = 0.03) -> None:
        self.rate = rate
        self.capacity = capacity
        self.tokens = capacity
        self.slack = slack
        self.updated = time.monotonic()

    def take(self) -> float:
        """0 when allowed, else the seconds until it would be."""
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1 - self.slack * self.rate:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


class FakeTelegram(WebhookDelivery):
    """The fake Bot API; use as a context manager, or ``start()`` and ``stop()``."""

    def __init__(
        self,
        *,
        token: str = TOKEN,
        username: str = "evalbot_test_bot",
        rate_limits: bool = False,
        per_second: float = 30.0,
        per_chat_per_second: float = 1.0,
        record: bool = True,
    ) -> None:
        self.token = token
        self.username = username
        self.rate_limits = rate_limits
        self.per_second = per_second
        self.per_chat_per_second = per_chat_per_second
        self.record = record
        # Called in the server's thread after each request, e.g. by a benchmark's driver.
        self.on_call: Callable[[Call], None] | None = None
        self.bot_user = {
            "id": BOT_ID,
            "is_bot": True,
            "first_name": "Evalbot",
            "username": username,
            "can_join_groups": False,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }
        self.calls: list[Call] = []
        self.commands: list[dict[str, Any]] = []  # the default scope's
        self.scoped_commands: dict[int, list[dict[str, Any]]] = {}  # per chat
        self.webhook: dict[str, Any] | None = None
        self.webhook_connections = 40  # setWebhook's max_connections
        self.webhook_deliveries: list[tuple[int, int]] = []  # (update_id, HTTP status)
        self.counts: dict[str, int] = {}
        self.rate_limited = 0
        self.rate_limited_by: dict[str, int] = {}  # "overall" or "chat"
        self._lock = threading.RLock()
        self._users: dict[int, dict[str, Any]] = {}
        self._blocked: set[int] = set()
        self._failures: list[Failure] = []
        self._updates: deque[dict[str, Any]] = deque()
        self._next_update_id = 1
        self._confirmed = 0
        self._messages: dict[tuple[int, int], _StoredMessage] = {}
        self._by_chat: dict[int, list[_StoredMessage]] = {}  # each chat's messages, in order
        self._next_message_id: dict[int, int] = {}
        self._queries: dict[str, bool] = {}  # callback query id -> answered
        self._next_query = 1
        self._overall = _Bucket(per_second, per_second)
        self._per_chat: dict[int, _Bucket] = {}
        self._poll_generation = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wakeup: asyncio.Event | None = None
        self._server: asyncio.AbstractServer | None = None
        self._thread: threading.Thread | None = None
        self._watchers: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []
        self._changed = threading.Condition(self._lock)
        self._closing = False
        self.port = 0

    # -- life cycle ---------------------------------------------------------------------------

    def start(self) -> FakeTelegram:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(sock, ready), name="fake-telegram", daemon=True
        )
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the fake Telegram server did not start")
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        self._closing = True
        loop.call_soon_threadsafe(self._shutdown)
        thread.join(10)
        self._loop = None
        self._thread = None

    def __enter__(self) -> FakeTelegram:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def api_url(self) -> str:
        """The Bot API base for ``EVALBOT_TELEGRAM_API_URL`` (the token is appended)."""
        return f"http://127.0.0.1:{self.port}/bot"

    def _run(self, sock: socket.socket, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        self._wakeup = asyncio.Event()

        async def serve() -> None:
            self._server = await asyncio.start_server(self._connection, sock=sock, limit=2**20)
            ready.set()
            delivery = asyncio.create_task(self._deliver_webhooks())
            try:
                await self._server.serve_forever()
            except asyncio.CancelledError:
                pass
            finally:
                delivery.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await delivery

        try:
            loop.run_until_complete(serve())
        finally:
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()

    def _shutdown(self) -> None:
        if self._wakeup is not None:
            self._wakeup.set()
        if self._server is not None:
            self._server.close()
            for task in asyncio.all_tasks():
                task.cancel()

    # -- HTTP ---------------------------------------------------------------------------------

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                request_line = await reader.readline()
                if not request_line:
                    return
                _verb, target, _version = request_line.decode("latin-1").split(" ", 2)
                headers: dict[str, str] = {}
                while True:
                    line = await reader.readline()
                    if line in (b"\r\n", b"\n", b""):
                        break
                    name, _, value = line.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = b""
                if "content-length" in headers:
                    body = await reader.readexactly(int(headers["content-length"]))
                elif headers.get("transfer-encoding", "").lower() == "chunked":
                    body = await _read_chunked(reader)
                status, payload = await self._handle(target, headers, body)
                data = json.dumps(payload).encode()
                writer.write(
                    f"HTTP/1.1 {status} {'OK' if status == 200 else 'Error'}\r\n"
                    f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n"
                    "Connection: keep-alive\r\n\r\n".encode()
                    + data
                )
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError, ValueError):
            pass
        finally:
            writer.close()

    async def _handle(self, target: str, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        url = urlsplit(target)
        prefix = f"/bot{self.token}/"
        if not url.path.startswith(prefix):
            return 404, {"ok": False, "error_code": 404, "description": "Not Found"}
        method = url.path[len(prefix) :]
        params = _decode(url.query, headers.get("content-type", ""), body)
        call = Call(method, params)
        try:
            result = await self._dispatch(method, params)
        except ApiError as exc:
            call.status, call.error = exc.status, exc.description
            answer: dict[str, Any] = {
                "ok": False,
                "error_code": exc.status,
                "description": exc.description,
            }
            if exc.parameters:
                answer["parameters"] = exc.parameters
            self._record(call)
            return exc.status, answer
        call.result = result
        self._record(call)
        return 200, {"ok": True, "result": result}

    def _record(self, call: Call) -> None:
        if self.on_call is not None:
            self.on_call(call)
        with self._lock:
            self.counts[call.method] = self.counts.get(call.method, 0) + 1
            if self.record or call.status != 200:
                self.calls.append(call)
            watchers = list(self._watchers)
            self._changed.notify_all()
        for loop, event in watchers:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(event.set)

    # -- the API ------------------------------------------------------------------------------

    async def _dispatch(self, method: str, params: dict[str, Any]) -> Any:
        if method == "getUpdates":
            return await self._get_updates(params)
        with self._lock:
            self._check_failures(method, params)
            handler = getattr(self, f"_api_{method}", None)
            if handler is None:
                raise ApiError(404, "Not Found: method not found")
            if self.rate_limits and method in SENDING_METHODS:
                self._check_rate(_chat(params))
            return handler(params)

    def _check_failures(self, method: str, params: dict[str, Any]) -> None:
        chat_id = _chat(params) if "chat_id" in params else None
        if chat_id is not None and chat_id in self._blocked and method in SENDING_METHODS:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        for failure in self._failures:
            if not failure.applies(method, chat_id):
                continue
            if failure.times is not None:
                failure.times -= 1
                if failure.times <= 0:
                    self._failures.remove(failure)
            if failure.status == 429:
                self.rate_limited += 1
                raise ApiError(
                    429,
                    f"Too Many Requests: retry after {failure.retry_after}",
                    retry_after=failure.retry_after,
                )
            if failure.status == 403:
                raise ApiError(403, failure.description or "Forbidden: bot was blocked by the user")
            raise ApiError(failure.status, failure.description or "Internal Server Error")

    def _check_rate(self, chat_id: int) -> None:
        wait = self._overall.take()
        cause = "overall"
        bucket = self._per_chat.setdefault(
            chat_id, _Bucket(self.per_chat_per_second, 1.0, slack=0.03)
        )
        if not wait:
            wait = bucket.take()
            cause = "chat"
            if wait:
                self._overall.tokens += 1  # the refused message did not count
        if wait:
            self.rate_limited += 1
            self.rate_limited_by[cause] = self.rate_limited_by.get(cause, 0) + 1
            retry = max(1, int(wait + 0.999))
            raise ApiError(429, f"Too Many Requests: retry after {retry}", retry_after=retry)

    async def _get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        with self._lock:
            self._check_failures("getUpdates", params)
            if self.webhook is not None:
                raise ApiError(
                    409,
                    "Conflict: can't use getUpdates method while webhook is active; "
                    "use deleteWebhook to delete the webhook first",
                )
            self._poll_generation += 1
            generation = self._poll_generation
            offset = int(params.get("offset") or 0)
            if offset:
                self._confirm(offset)
        timeout = float(params.get("timeout") or 0)
        limit = int(params.get("limit") or 100)
        deadline = time.monotonic() + timeout
        assert self._wakeup is not None
        while True:
            with self._lock:
                if generation != self._poll_generation:
                    raise ApiError(409, "Conflict: terminated by other getUpdates request")
                ready = [u for u in self._updates if u["update_id"] >= offset][:limit]
                if ready or self._closing:
                    return ready
                self._wakeup.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                return []
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), left)

    def _confirm(self, offset: int) -> None:
        while self._updates and self._updates[0]["update_id"] < offset:
            self._updates.popleft()
        self._confirmed = max(self._confirmed, offset - 1)

    def _api_getMe(self, params: dict[str, Any]) -> dict[str, Any]:
        return self.bot_user

    def _api_logOut(self, params: dict[str, Any]) -> bool:
        return True

    def _api_close(self, params: dict[str, Any]) -> bool:
        return True

    def _api_sendMessage(self, params: dict[str, Any]) -> dict[str, Any]:
        chat_id = self._known_chat(params)
        text = self._message_text(params)
        markup = self._markup(params)
        message = self._store(chat_id, text, markup, from_bot=True)
        return message.as_json(self)

    def _api_editMessageText(self, params: dict[str, Any]) -> dict[str, Any]:
        message = self._editable(params)
        text = self._message_text(params)
        markup = self._markup(params)
        if text == message.text and markup == message.markup:
            raise bad_request(
                "message is not modified: specified new message content and reply markup are "
                "exactly the same as a current content and reply markup of the message"
            )
        message.text, message.markup = text, markup
        return message.as_json(self)

    def _api_editMessageReplyMarkup(self, params: dict[str, Any]) -> dict[str, Any]:
        message = self._editable(params)
        markup = self._markup(params)
        if markup == message.markup:
            raise bad_request(
                "message is not modified: specified new message content and reply markup are "
                "exactly the same as a current content and reply markup of the message"
            )
        message.markup = markup
        return message.as_json(self)

    def _api_answerCallbackQuery(self, params: dict[str, Any]) -> bool:
        query_id = str(params.get("callback_query_id", ""))
        if self._queries.get(query_id, True):
            raise bad_request(
                "query is too old and response timeout expired or query ID is invalid"
            )
        text = params.get("text")
        if text is not None and utf16_len(str(text)) > 200:
            raise bad_request("MESSAGE_TOO_LONG: a callback answer holds at most 200 characters")
        self._queries[query_id] = True
        return True

    def _api_setMyCommands(self, params: dict[str, Any]) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list) or len(commands) > 100:
            raise bad_request("commands must be a list of at most 100 BotCommand")
        for command in commands:
            name = str(command.get("command", ""))
            description = str(command.get("description", ""))
            if not _COMMAND.match(name):
                raise bad_request(f"BOT_COMMAND_INVALID: {name!r}")
            if not 1 <= len(description) <= 256:
                raise bad_request(f"BOT_COMMAND_DESCRIPTION_INVALID for {name!r}")
        scope = params.get("scope") or {"type": "default"}
        if scope.get("type") == "chat":
            chat = int(scope.get("chat_id", 0))
            if chat not in self._users:
                raise bad_request("chat not found")
            self.scoped_commands[chat] = commands
        elif scope.get("type") == "default":
            self.commands = commands
        else:
            raise bad_request(f"this fake knows only the default and chat scopes, not {scope}")
        return True

    def _api_getMyCommands(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        return self.commands

    def _api_deleteMyCommands(self, params: dict[str, Any]) -> bool:
        self.commands = []
        return True

    def _api_setWebhook(self, params: dict[str, Any]) -> bool:
        url = str(params.get("url", ""))
        if not url:
            return self._api_deleteWebhook(params)
        if not url.startswith(("http://", "https://")):
            raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
        secret = params.get("secret_token")
        if secret is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", str(secret)):
            raise bad_request("bad webhook: secret token contains unallowed characters")
        if params.get("drop_pending_updates"):
            self._updates.clear()
        self.webhook = {"url": url, "secret_token": secret}
        self.webhook_connections = int(params.get("max_connections") or 40)
        self._wake()
        return True

    def _api_deleteWebhook(self, params: dict[str, Any]) -> bool:
        self.webhook = None
        if params.get("drop_pending_updates"):
            self._updates.clear()
        return True

    def _api_getWebhookInfo(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "url": self.webhook["url"] if self.webhook else "",
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates),
        }

    # -- checks shared by the methods -----------------------------------------------------

    def _known_chat(self, params: dict[str, Any]) -> int:
        if "chat_id" not in params:
            raise bad_request("chat_id is empty")
        chat_id = _chat(params)
        if chat_id not in self._users:
            raise bad_request("chat not found")
        return chat_id

    def _message_text(self, params: dict[str, Any]) -> str:
        raw = params.get("text")
        if raw is None or not str(raw).strip():
            raise bad_request("message text is empty")
        mode = str(params.get("parse_mode") or "")
        if mode.upper() == "HTML":
            text = parse_html(str(raw))
        elif mode:
            raise bad_request(f"unsupported parse_mode {mode!r} (this fake speaks HTML only)")
        else:
            text = str(raw)
        if not text.strip():
            raise bad_request("message text is empty")
        if utf16_len(text) > 4096:
            raise bad_request("message is too long")
        return text

    def _markup(self, params: dict[str, Any]) -> dict[str, Any] | None:
        markup = params.get("reply_markup")
        if markup is None:
            return None
        if not isinstance(markup, dict):
            raise bad_request("can't parse reply keyboard markup JSON object")
        if "inline_keyboard" not in markup:
            return None  # reply keyboards and force-reply are not attached to the message
        rows = markup["inline_keyboard"]
        if not isinstance(rows, list):
            raise bad_request(
                'field "inline_keyboard" of the InlineKeyboardMarkup must be an Array'
            )
        for row in rows:
            for button in row:
                if not str(button.get("text", "")):
                    raise bad_request("text buttons are unallowed in the inline keyboard")
                kinds = [k for k in ("callback_data", "url") if k in button]
                if len(kinds) != 1:
                    raise bad_request("inline keyboard button must have exactly one action")
                if "callback_data" in button:
                    data = str(button["callback_data"])
                    if not 1 <= len(data.encode()) <= 64:
                        raise bad_request("BUTTON_DATA_INVALID")
                elif not str(button["url"]).startswith(("http://", "https://", "tg://")):
                    raise bad_request(f"inline keyboard button URL {button['url']!r} is invalid")
        return markup if rows else None

    def _editable(self, params: dict[str, Any]) -> _StoredMessage:
        chat_id = self._known_chat(params)
        message = self._messages.get((chat_id, int(params.get("message_id") or 0)))
        if message is None or not message.from_bot:
            raise bad_request("message to edit not found")
        return message

    def _store(
        self, chat_id: int, text: str, markup: dict[str, Any] | None, *, from_bot: bool
    ) -> _StoredMessage:
        message_id = self._next_message_id.get(chat_id, 1)
        self._next_message_id[chat_id] = message_id + 1
        message = _StoredMessage(chat_id, message_id, text, markup, from_bot)
        self._messages[(chat_id, message_id)] = message
        self._by_chat.setdefault(chat_id, []).append(message)
        return message

    # -- what a test drives -----------------------------------------------------------------

    def user(
        self,
        chat_id: int,
        first_name: str,
        last_name: str | None = None,
        username: str | None = None,
    ) -> int:
        """Someone who has opened a private chat with the bot (its chat id is its user id)."""
        with self._lock:
            user: dict[str, Any] = {"id": chat_id, "is_bot": False, "first_name": first_name}
            if last_name:
                user["last_name"] = last_name
            if username:
                user["username"] = username
            self._users[chat_id] = user
        return chat_id

    def user_json(self, chat_id: int) -> dict[str, Any]:
        return dict(self._users[chat_id])

    def chat_json(self, chat_id: int) -> dict[str, Any]:
        user = self._users.get(chat_id, {"first_name": "?"})
        chat = {"id": chat_id, "type": "private", "first_name": user["first_name"]}
        if "last_name" in user:
            chat["last_name"] = user["last_name"]
        return chat

    def say(self, chat_id: int, text: str, *, reply_to: int | None = None) -> int:
        """The person types ``text`` (``/command args`` becomes a command); returns the update id."""
        with self._lock:
            if chat_id not in self._users:
                self.user(chat_id, f"User {chat_id}")
            stored = self._store(chat_id, text, None, from_bot=False)
            message = stored.as_json(self)
            if text.startswith("/"):
                command = text.split(maxsplit=1)[0]
                message["entities"] = [
                    {"type": "bot_command", "offset": 0, "length": utf16_len(command)}
                ]
            if reply_to is not None:
                original = self._messages.get((chat_id, reply_to))
                if original is None:
                    raise KeyError(f"no message {reply_to} in chat {chat_id} to reply to")
                message["reply_to_message"] = original.as_json(self)
            return self.push({"message": message})

    def tap(self, chat_id: int, label: str, *, message_id: int | None = None) -> str:
        """The person taps the button labelled ``label`` (exact, else the only one containing
        it) on ``message_id`` or on the newest message that has it; returns the query id."""
        with self._lock:
            message, data = self._find_button(chat_id, label, message_id)
            query_id = f"q{self._next_query}"
            self._next_query += 1
            self._queries[query_id] = False
            self.push(
                {
                    "callback_query": {
                        "id": query_id,
                        "from": self.user_json(chat_id),
                        "message": message.as_json(self),
                        "chat_instance": f"ci{chat_id}",
                        "data": data,
                    }
                }
            )
            return query_id

    def tap_data(self, chat_id: int, message_id: int, data: str) -> str:
        """A callback query with any ``data``, as an old client or a forged one would send."""
        with self._lock:
            message = self._messages[(chat_id, message_id)]
            query_id = f"q{self._next_query}"
            self._next_query += 1
            self._queries[query_id] = False
            self.push(
                {
                    "callback_query": {
                        "id": query_id,
                        "from": self.user_json(chat_id),
                        "message": message.as_json(self),
                        "chat_instance": f"ci{chat_id}",
                        "data": data,
                    }
                }
            )
            return query_id

    def _find_button(
        self, chat_id: int, label: str, message_id: int | None
    ) -> tuple[_StoredMessage, str]:
        candidates = (
            [self._messages[(chat_id, message_id)]]
            if message_id is not None
            else [m for m in reversed(self._by_chat.get(chat_id, [])) if m.markup]
        )
        for message in candidates:
            buttons = [
                (text, data)
                for text, data in _buttons(message.markup)
                if not data.startswith(("http://", "https://", "tg://"))
            ]
            exact = [data for text, data in buttons if text == label]
            if exact:
                return message, exact[0]
            partial = [data for text, data in buttons if label in text]
            if len(partial) == 1:
                return message, partial[0]
        raise KeyError(f"no button {label!r} in chat {chat_id}")

    def push(self, update: dict[str, Any]) -> int:
        """Queue a raw update (``update_id`` is added); returns its id."""
        with self._lock:
            update_id = self._next_update_id
            self._next_update_id += 1
            self._updates.append({"update_id": update_id, **update})
        self._wake()
        return update_id

    def _wake(self) -> None:
        loop, wakeup = self._loop, self._wakeup
        if loop is not None and wakeup is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(wakeup.set)

    def block(self, chat_id: int) -> None:
        """The person blocks the bot: every message to them gets 403."""
        with self._lock:
            self._blocked.add(chat_id)

    def fail(
        self,
        status: int,
        *,
        times: int | None = 1,
        method: str | None = None,
        chat_id: int | None = None,
        retry_after: int = 1,
        description: str | None = None,
    ) -> None:
        """Answer ``status`` (403, 429, 500...) to the next ``times`` matching calls
        (None: until ``clear_failures``)."""
        with self._lock:
            self._failures.append(Failure(status, times, method, chat_id, retry_after, description))

    def clear_failures(self) -> None:
        with self._lock:
            self._failures.clear()
            self._blocked.clear()

    # -- what a test reads --------------------------------------------------------------------

    def requests(self, method: str | None = None, chat_id: int | None = None) -> list[Call]:
        with self._lock:
            return [
                call
                for call in self.calls
                if (method is None or call.method == method)
                and (chat_id is None or call.chat_id == chat_id)
            ]

    def sent(self, chat_id: int | None = None) -> list[Call]:
        """Messages delivered (sent or edited successfully), oldest first."""
        return [
            call
            for call in self.requests(chat_id=chat_id)
            if call.method in SENDING_METHODS and call.status == 200
        ]

    def message(self, chat_id: int, message_id: int) -> tuple[str, list[tuple[str, str]]]:
        """What a message shows now: its text and buttons."""
        with self._lock:
            stored = self._messages[(chat_id, message_id)]
            return stored.text, _buttons(stored.markup)

    def last_message(self, chat_id: int) -> tuple[int, str, list[tuple[str, str]]]:
        """The bot's newest message in a chat: its id, current text and buttons."""
        with self._lock:
            mine = [m for m in reversed(self._by_chat.get(chat_id, [])) if m.from_bot]
            if not mine:
                raise KeyError(f"the bot has sent nothing to chat {chat_id}")
            stored = mine[0]
            return stored.message_id, stored.text, _buttons(stored.markup)

    def mark(self) -> int:
        """A point in the call log, for waiting on what comes after it."""
        with self._lock:
            return len(self.calls)

    def since(self, mark: int) -> list[Call]:
        with self._lock:
            return self.calls[mark:]

    async def wait_for(self, check: Callable[[], Any], timeout: float = 10.0) -> Any:
        """Wait until ``check()`` is truthy (re-checked after every request); return its value."""
        loop = asyncio.get_running_loop()
        event = asyncio.Event()
        with self._lock:
            self._watchers.append((loop, event))
        try:
            async with asyncio.timeout(timeout):
                while True:
                    event.clear()
                    value = check()
                    if value:
                        return value
                    await event.wait()
        except TimeoutError:
            raise AssertionError(
                f"waited {timeout} s and it did not happen; the last calls were:\n"
                + "\n".join(f"  {c.method} {c.status} {c.params}" for c in self.calls[-8:])
            ) from None
        finally:
            with self._lock:
                self._watchers.remove((loop, event))

    def wait_for_sync(self, check: Callable[[], Any], timeout: float = 10.0) -> Any:
        with self._changed:
            value = self._changed.wait_for(check, timeout)
        if not value:
            raise AssertionError(f"waited {timeout} s and it did not happen")
        return value

    async def answered(self, query_id: str, timeout: float = 10.0) -> Call:
        """Wait for the bot's answer to a callback query."""

        def find() -> Call | None:
            for call in self.requests("answerCallbackQuery"):
                if call.params.get("callback_query_id") == query_id:
                    return call
            return None

        result: Call = await self.wait_for(find, timeout)
        return result

    async def reply(self, chat_id: int, mark: int, timeout: float = 10.0) -> Call:
        """Wait for the first message sent or edited in ``chat_id`` after ``mark``."""

        def find() -> Call | None:
            for call in self.since(mark):
                if call.method in SENDING_METHODS and call.chat_id == chat_id:
                    return call
            return None

        result: Call = await self.wait_for(find, timeout)
        return result

    async def updates_done(self, timeout: float = 10.0) -> None:
        """Wait until the bot has fetched and confirmed every queued update (polling)."""
        await self.wait_for(lambda: not self._updates, timeout)


def _chat(params: dict[str, Any]) -> int:
    try:
        return int(params["chat_id"])
    except (TypeError, ValueError):
        raise bad_request("chat not found") from None


def _decode(query: str, content_type: str, body: bytes) -> dict[str, Any]:
    raw: dict[str, Any] = dict(parse_qsl(query))
    if body:
        if content_type.startswith("application/json"):
            return {**raw, **json.loads(body)}
        raw.update(parse_qsl(body.decode(), keep_blank_values=True))
    params: dict[str, Any] = {}
    for name, value in raw.items():
        if name in JSON_PARAMETERS and isinstance(value, str):
            try:
                params[name] = json.loads(value)
            except ValueError:
                params[name] = value
        else:
            params[name] = value
    return params


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    body = b""
    while True:
        size = int((await reader.readline()).split(b";")[0], 16)
        if size == 0:
            await reader.readline()
            return body
        body += await reader.readexactly(size)
        await reader.readline()


def main() -> None:
    """Run the fake on its own (``python -m tests.fake_telegram``), for trying the bot by hand."""
    with FakeTelegram() as fake:
        print(f"EVALBOT_TELEGRAM_API_URL={fake.api_url}")
        print(f"EVALBOT_TELEGRAM_TOKEN={fake.token}")
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
