"""Email: through an SMTP relay with aiosmtplib, or into a folder of ``.eml`` files.

``SmtpChannel`` keeps a small pool of long-lived connections (``EVALBOT_SMTP_CONNECTIONS``) and
opens a fresh one whenever the relay has dropped one. How each failure is classed:

- 4xx replies, disconnects and timeouts: transient, the dispatcher tries again later;
- a rejected recipient (550, 551 or 553 at RCPT, or an enhanced code 5.1.x at any stage):
  permanent, that address is undeliverable;
- any other 5xx (a refused sender, 5.2.x, 5.3.x and 5.7.x policy and message faults, a 552 or
  554 after DATA) and a refused login: the relay's configuration is wrong, not the person's
  address, so the channel pauses and every message waits until it is mended (``bot.pauses``).

See ``smtp_fault`` for the rule.

With no ``EVALBOT_SMTP_HOST``, ``MailFolderChannel`` writes each message to
``EVALBOT_MAIL_DIR/<outbox id>.<hash>.eml`` instead, so everything can be read without a relay.

Messages are built by ``bot.channels.mime`` (``build_message`` is importable from here too).
With ``EVALBOT_SMTP_AUTH=oauth2`` the login is a Microsoft 365 token (``bot.channels.m365``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import ssl
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import aiosmtplib
from aiosmtplib import (
    SMTPAuthenticationError,
    SMTPDataError,
    SMTPException,
    SMTPHeloError,
    SMTPRecipientRefused,
    SMTPResponseException,
    SMTPSenderRefused,
    SMTPServerDisconnected,
)

from bot.channels.base import ChannelError, Delivered, Outgoing
from bot.channels.m365 import M365Tokens, TokenError, system_clock
from bot.channels.mime import (
    _ADDRESS,
    build_message,
    encode_header,
    envelope_sender,
    smtp_payload,
)
from bot.channels.smtp_session import SmtpSession
from bot.settings import Settings
from surveys.files import private_folder, write_private

__all__ = [
    "MailFolderChannel",
    "SmtpChannel",
    "build_message",
    "encode_header",
    "enhanced_code",
    "envelope_sender",
    "smtp_fault",
    "smtp_payload",
]

DEFAULT_PORTS = {"none": 25, "starttls": 587, "tls": 465}
RECIPIENT_CODES = frozenset({550, 551, 553})
_ENHANCED = re.compile(r"([245])\.(\d{1,3})\.(\d{1,3})(?!\S)")


def enhanced_code(message: str) -> tuple[int, int, int] | None:
    """The enhanced status code (RFC 3463) a reply's text starts with, if it has one."""
    found = _ENHANCED.match(message.strip())
    if found is None:
        return None
    klass, subject, detail = (int(part) for part in found.groups())
    return klass, subject, detail


def smtp_fault(stage: str, code: int, message: str) -> str:
    """Whose fault a reply at ``stage`` (``mail``, ``rcpt``, ``data``, ``auth``) is:
    ``transient`` (try again), ``recipient`` (that address is refused) or ``channel`` (the
    relay will send nothing of ours until it is mended: pause).

    Only a rejected recipient is the recipient's: 550, 551 or 553 at RCPT without an enhanced
    code, or any 5xx whose enhanced code is 5.1.x (bad mailbox or domain). A 5xx whose enhanced
    code is anything else (5.2.252 SendAsDenied, 5.3.4 message too big, 5.7.x policy) or that
    comes at MAIL, DATA or AUTH is the relay's."""
    if code < 500:
        return "transient"
    enhanced = enhanced_code(message)
    if enhanced is not None and enhanced[0] == 5:
        return "recipient" if enhanced[1] == 1 else "channel"
    if stage == "rcpt" and code in RECIPIENT_CODES:
        return "recipient"
    return "channel"


# --- SMTP -------------------------------------------------------------------------------------


class _Slot:
    """One place in the pool, holding a connection once one is open."""

    def __init__(self) -> None:
        self.session: SmtpSession | None = None

    def drop(self) -> None:
        if self.session is not None:
            self.session.close()
        self.session = None


class SmtpChannel:
    """Email through an SMTP relay, over a pool of long-lived connections."""

    name = "email"

    def __init__(self, settings: Settings, *, clock: Callable[[], datetime] = system_clock):
        if not settings.smtp_host:
            raise ValueError("SmtpChannel needs EVALBOT_SMTP_HOST")
        # Microsoft 365 without a password: tokens by XOAUTH2 (``bot.channels.m365``).
        self.tokens = M365Tokens(settings, clock=clock) if settings.smtp_auth == "oauth2" else None
        self.host = settings.smtp_host
        self.security = settings.smtp_security
        self.port = settings.smtp_port or DEFAULT_PORTS[self.security]
        self.timeout = settings.smtp_timeout
        self.username = settings.smtp_username
        self.password = (
            settings.smtp_password.get_secret_value() if settings.smtp_password else None
        )
        self.ca_file = str(settings.smtp_ca_file) if settings.smtp_ca_file else None
        self.mail_from = settings.mail_from
        self.sender = envelope_sender(settings.mail_from)
        if not _ADDRESS.fullmatch(self.sender):
            raise ValueError(f"EVALBOT_MAIL_FROM: {settings.mail_from!r} holds no address")
        # MAIL and RCPT are written as they are, rather than with ``client.mail()`` and
        # ``rcpt()``, which parse both addresses again for every message: the sender was
        # checked once, here; each recipient is checked by ``_ADDRESS``.
        self._mail_line = b"MAIL FROM:<" + self.sender.encode() + b">\r\n"
        self.reply_to = settings.reply_to
        self.concurrency = settings.smtp_connections
        self._slots: asyncio.Queue[_Slot] = asyncio.Queue()
        for _ in range(self.concurrency):
            self._slots.put_nowait(_Slot())

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    async def send(self, message: Outgoing) -> Delivered:
        recipient = message.recipient
        if not _ADDRESS.fullmatch(recipient):
            raise ChannelError(f"{recipient!r} is not an address email can reach", permanent=True)
        data = build_message(message, mail_from=self.mail_from, reply_to=self.reply_to)
        slot = await self._slots.get()
        try:
            return Delivered(server_reply=await self._send(slot, recipient, data))
        finally:
            self._slots.put_nowait(slot)

    async def _send(self, slot: _Slot, recipient: str, data: bytes) -> str:
        session = slot.session
        fresh = session is None or not session.is_connected
        if fresh:
            slot.drop()
            slot.session = session = await self._connect()
        assert session is not None
        rcpt = b"RCPT TO:<" + recipient.encode() + b">\r\n"
        try:
            try:
                response = await session.send(
                    self._mail_line, rcpt, data, sender=self.sender, recipient=recipient
                )
            except (SMTPServerDisconnected, ConnectionError):
                if fresh or session.answered:
                    raise
                # The relay dropped a connection that sat idle: it answered nothing of this
                # message, so open a fresh one and carry on.
                slot.drop()
                slot.session = session = await self._connect()
                response = await session.send(
                    self._mail_line, rcpt, data, sender=self.sender, recipient=recipient
                )
        except ChannelError:
            raise
        except Exception as exc:
            raise await self._classify(exc, slot, recipient) from exc
        return f"{response.code} {response.message}"

    async def _connect(self) -> SmtpSession:
        """A connection that aiosmtplib opened and logged in on, handed to a session."""
        client = await self._login()
        try:
            return SmtpSession(client, timeout=self.timeout)
        except SMTPServerDisconnected as exc:
            client.close()
            raise ChannelError(f"cannot connect to the relay at {self.where}: {_why(exc)}") from exc

    async def _login(self) -> aiosmtplib.SMTP:
        try:
            return await self._open()
        except SMTPAuthenticationError as exc:
            if self.tokens is None or exc.code < 500:
                raise self._login_refused(exc) from exc
            # A refused token is renewed once; refused again, the channel pauses.
            self.tokens.renew()
            try:
                return await self._open()
            except SMTPAuthenticationError as again:
                raise self._login_refused(again) from again

    async def _open(self) -> aiosmtplib.SMTP:
        client = aiosmtplib.SMTP(
            hostname=self.host,
            port=self.port,
            timeout=self.timeout,
            use_tls=self.security == "tls",
            start_tls=self.security == "starttls",
            username=self.username,
            password=None if self.tokens else self.password,
            oauth_token_generator=self._token if self.tokens else None,
            cert_bundle=self.ca_file,
        )
        try:
            await client.connect()
            if client.is_ehlo_or_helo_needed:
                try:
                    await client.ehlo()
                except SMTPHeloError:
                    await client.helo()
        except SMTPAuthenticationError:
            client.close()
            raise
        except TokenError as exc:
            client.close()
            raise ChannelError(str(exc), channel_fault=exc.refused) from exc
        except (SMTPException, OSError, ssl.SSLError, TimeoutError) as exc:
            client.close()
            if self.tokens is not None and "XOAUTH2" in str(exc):
                raise ChannelError(
                    f"the relay at {self.where} does not offer XOAUTH2 login, which "
                    "EVALBOT_SMTP_AUTH=oauth2 needs: check EVALBOT_SMTP_HOST "
                    "(smtp.office365.com)",
                    channel_fault=True,
                ) from exc
            raise ChannelError(f"cannot connect to the relay at {self.where}: {_why(exc)}") from exc
        return client

    async def _token(self) -> str:
        assert self.tokens is not None
        return await self.tokens.token()

    def _login_refused(self, exc: SMTPAuthenticationError) -> ChannelError:
        if self.tokens is not None:
            hint = (
                f"refused the token of app {self.tokens.client_id} for the mailbox "
                f"{self.username!r} (after renewing it once): {exc.code} {exc.message}; check "
                "that the app has the SMTP.SendAsApp permission with admin consent, that its "
                "service principal may send as that mailbox, and that SMTP AUTH is on for it"
            )
        else:
            hint = (
                f"refused the login for {self.username!r}: {exc.code} {exc.message}; check "
                "EVALBOT_SMTP_USERNAME and EVALBOT_SMTP_PASSWORD"
            )
        return ChannelError(
            f"{self.where} {hint}",
            channel_fault=smtp_fault("auth", exc.code, exc.message) == "channel",
        )

    async def _classify(self, exc: BaseException, slot: _Slot, recipient: str) -> ChannelError:
        """A ``ChannelError`` saying whether trying again can help, leaving the connection
        ready for the next message where the relay allows it."""
        if isinstance(exc, SMTPResponseException):
            code, reply = exc.code, f"{exc.code} {exc.message}"
            await self._reset(slot, closing=code == 421)
            if isinstance(exc, SMTPSenderRefused):
                stage, what = "mail", f"refused the sender {self.sender!r}"
            elif isinstance(exc, SMTPRecipientRefused):
                stage, what = "rcpt", f"refused the recipient {recipient}"
            elif isinstance(exc, SMTPDataError):
                stage, what = "data", "refused the message"
            else:
                stage, what = "other", "answered"
            fault = smtp_fault(stage, code, exc.message)
            text = f"{self.where} {what}: {reply}"
            if fault == "channel" and stage == "mail":
                text += "; check EVALBOT_MAIL_FROM"
            elif fault == "channel" and stage == "data":
                text += (
                    " (a refusal of the message itself, not of the recipient: check that the "
                    "relay's mailbox may send as EVALBOT_MAIL_FROM, and its size and policy "
                    "limits)"
                )
            # The refusal without the address, to recognise the same one for many recipients.
            same = f"{stage} {code} {exc.message.replace(recipient, '<recipient>')}"
            return ChannelError(
                text,
                permanent=fault == "recipient",
                channel_fault=fault == "channel",
                refusal=same if fault == "recipient" else None,
            )
        slot.drop()
        if isinstance(exc, (UnicodeError, ValueError)):
            return ChannelError(
                f"{recipient!r} is not an address email can be sent to", permanent=True
            )
        if isinstance(exc, (SMTPException, OSError, TimeoutError)):
            return ChannelError(f"lost the connection to {self.where}: {_why(exc)}")
        return ChannelError(f"sending through {self.where} failed: {_why(exc)}")

    @staticmethod
    async def _reset(slot: _Slot, *, closing: bool) -> None:
        if slot.session is None or closing:
            slot.drop()  # 421: the relay is closing the connection anyway
            return
        await slot.session.rset()
        if not slot.session.is_connected:
            slot.drop()

    async def check(self) -> str:
        """Connect (and log in) once, for an admin checking the settings."""
        client = await self._login()
        greeting = client.last_ehlo_response
        await _quit(client)
        return f"{greeting.code} {greeting.message}" if greeting else "connected"

    async def close(self) -> None:
        slots = [self._slots.get_nowait() for _ in range(self._slots.qsize())]
        for slot in slots:
            if slot.session is not None:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(slot.session.quit(), timeout=2)
                slot.drop()
            self._slots.put_nowait(slot)


async def _quit(client: aiosmtplib.SMTP) -> None:
    if client.is_connected:
        with contextlib.suppress(SMTPException, OSError, TimeoutError):
            await asyncio.wait_for(client.quit(), timeout=2)
    client.close()


def _why(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within the timeout ({type(exc).__name__})"
    return str(exc) or type(exc).__name__


# --- a folder of .eml files -------------------------------------------------------------------


class MailFolderChannel:
    """Writes each email to a folder instead of sending it: the default with no relay set."""

    name = "email"
    concurrency = 1

    def __init__(self, settings: Settings):
        self.folder = Path(settings.mail_dir)
        self.mail_from = settings.mail_from
        self.reply_to = settings.reply_to

    def path_for(self, message: Outgoing) -> Path:
        local = message.message_id.strip("<>").partition("@")[0]
        safe = "".join(c if c.isalnum() or c in ".-_" else "_" for c in local)
        return self.folder / f"{safe}.eml"

    async def send(self, message: Outgoing) -> Delivered:
        data = build_message(message, mail_from=self.mail_from, reply_to=self.reply_to)
        path = self.path_for(message)
        try:
            private_folder(self.folder)  # the messages hold personal links: owner only
            partial = path.with_suffix(".eml.part")
            write_private(partial, data)
            # A retry writes the same name, so a message is never in the folder twice.
            os.replace(partial, path)
        except OSError as exc:
            raise ChannelError(f"cannot write {path}: {exc.strerror or exc}") from exc
        return Delivered(server_reply=f"written to {path}")

    async def close(self) -> None:
        return None
