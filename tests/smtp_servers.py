"""SMTP servers on loopback for the delivery tests and the benchmark.

- ``SmtpServer``: a real aiosmtpd server in a thread of the test, recording what it receives,
  offering PIPELINING unless told not to, that can be told to misbehave: a reply of the test's
  choosing at MAIL, RCPT, the DATA command or after the message (421, 454, 451, 550...), once or
  for every message (a misconfigured relay: ``554 5.2.252 SendAsDenied``), a recipient it
  refuses, a connection dropped in the middle of DATA, a DATA it never answers (for timeouts),
  a DATA it takes with no recipient, an idle connection it drops.
- ``python -m tests.smtp_servers sink --log FILE``: an aiosmtpd sink in its own process that
  writes one line per message received (Message-ID, recipient and Subject, tab-separated), for
  tests that kill dispatcher processes and count what arrived.
- ``python -m tests.smtp_servers fast-sink``: a minimal SMTP sink on asyncio's protocol layer,
  offering PIPELINING, for the benchmark: it costs the machine far less per message than
  aiosmtpd, so a benchmark on two cores measures the senders rather than the sink.

Both sinks print ``port <n>`` on stdout once they listen.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import email
import email.header
import email.policy
import ssl
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.loopback import free_port


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes

    @property
    def message(self) -> EmailMessage:
        parsed = email.message_from_bytes(self.data, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class Behaviour:
    """What the server does; the test changes it between sends."""

    # One-off replies, used in order: (stage, reply or "disconnect"/"stall"), the stage "mail",
    # "rcpt", "data-command" (the reply to DATA itself; "accept" takes DATA even with no
    # recipient) or "data" (the reply after the message).
    faults: deque[tuple[str, str]] = field(default_factory=deque)
    refuse: dict[str, str] = field(default_factory=dict)  # recipient -> reply, every time
    # stage -> reply for every message, as a misconfigured relay answers (``always_fail``).
    always: dict[str, str] = field(default_factory=dict)
    drop_idle: bool = False  # close each connection after the message it carried
    # Offer PIPELINING (RFC 2920) and CHUNKING (BDAT, RFC 3030) in the EHLO reply, as Postfix,
    # Exchange and Microsoft 365 do: the email channel then writes a message's MAIL, RCPT, BDAT
    # and the message at once (with PIPELINING alone, MAIL, RCPT and DATA).
    pipelining: bool = True
    chunking: bool = True
    # XOAUTH2: the tokens accepted (a live set, e.g. a FakeEntra's ``valid``) and for which mailbox.
    tokens: set[str] | None = None
    mailbox: str = ""


class Recorder:
    """aiosmtpd handler: applies the behaviour and keeps what arrives."""

    def __init__(self, behaviour: Behaviour):
        self.behaviour = behaviour
        self.received: list[Received] = []
        self.rcpt_attempts: list[str] = []
        self.connections = 0
        self.release = threading.Event()  # lets a stalled DATA go (set on stop)
        self.data_started = threading.Event()
        self.message_arrived = threading.Event()  # set once a message has been received
        self.xoauth2_logins: list[tuple[str, str]] = []  # (mailbox, token) per XOAUTH2 attempt
        self.chunks: list[bytes] = []  # what came in each read from the network, in order

    def _fault(self, stage: str) -> str | None:
        faults = self.behaviour.faults
        if faults and faults[0][0] == stage:
            return faults.popleft()[1]
        return self.behaviour.always.get(stage)

    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:
        """XOAUTH2 (as Microsoft 365 takes it): ``user=<mailbox>^Aauth=Bearer <token>^A^A``,
        accepted when the token is in ``behaviour.tokens`` and the mailbox is the expected one."""
        if len(args) < 2:
            return AuthResult(
                success=False, handled=False, message="501 5.5.2 XOAUTH2 needs its argument"
            )
        try:
            fields = base64.b64decode(args[1], validate=True).decode().split("\x01")
        except ValueError:
            return AuthResult(
                success=False, handled=False, message="501 5.5.2 Cannot decode base64"
            )
        values = dict(f.split("=", 1) for f in fields if "=" in f)
        user, bearer = values.get("user", ""), values.get("auth", "")
        token = bearer.removeprefix("Bearer ")
        self.xoauth2_logins.append((user, token))
        tokens, mailbox = self.behaviour.tokens, self.behaviour.mailbox
        if tokens is not None and token in tokens and user == mailbox:
            return AuthResult(success=True, auth_data=user)
        return AuthResult(
            success=False, handled=False, message="535 5.7.3 Authentication unsuccessful"
        )

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        self.connections += 1
        session.host_name = hostname
        offered = [("PIPELINING", self.behaviour.pipelining), ("CHUNKING", self.behaviour.chunking)]
        for keyword, offer in offered:
            if offer:
                responses.insert(len(responses) - 1, f"250-{keyword}")
        return responses

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        fault = self._fault("mail")
        if fault:
            return fault
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        self.rcpt_attempts.append(address)
        if address in self.behaviour.refuse:
            return self.behaviour.refuse[address]
        fault = self._fault("rcpt")
        if fault:
            return fault
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.data_started.set()
        fault = self._fault("data")
        if fault == "stall":
            await asyncio.get_running_loop().run_in_executor(None, self.release.wait)
            return "451 4.3.0 Too late"
        if fault:
            return fault
        data = bytes(envelope.original_content or b"")
        self.received.append(Received(str(envelope.mail_from), list(envelope.rcpt_tos), data))
        self.message_arrived.set()
        return f"250 2.0.0 Ok: queued as Q{len(self.received)}"


class MisbehavingSMTP(SMTP):
    """aiosmtpd's server, able to drop the connection half-way through DATA, and closing the
    connection after a 421 as a real relay does."""

    recorder: Recorder

    def data_received(self, data: bytes) -> None:
        self.recorder.chunks.append(bytes(data))
        super().data_received(data)

    async def push(self, status: Any) -> None:
        await super().push(status)
        text = status if isinstance(status, str) else bytes(status).decode(errors="replace")
        if text.startswith("421") and self.transport is not None:
            self.transport.close()

    async def smtp_DATA(self, arg: str) -> None:
        faults = self.recorder.behaviour.faults
        ready = self.envelope is not None and self.envelope.rcpt_tos
        if faults and faults[0][0] == "data-command":
            reply = faults.popleft()[1]
            if reply != "accept":
                await self.push(reply)
                return
            if not ready:
                # A relay that takes DATA with no recipient, then waits for a message.
                await self.push("354 End data with <CR><LF>.<CR><LF>")
                with contextlib.suppress(ConnectionError):
                    while await self._reader.readline():
                        pass
                return
        if faults and faults[0] == ("data", "disconnect") and ready:
            faults.popleft()
            await self.push("354 End data with <CR><LF>.<CR><LF>")
            await self._reader.readuntil(b"\r\n")  # one line of the message, then hang up
            assert self.transport is not None
            self.transport.close()
            return
        await super().smtp_DATA(arg)
        if self.recorder.behaviour.drop_idle and self.transport is not None:
            self.transport.close()  # as a relay does with a connection left idle too long

    async def smtp_BDAT(self, arg: str) -> None:
        """BDAT (RFC 3030), which aiosmtpd lacks: the chunk is read whatever the reply, as a
        relay must, then the message goes to the handler as DATA's would."""
        size, _, last = arg.partition(" ")
        if not self.recorder.behaviour.chunking:
            await self.push('500 Error: command "BDAT" not recognized')
            return
        if not size.isdigit() or last.upper() not in ("", "LAST"):
            await self.push("501 5.5.4 Syntax: BDAT <size> [LAST]")
            return
        faults = self.recorder.behaviour.faults
        ready = self.envelope is not None and self.envelope.rcpt_tos
        if faults and faults[0] == ("data", "disconnect") and ready:
            faults.popleft()
            await self._reader.readexactly(min(int(size), 100))  # some of it, then hang up
            assert self.transport is not None
            self.transport.close()
            return
        chunk = await self._reader.readexactly(int(size))
        if not ready:
            await self.push("503 5.5.1 Error: need RCPT command")
            return
        assert self.envelope is not None
        self.envelope.original_content = (self.envelope.original_content or b"") + chunk
        if not last:
            await self.push(f"250 2.0.0 {size} bytes received")
            return
        self.envelope.content = self.envelope.original_content
        status = await self._call_handler_hook("DATA")
        await self.push("250 OK" if not isinstance(status, str) else status)
        self._set_post_data_state()  # type: ignore[no-untyped-call]
        if self.recorder.behaviour.drop_idle and self.transport is not None:
            self.transport.close()


class _Controller(Controller):
    def factory(self) -> SMTP:
        server = MisbehavingSMTP(self.handler, **self.SMTP_kwargs)
        server.recorder = self.handler
        return server


@contextlib.contextmanager
def running(**kwargs: Any) -> Iterator[SmtpServer]:
    """``with running() as server:``, for a test's fixture."""
    server = SmtpServer(**kwargs).start()
    try:
        yield server
    finally:
        server.stop()


class SmtpServer:
    """A misbehaving-on-request aiosmtpd server on 127.0.0.1, in a thread of the test."""

    def __init__(
        self,
        *,
        tls_context: ssl.SSLContext | None = None,
        starttls_context: ssl.SSLContext | None = None,
        logins: dict[str, str] | None = None,
        xoauth2: tuple[str, set[str]] | None = None,
        pipelining: bool = True,
        chunking: bool = True,
    ):
        """``xoauth2``: (mailbox, the tokens accepted), for a relay that takes only XOAUTH2;
        ``pipelining`` and ``chunking``: whether the server offers PIPELINING and CHUNKING (it
        takes pipelined commands either way, as aiosmtpd reads one command after another)."""
        self.behaviour = Behaviour(pipelining=pipelining, chunking=chunking)
        if xoauth2 is not None:
            self.behaviour.mailbox, self.behaviour.tokens = xoauth2
        self.recorder = Recorder(self.behaviour)
        kwargs: dict[str, Any] = {"hostname": "127.0.0.1", "port": free_port()}
        smtp_kwargs: dict[str, Any] = {}
        if tls_context is not None:
            kwargs["ssl_context"] = tls_context
        if starttls_context is not None:
            smtp_kwargs.update(tls_context=starttls_context, require_starttls=True)
        if logins is not None or xoauth2 is not None:
            smtp_kwargs.update(
                authenticator=_Authenticator(logins or {}),
                auth_require_tls=False,
                auth_required=True,
            )
        if xoauth2 is not None:
            # Microsoft 365 offers LOGIN and XOAUTH2; password login is what it turns off.
            smtp_kwargs["auth_exclude_mechanism"] = ["PLAIN"]
        self.controller = _Controller(self.recorder, **kwargs, **smtp_kwargs)

    def start(self) -> SmtpServer:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.recorder.release.set()
        self.controller.stop()

    @property
    def port(self) -> int:
        return int(self.controller.port)

    @property
    def received(self) -> list[Received]:
        return self.recorder.received

    def fail_next(self, stage: str, reply: str, times: int = 1) -> None:
        for _ in range(times):
            self.behaviour.faults.append((stage, reply))

    def refuse(self, address: str, reply: str = "550 5.1.1 User unknown") -> None:
        self.behaviour.refuse[address] = reply

    def always_fail(self, stage: str, reply: str) -> None:
        """Answer ``reply`` at ``stage`` for every message until ``mend()``."""
        self.behaviour.always[stage] = reply

    def mend(self) -> None:
        self.behaviour.always.clear()


class _Authenticator:
    def __init__(self, logins: dict[str, str]):
        self.logins = logins

    def __call__(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        if isinstance(data, LoginPassword):
            user, password = data.login.decode(), data.password.decode()
            if self.logins.get(user) == password:
                return AuthResult(success=True)
        return AuthResult(success=False, handled=False)


# --- sinks in their own processes ---------------------------------------------------------------


class _SinkHandler:
    """Writes a line per message, flushed at once, so a test can count what arrived."""

    def __init__(self, log: Path | None):
        self.log = log.open("a", buffering=1) if log else None
        self.count = 0
        self.parser = BytesHeaderParser(policy=email.policy.compat32)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.count += 1
        if self.log is not None:
            data = bytes(envelope.original_content or b"")
            self.log.write(_summary(data, ",".join(envelope.rcpt_tos), self.parser))
        return "250 OK"


def _summary(data: bytes, recipient: str, parser: BytesHeaderParser) -> str:
    """``<Message-ID>\\t<recipient>\\t<Subject>``, a line of a sink's log."""
    headers = parser.parsebytes(data.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n")
    subject = str(email.header.make_header(email.header.decode_header(headers["Subject"] or "")))
    return f"{headers['Message-ID']}\t{recipient}\t{subject}\n"


def read_log(path: Path) -> list[tuple[str, str, str]]:
    """A sink's log: (Message-ID, recipient, Subject) per message received."""
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    return [tuple(line.split("\t", 2)) for line in lines if line.count("\t") == 2]  # type: ignore[misc]


class _FastSink(asyncio.Protocol):
    """Just enough SMTP for aiosmtplib and the email channel: EHLO, MAIL, RCPT, DATA, BDAT,
    RSET, NOOP, QUIT, with PIPELINING and CHUNKING."""

    log: Any = None
    parser = BytesHeaderParser(policy=email.policy.compat32)
    delay = 0.0  # seconds before accepting a message, as a relay across a network takes

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.buffer = b""
        self.in_data = False
        self.chunk: int | None = None  # bytes of a BDAT chunk still to come
        self.recipient = ""
        transport.write(b"220 sink ESMTP\r\n")

    def data_received(self, data: bytes) -> None:
        # The replies to what arrived together go in one write, as a relay offering
        # PIPELINING sends them (RFC 2920).
        replies: list[bytes] = []
        self.buffer += data
        while True:
            if self.in_data or self.chunk is not None:
                if self.chunk is not None:
                    if len(self.buffer) < self.chunk:
                        break
                    message, self.buffer = self.buffer[: self.chunk], self.buffer[self.chunk :]
                    self.chunk = None
                else:
                    end = self.buffer.find(b"\r\n.\r\n")
                    if end < 0:
                        break
                    message, self.buffer = self.buffer[:end], self.buffer[end + 5 :]
                    self.in_data = False
                if self.log is not None:
                    self.log.write(_summary(message, self.recipient, self.parser))
                if self.delay:
                    loop = asyncio.get_running_loop()
                    loop.call_later(self.delay, self.transport.write, b"250 2.0.0 Ok: queued\r\n")
                else:
                    replies.append(b"250 2.0.0 Ok: queued\r\n")
                continue
            end = self.buffer.find(b"\r\n")
            if end < 0:
                break
            line, self.buffer = self.buffer[:end], self.buffer[end + 2 :]
            verb = line[:4].upper()
            if verb == b"EHLO":
                replies.append(
                    b"250-sink\r\n250-8BITMIME\r\n250-PIPELINING\r\n250-CHUNKING\r\n"
                    b"250 SIZE 52428800\r\n"
                )
            elif verb == b"DATA":
                self.in_data = True
                replies.append(b"354 go ahead\r\n")
            elif verb == b"BDAT":  # every message in one chunk, as the email channel sends it
                self.chunk = int(line.split()[1])
            elif verb == b"RCPT":
                self.recipient = line.partition(b"<")[2].rstrip(b">").decode()
                replies.append(b"250 OK\r\n")
            elif verb == b"QUIT":
                replies.append(b"221 bye\r\n")
                self.transport.write(b"".join(replies))
                self.transport.close()
                return
            else:  # MAIL, RSET, NOOP, HELO
                replies.append(b"250 OK\r\n")
        if replies:
            self.transport.write(b"".join(replies))


async def _serve(kind: str, port: int, log: Path | None, delay_ms: float = 0.0) -> None:
    loop = asyncio.get_running_loop()
    server: asyncio.AbstractServer
    if kind == "sink":
        handler = _SinkHandler(log)
        server = await loop.create_server(lambda: SMTP(handler, hostname="sink"), "127.0.0.1", port)
    else:
        _FastSink.log = log.open("a", buffering=1) if log else None
        _FastSink.delay = delay_ms / 1000
        server = await loop.create_server(_FastSink, "127.0.0.1", port, backlog=512)
    print(f"port {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


def start_sink(
    kind: str = "sink", log: Path | None = None, delay_ms: float = 0.0
) -> tuple[subprocess.Popen[str], int]:
    """Start a sink process; returns it and the port it listens on. ``delay_ms``: how long the
    fast sink takes to accept each message."""
    command = [sys.executable, "-m", "tests.smtp_servers", kind]
    if log is not None:
        command += ["--log", str(log)]
    if delay_ms:
        command += ["--delay-ms", str(delay_ms)]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.startswith("port "):
        process.kill()
        raise RuntimeError(f"the {kind} did not start: {line!r}")
    return process, int(line.split()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("kind", choices=["sink", "fast-sink"])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--log", type=Path)
    parser.add_argument("--delay-ms", type=float, default=0.0, help="fast-sink: accept slowly")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.kind, args.port, args.log, args.delay_ms))


if __name__ == "__main__":
    main()
