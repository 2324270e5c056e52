"""A lean HTTP/1.1 transport for python-telegram-bot, on asyncio streams.

The Bot API takes a POST and answers with JSON, nothing more; PTB's default transport (httpx)
spends about ten times the CPU of the request itself on its layers, which is what limits how
many survey answers a second the bot can take. This one keeps a small pool of keep-alive
connections (TLS for ``https``), sends the parameters PTB prepared as a JSON body (which the
Bot API accepts for every method but uploads), and reads ``Content-Length`` or chunked answers.

It is used unless an HTTP proxy is configured in the environment (``HTTPS_PROXY``,
``HTTP_PROXY``, ``ALL_PROXY``), or ``EVALBOT_TELEGRAM_TRANSPORT=httpx`` is set; file uploads,
which Evalbot never makes, go through httpx too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from telegram._utils.defaultvalue import DefaultValue
from telegram._utils.types import JSONDict, ODVInput
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, HTTPXRequest, RequestData

PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY")


def proxy_configured() -> bool:
    return any(os.environ.get(name) for name in PROXY_VARIABLES)


@dataclass
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


class LeanRequest(BaseRequest):
    """PTB's ``BaseRequest`` over a pool of HTTP/1.1 keep-alive connections."""

    def __init__(
        self,
        *,
        connections: int = 16,
        read_timeout: float | None = 15.0,
        write_timeout: float = 15.0,
        connect_timeout: float = 10.0,
        pool_timeout: float = 10.0,
    ):
        self._size = connections
        self._read_timeout = read_timeout
        self._write_timeout = write_timeout
        self._connect_timeout = connect_timeout
        self._pool_timeout = pool_timeout
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._slots: asyncio.Semaphore | None = None
        self._uploads: HTTPXRequest | None = None
        self._ssl: ssl.SSLContext | None = None

    @property
    def read_timeout(self) -> float | None:
        return self._read_timeout

    async def initialize(self) -> None:
        self._slots = asyncio.Semaphore(self._size)

    async def shutdown(self) -> None:
        for connections in self._idle.values():
            for connection in connections:
                connection.close()
        self._idle.clear()
        if self._uploads is not None:
            await self._uploads.shutdown()
            self._uploads = None

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        write_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        connect_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        pool_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        if request_data is not None and request_data.contains_files:
            return await self._upload(
                url, method, request_data, read_timeout, write_timeout, connect_timeout
            )
        if self._slots is None:
            raise RuntimeError("This LeanRequest is not initialized!")
        reading = self._read_timeout if isinstance(read_timeout, DefaultValue) else read_timeout
        pooling = self._pool_timeout if isinstance(pool_timeout, DefaultValue) else pool_timeout
        # JSON, which the Bot API takes as well as a form: one C-accelerated ``json.dumps`` of
        # the whole, where PTB's form encoding dumps each value and then quotes it character by
        # character (a measurable share of answering a tap).
        body = _json_body(request_data.parameters) if request_data else b""
        parts = urlsplit(url)
        key = (parts.scheme, parts.hostname or "", parts.port or _default_port(parts.scheme))
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        head = (
            f"{method} {target} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            f"User-Agent: {self.USER_AGENT}\r\nAccept: application/json\r\n"
            "Content-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode("latin-1")
        try:
            if self._slots.locked():  # a timeout costs more than the request's own work
                async with asyncio.timeout(pooling):
                    await self._slots.acquire()
            else:
                await self._slots.acquire()
        except TimeoutError:
            raise TimedOut(
                "Pool timeout: every connection is busy; the request was not sent."
            ) from None
        try:
            return await self._exchange(key, head + body, reading)
        finally:
            self._slots.release()

    async def _exchange(
        self, key: tuple[str, str, int], request: bytes, reading: float | None
    ) -> tuple[int, bytes]:
        # A kept-alive connection the server has meanwhile closed fails before any answer, and
        # the request is sent again once on a new connection. (A server that took the request
        # and died before answering would get it twice: delivery is at least once anyway.)
        for attempt in (1, 2):
            connection, reused = await self._connection(key)
            try:
                connection.writer.write(request)
                if connection.writer.transport.get_write_buffer_size():
                    async with asyncio.timeout(self._write_timeout):
                        await connection.writer.drain()
                else:  # all sent already: drain only checks that the connection is still there
                    await connection.writer.drain()
                async with asyncio.timeout(reading):
                    status_line = await connection.reader.readline()
                    if not status_line:
                        raise ConnectionResetError("the server closed the connection")
                    status, payload, keep = await _read_response(status_line, connection.reader)
            except TimeoutError:
                connection.close()
                raise TimedOut("Timed out waiting for the Bot API") from None
            except (ConnectionError, asyncio.IncompleteReadError, OSError) as exc:
                connection.close()
                if reused and attempt == 1:
                    continue
                raise NetworkError(f"connection to the Bot API failed: {exc!r}") from exc
            except BaseException:
                connection.close()
                raise
            if keep:
                self._idle.setdefault(key, []).append(connection)
            else:
                connection.close()
            return status, payload
        raise NetworkError("connection to the Bot API failed twice")  # pragma: no cover

    async def _connection(self, key: tuple[str, str, int]) -> tuple[_Connection, bool]:
        idle = self._idle.get(key)
        while idle:
            connection = idle.pop()
            if not connection.reader.at_eof():
                return connection, True
            connection.close()
        scheme, host, port = key
        context = None
        if scheme == "https":
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
            context = self._ssl
        try:
            async with asyncio.timeout(self._connect_timeout):
                reader, writer = await asyncio.open_connection(host, port, ssl=context, limit=2**22)
        except TimeoutError:
            raise TimedOut(f"Timed out connecting to {host}:{port}") from None
        except OSError as exc:
            raise NetworkError(f"cannot connect to {host}:{port}: {exc}") from exc
        return _Connection(reader, writer), False

    async def _upload(
        self,
        url: str,
        method: str,
        request_data: RequestData,
        read_timeout: ODVInput[float],
        write_timeout: ODVInput[float],
        connect_timeout: ODVInput[float],
    ) -> tuple[int, bytes]:
        if self._uploads is None:
            self._uploads = HTTPXRequest()
            await self._uploads.initialize()
        return await self._uploads.do_request(
            url,
            method,
            request_data,
            read_timeout=read_timeout,
            write_timeout=write_timeout,
            connect_timeout=connect_timeout,
        )


class UpdatesRequest(LeanRequest):
    """The transport for ``getUpdates``: the updates lose what Evalbot never reads before PTB
    parses them (``drop_tapped_keyboards``)."""

    @staticmethod
    def parse_json_payload(payload: bytes) -> JSONDict:
        answer = BaseRequest.parse_json_payload(payload)
        updates = answer.get("result") if isinstance(answer, dict) else None
        if isinstance(updates, list):
            for update in updates:
                drop_tapped_keyboards(update)
        return answer


def drop_tapped_keyboards(update: object) -> None:
    """Drop the keyboard under the message a tap came from, which Telegram sends back with
    every tap: Evalbot never reads it (a button's own data says what it is about), and turning
    its buttons into PTB objects is a third of the cost of parsing the update."""
    if not isinstance(update, dict):
        return
    query = update.get("callback_query")
    message = query.get("message") if isinstance(query, dict) else None
    if isinstance(message, dict):
        message.pop("reply_markup", None)


def _json_body(parameters: dict[str, Any]) -> bytes:
    return json.dumps(parameters, ensure_ascii=False, separators=(",", ":")).encode()


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


async def _read_response(
    status_line: bytes, reader: asyncio.StreamReader
) -> tuple[int, bytes, bool]:
    """(status, body, whether the connection may be used again)."""
    try:
        status = int(status_line.split(b" ", 2)[1])
    except (IndexError, ValueError):
        raise ConnectionError(f"not an HTTP answer: {status_line[:80]!r}") from None
    length: int | None = None
    chunked = False
    keep = not status_line.startswith(b"HTTP/1.0")
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b"\n"):
            break
        if not line:
            raise ConnectionError("the server closed the connection mid-answer")
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif name == b"connection":
            keep = b"close" not in value.lower()
    if chunked:
        return status, await _read_chunked(reader), keep
    if length is None:
        return status, await reader.read(), False
    return status, await reader.readexactly(length), keep


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    body = bytearray()
    while True:
        size = int((await reader.readline()).split(b";")[0].strip() or b"0", 16)
        if size == 0:
            # Trailer fields may follow the last chunk; the bot needs none: read up to the blank
            # line that ends the answer.
            line = await reader.readline()
            while line not in (b"\r\n", b"\n", b""):
                line = await reader.readline()
            return bytes(body)
        body += await reader.readexactly(size)
        await reader.readline()


def make_request(
    *, connections: int, read_timeout: float, force_httpx: bool, updates: bool = False
) -> BaseRequest:
    """The transport for one PTB ``Bot``: lean, or httpx behind a proxy or when asked;
    ``updates`` for the one that polls ``getUpdates``."""
    if force_httpx or proxy_configured():
        return HTTPXRequest(
            connection_pool_size=connections, read_timeout=read_timeout, connect_timeout=10
        )
    lean = UpdatesRequest if updates else LeanRequest
    return lean(connections=connections, read_timeout=read_timeout)
