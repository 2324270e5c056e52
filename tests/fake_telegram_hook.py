"""The fake Bot API's webhook delivery: the queued updates POSTed to the bot's hook.

As Telegram does: up to ``webhook_connections`` requests at once over kept-alive connections,
each chat's updates one at a time and in order, an update dropped from the queue once the hook
answers 2xx. The requests are plain HTTP/1.1 on asyncio streams: a general client (httpx) spent
several times the bot's own CPU on each update, so a benchmark measured the client instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections import deque
from typing import Any
from urllib.parse import urlsplit

Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]
TIMEOUT = 10.0  # seconds for one delivery, connecting included


class WebhookDelivery:
    """The part of ``FakeTelegram`` that delivers its update queue to a webhook."""

    webhook: dict[str, Any] | None
    webhook_connections: int
    webhook_deliveries: list[tuple[int, int]]  # (update_id, HTTP status)
    _closing: bool
    _lock: threading.RLock
    _changed: threading.Condition
    _updates: deque[dict[str, Any]]
    _wakeup: asyncio.Event | None
    _watchers: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]]

    async def _deliver_webhooks(self) -> None:
        """POST the queued updates to the webhook, each chat's in turn, while it is set."""
        assert self._wakeup is not None
        in_flight: dict[int, int | None] = {}  # update_id -> its chat
        deliveries: set[asyncio.Task[None]] = set()
        client = HookClient()
        try:
            while not self._closing:
                self._wakeup.clear()
                chosen: dict[str, Any] | None = None
                with self._lock:
                    hook = self.webhook
                    if hook is not None and len(in_flight) < self.webhook_connections:
                        busy = set(in_flight.values())
                        for update in self._updates:
                            chat = update_chat(update)
                            if update["update_id"] not in in_flight and chat not in busy:
                                chosen = update
                                break
                            busy.add(chat)  # a chat's later updates wait for this one
                if chosen is None or hook is None:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wakeup.wait(), 1.0)
                    continue
                in_flight[chosen["update_id"]] = update_chat(chosen)
                task = asyncio.create_task(self._deliver(client, hook, chosen, in_flight))
                deliveries.add(task)
                task.add_done_callback(deliveries.discard)
        finally:
            client.close()

    async def _deliver(
        self,
        client: HookClient,
        hook: dict[str, Any],
        update: dict[str, Any],
        in_flight: dict[int, int | None],
    ) -> None:
        assert self._wakeup is not None
        headers = {}
        if hook["secret_token"]:
            headers["X-Telegram-Bot-Api-Secret-Token"] = hook["secret_token"]
        status = await client.post(hook["url"], json.dumps(update).encode(), headers)
        with self._lock:
            self.webhook_deliveries.append((update["update_id"], status))
            if 200 <= status < 300:
                with contextlib.suppress(ValueError):
                    self._updates.remove(update)
            self._changed.notify_all()
            watchers = list(self._watchers)
        for loop, event in watchers:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(event.set)
        if not 200 <= status < 300:
            await asyncio.sleep(0.05)  # Telegram backs off too; this keeps tests quick
        del in_flight[update["update_id"]]
        self._wakeup.set()


class HookClient:
    """JSON POSTs over kept-alive HTTP/1.1 connections (``http`` only: tests serve on loopback).

    ``post`` gives the answer's status, or 0 when no answer came (refused, reset, timed out)."""

    def __init__(self) -> None:
        self._idle: dict[tuple[str, int], list[Connection]] = {}

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        parts = urlsplit(url)
        key = (parts.hostname or "127.0.0.1", parts.port or 80)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        extra = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        request = (
            f"POST {target} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
        ).encode() + body
        for attempt in (1, 2):
            idle = self._idle.get(key)
            reused = bool(idle)
            try:
                async with asyncio.timeout(TIMEOUT):
                    if idle:
                        reader, writer = idle.pop()
                    else:
                        reader, writer = await asyncio.open_connection(*key)
                    try:
                        writer.write(request)
                        await writer.drain()
                        status, keep = await _read_answer(reader)
                    except BaseException:
                        writer.close()
                        raise
            except (OSError, ConnectionError, asyncio.IncompleteReadError, ValueError):
                if reused and attempt == 1:
                    continue  # the server closed a kept-alive connection meanwhile
                return 0
            except TimeoutError:
                return 0
            if keep:
                self._idle.setdefault(key, []).append((reader, writer))
            else:
                writer.close()
            return status
        return 0  # pragma: no cover

    def close(self) -> None:
        for connections in self._idle.values():
            for _, writer in connections:
                writer.close()
        self._idle.clear()


async def _read_answer(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """(status, whether the connection may be used again); the body is read and dropped."""
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("the hook closed the connection")
    status = int(status_line.split(b" ", 2)[1])
    keep = not status_line.startswith(b"HTTP/1.0")
    length: int | None = None
    chunked = False
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b"\n"):
            break
        if not line:
            raise ConnectionError("the hook closed the connection mid-answer")
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif name == b"connection":
            keep = b"close" not in value.lower()
    if chunked:
        while size := int((await reader.readline()).split(b";")[0].strip() or b"0", 16):
            await reader.readexactly(size + 2)
        while (await reader.readline()) not in (b"\r\n", b"\n", b""):
            pass
    elif length is not None:
        await reader.readexactly(length)
    else:
        await reader.read()
        keep = False
    return status, keep


def update_chat(update: dict[str, Any]) -> int | None:
    """The chat an update comes from (a message's, or a tapped message's)."""
    for kind in ("message", "edited_message"):
        if kind in update:
            return int(update[kind]["chat"]["id"])
    query = update.get("callback_query")
    if query is not None:
        return int(query["from"]["id"])
    return None
