"""The sending half of one relay connection: MAIL, RCPT and the message.

aiosmtplib opens the connection (the greeting, EHLO, STARTTLS and the login); the transport is
then handed to an ``SmtpSession``, which sends the messages, in as few round trips as the relay
allows:

- with PIPELINING and CHUNKING (RFC 2920 and 3030; Postfix, Exchange and Microsoft 365 offer
  both): MAIL, RCPT, ``BDAT <size> LAST`` and the message in one write, three replies read
  together: one round trip a message;
- with PIPELINING only: MAIL, RCPT and DATA in one write, then the message after the 354: two;
- with neither, each command waits for its reply, as aiosmtplib's ``sendmail`` does: four.

The session reads replies itself because aiosmtplib's protocol expects one reply per command
awaited: a reply that arrives while the one before is waiting to be collected is dropped, and a
second reply in the same packet stays unparsed until more data comes, so the third reply of a
pipelined group would never be seen.

Failures are aiosmtplib's exceptions (``SMTPSenderRefused``, ``SMTPRecipientRefused``,
``SMTPDataError``, ``SMTPServerDisconnected``, ``SMTPReadTimeoutError``), raised for the first
command of a message that failed, whichever way it was sent, so the email channel classes them
as it classes aiosmtplib's own. A relay answers every command of a pipelined group, so after a
refusal all the group's replies have been read and the connection serves the next message.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import cast

import aiosmtplib
from aiosmtplib import (
    SMTPDataError,
    SMTPException,
    SMTPReadTimeoutError,
    SMTPRecipientRefused,
    SMTPResponse,
    SMTPResponseException,
    SMTPSenderRefused,
    SMTPServerDisconnected,
)

from bot.channels.mime import smtp_payload

__all__ = ["SmtpSession"]

MAX_REPLY = 32 * 1024  # a reply longer than this (endless continuation lines) is a broken relay


class SmtpSession(asyncio.Protocol):
    """Sends messages over a connection aiosmtplib has opened (and logged in on)."""

    def __init__(self, client: aiosmtplib.SMTP, *, timeout: float | None) -> None:
        transport = client.transport
        if transport is None or transport.is_closing():
            raise SMTPServerDisconnected("Connection lost")
        self.client = client
        self.pipelining = client.supports_extension("pipelining")
        self.chunking = self.pipelining and client.supports_extension("chunking")
        self.timeout = timeout
        self.answered = False  # whether the relay answered anything for the last message
        self._loop = asyncio.get_running_loop()
        self._transport = cast(asyncio.Transport, transport)
        self._buffer = bytearray()
        self._replies: deque[SMTPResponse] = deque()
        self._owed = 0  # replies to commands written and not yet taken from ``_replies``
        self._wanted = 0
        self._waiter: asyncio.Future[None] | None = None
        self._deadline = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._lost: SMTPServerDisconnected | None = None
        transport.set_protocol(self)

    @property
    def is_connected(self) -> bool:
        return self._lost is None and not self._transport.is_closing()

    # --- sending ----------------------------------------------------------------------------

    async def send(
        self, mail: bytes, rcpt: bytes, message: bytes, *, sender: str, recipient: str
    ) -> SMTPResponse:
        """Send ``message`` (as ``build_message`` made it) with the MAIL and RCPT lines given;
        the relay's reply when it took the message. Raises for the first command refused."""
        self.answered = False
        if self.chunking:
            size = b"BDAT %d LAST\r\n" % len(message)
            self._write(b"".join((mail, rcpt, size, message)), 3)
            replies = await self._group(3, sender, recipient)
            self._check_envelope(replies, sender, recipient)
            if replies[2].code != 250:
                raise SMTPDataError(replies[2].code, replies[2].message)
            return replies[2]
        if self.pipelining:
            self._write(b"".join((mail, rcpt, b"DATA\r\n")), 3)
            replies = await self._group(3, sender, recipient)
            try:
                self._check_envelope(replies, sender, recipient)
            except SMTPResponseException:
                if replies[2].code == 354:
                    # The relay took DATA after refusing what came before it, and now waits for
                    # a message that will not come: this connection is of no further use.
                    self.close()
                raise
        else:
            self._check_envelope([await self._command(mail)], sender, recipient)
            self._check_envelope([_ACCEPTED, await self._command(rcpt)], sender, recipient)
            replies = [_ACCEPTED, _ACCEPTED, await self._command(b"DATA\r\n")]
        if replies[2].code != 354:
            raise SMTPDataError(replies[2].code, replies[2].message)
        reply = await self._command(smtp_payload(message))
        if reply.code != 250:
            raise SMTPDataError(reply.code, reply.message)
        return reply

    @staticmethod
    def _check_envelope(replies: list[SMTPResponse], sender: str, recipient: str) -> None:
        if replies[0].code != 250:
            raise SMTPSenderRefused(replies[0].code, replies[0].message, sender)
        if len(replies) > 1 and replies[1].code not in (250, 251):
            raise SMTPRecipientRefused(replies[1].code, replies[1].message, recipient)

    async def _group(self, count: int, sender: str, recipient: str) -> list[SMTPResponse]:
        """The replies to ``count`` commands written together. Should the connection fail
        before all have come, a refusal among those that did is raised before the failure."""
        stopped = await self._gather(count)
        if stopped is None:
            return [self._take() for _ in range(count)]
        came = [self._take() for _ in range(min(count, len(self._replies)))]
        if came:
            self._check_envelope(came, sender, recipient)
        raise stopped

    async def rset(self) -> None:
        """Ready the connection for the next message after a refusal, or close it where the
        relay is not ready for one."""
        if not self.is_connected or self._owed or self._replies:
            self.close()
            return
        try:
            reply = await self._command(b"RSET\r\n")
        except SMTPException:
            self.close()
            return
        if reply.code != 250:
            self.close()

    async def quit(self) -> None:
        if self.is_connected and not self._owed:
            with contextlib.suppress(SMTPException):
                await self._command(b"QUIT\r\n", timeout=2)
        self.close()

    def close(self) -> None:
        self.client.close()  # closes the transport
        if self._lost is None:
            self._fail(SMTPServerDisconnected("Connection closed"))

    async def _command(self, line: bytes, *, timeout: float | None = None) -> SMTPResponse:
        self._write(line, 1)
        stopped = await self._gather(1, timeout)
        if stopped is not None:
            raise stopped
        return self._take()

    def _write(self, data: bytes, commands: int) -> None:
        if not self.is_connected:
            raise self._lost or SMTPServerDisconnected("Connection lost")
        self._transport.write(data)
        self._owed += commands

    def _take(self) -> SMTPResponse:
        self._owed -= 1
        return self._replies.popleft()

    async def _gather(self, count: int, timeout: float | None = None) -> SMTPException | None:
        """Wait until ``count`` replies have come; what stopped them coming, if anything."""
        if len(self._replies) >= count:
            return None
        if self._lost is not None:
            return self._lost
        waiter = self._loop.create_future()
        self._wanted, self._waiter = count, waiter
        wait = timeout if timeout is not None else self.timeout
        if wait is not None:
            # One timer serves many waits: it is moved on only when it fires (``_check_time``),
            # rather than made and cancelled for every reply.
            self._deadline = self._loop.time() + wait
            if self._timer is None:
                self._timer = self._loop.call_at(self._deadline, self._check_time)
            elif self._timer.when() > self._deadline:
                self._timer.cancel()
                self._timer = self._loop.call_at(self._deadline, self._check_time)
        try:
            await waiter
        except SMTPException as exc:
            return exc
        finally:
            self._waiter = None
        return None

    def _check_time(self) -> None:
        self._timer = None
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        if self._loop.time() >= self._deadline:
            waiter.set_exception(SMTPReadTimeoutError("Timed out waiting for server response"))
        else:
            self._timer = self._loop.call_at(self._deadline, self._check_time)

    # --- asyncio's protocol -------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        try:
            self._parse(buffer)
        except SMTPResponseException as exc:
            self._transport.close()
            self._fail(exc)
            return
        waiter = self._waiter
        if waiter is not None and len(self._replies) >= self._wanted and not waiter.done():
            waiter.set_result(None)

    def _parse(self, buffer: bytearray) -> None:
        """Move every whole reply at the start of ``buffer`` to ``_replies``."""
        start = 0
        lines: list[bytes] = []
        while (end := buffer.find(b"\n", start)) >= 0:
            line = bytes(buffer[start:end]).rstrip(b"\r")
            start = end + 1
            code = line[:3]
            if not code.isdigit():
                raise SMTPResponseException(
                    -1, f"Malformed SMTP response line: {line.decode('utf-8', 'replace')}"
                )
            lines.append(line[4:].strip(b" \t"))
            if line[3:4] != b"-":
                text = b"\n".join(lines).decode("utf-8", "surrogateescape")
                self._replies.append(SMTPResponse(int(code), text))
                self.answered = True
                del buffer[:start]
                start = 0
                lines = []
        if len(buffer) > MAX_REPLY:
            raise SMTPResponseException(-1, "Response too long")

    def eof_received(self) -> bool:
        self._fail(SMTPServerDisconnected("Unexpected EOF received"))
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        lost = SMTPServerDisconnected("Connection lost")
        lost.__cause__ = exc
        self._fail(lost)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _fail(self, exc: SMTPException) -> None:
        if self._lost is None and isinstance(exc, SMTPServerDisconnected):
            self._lost = exc
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)


_ACCEPTED = SMTPResponse(250, "")  # stands for a reply already checked
