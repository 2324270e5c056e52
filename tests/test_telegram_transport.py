"""The lean Bot API transport against a plain HTTP server on loopback: the awkward cases."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable

import pytest
from telegram import Bot
from telegram.error import NetworkError, TimedOut

from bot.telegram.transport import LeanRequest, make_request
from tests.fake_telegram import TOKEN

ME = {"id": 1, "is_bot": True, "first_name": "Evalbot", "username": "evalbot_test_bot"}
Answer = Callable[[int], bytes]


def chunked(_: int) -> bytes:
    body = json.dumps({"ok": True, "result": ME}).encode()
    middle = len(body) // 2
    chunks = b"".join(
        f"{len(part):x}\r\n".encode() + part + b"\r\n" for part in (body[:middle], body[middle:])
    )
    trailer = b"X-Checksum: ignored\r\n"  # a trailer field after the last chunk
    return (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        + chunks
        + b"0\r\n"
        + trailer
        + b"\r\n"
    )


def plain(_: int) -> bytes:
    body = json.dumps({"ok": True, "result": ME}).encode()
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


@pytest.fixture
async def server(request: pytest.FixtureRequest) -> AsyncIterator[dict[str, object]]:
    """A server answering each request with ``answer``; ``close_after`` drops the connection
    once it has answered that many requests on it, without saying so."""
    state: dict[str, object] = {"answer": plain, "close_after": None, "requests": 0, "silent": 0}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        served = 0
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                length = 0
                while (header := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = header.partition(b":")
                    if name.lower() == b"content-length":
                        length = int(value)
                await reader.readexactly(length)
                state["requests"] = int(state["requests"]) + 1  # type: ignore[call-overload]
                if state["silent"]:
                    await asyncio.sleep(3600)
                answer: Answer = state["answer"]  # type: ignore[assignment]
                writer.write(answer(served))
                await writer.drain()
                served += 1
                if state["close_after"] is not None and served >= state["close_after"]:  # type: ignore[operator]
                    return
        except (ConnectionError, asyncio.CancelledError):
            return
        finally:
            writer.close()

    listening = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = listening.sockets[0].getsockname()[1]
    state["url"] = f"http://127.0.0.1:{port}/bot"
    yield state
    listening.close()


async def test_chunked_answers_are_read(server):
    server["answer"] = chunked
    async with Bot(TOKEN, base_url=server["url"], request=LeanRequest()) as bot:
        me = await bot.get_me()
    assert me.username == "evalbot_test_bot"


async def test_a_connection_the_server_dropped_is_replaced_quietly(server):
    server["close_after"] = 1  # keep-alive promised, then the connection is closed
    async with Bot(TOKEN, base_url=server["url"], request=LeanRequest()) as bot:
        for _ in range(3):
            assert (await bot.get_me()).id == 1
    assert server["requests"] == 4  # initialize's getMe, then three; none sent twice


async def test_a_silent_server_times_out(server):
    request = LeanRequest(read_timeout=0.2)
    await request.initialize()
    server["silent"] = 1
    try:
        with pytest.raises(TimedOut):
            await request.do_request(f"{server['url']}{TOKEN}/getMe", "POST")
    finally:
        await request.shutdown()


async def test_nothing_listening_is_a_network_error():
    request = LeanRequest()
    await request.initialize()
    try:
        with pytest.raises(NetworkError):
            await request.do_request("http://127.0.0.1:9/bot1:x/getMe", "POST")
    finally:
        await request.shutdown()


def test_a_proxy_in_the_environment_means_httpx(monkeypatch):
    from telegram.request import HTTPXRequest

    assert isinstance(make_request(connections=1, read_timeout=5, force_httpx=False), LeanRequest)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    assert isinstance(make_request(connections=1, read_timeout=5, force_httpx=False), HTTPXRequest)
