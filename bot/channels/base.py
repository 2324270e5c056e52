"""The interface every delivery channel implements.

A channel turns one rendered message into one delivery attempt. It raises ``ChannelError`` when
the attempt fails, saying whose fault it is and whether trying again can help:

- neither ``permanent`` nor ``channel_fault``: a passing fault (a 4xx reply, a timeout, a lost
  connection, a rate limit); the dispatcher tries again later, after ``retry_after`` seconds
  where the other side said how long;
- ``permanent``: the recipient was refused (an unknown mailbox, a blocked chat); that address
  of that person is marked undeliverable;
- ``message_fault``: this message cannot go as it is (too long for the channel); it is dead
  with the reason, and neither the address nor the channel is blamed;
- ``channel_fault``: the channel itself cannot send (the sender refused, a policy or message
  fault, a refused login or token); the channel pauses, everyone's messages wait, and the
  coordinator is told (``bot.pauses``).

``refusal`` names a recipient refusal without the recipient in it (for SMTP: stage, code and
text), so that the same refusal for several different recipients in a row, which is the
relay's fault rather than theirs, can be recognised.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


class ChannelError(Exception):
    def __init__(
        self,
        message: str,
        *,
        permanent: bool = False,
        retry_after: float | None = None,
        channel_fault: bool = False,
        refusal: str | None = None,
        message_fault: bool = False,
    ):
        super().__init__(message)
        if permanent + channel_fault + message_fault > 1:
            raise ValueError("a failure is the recipient's, the channel's or the message's")
        self.permanent = permanent
        self.retry_after = retry_after
        self.channel_fault = channel_fault
        self.refusal = refusal
        self.message_fault = message_fault


@dataclass(frozen=True)
class Attachment:
    """A file sent with an email, such as a calendar invitation."""

    filename: str
    content_type: str  # with its parameters: 'text/calendar; method=REQUEST; charset="utf-8"'
    data: bytes


@dataclass(frozen=True)
class Outgoing:
    """A message ready to send: the recipient, rendered parts and the stable identity."""

    outbox_id: int
    recipient: str  # an email address, a Telegram chat id as text, or a mobile number (E.164)
    subject: str
    text: str
    html: str
    message_id: str  # stable per outbox row, so a retried email keeps it
    headers: dict[str, str] = field(default_factory=dict)
    buttons: list[list[tuple[str, str]]] = field(default_factory=list)  # Telegram: (label, url)
    attachments: tuple[Attachment, ...] = ()  # email only
    reference: str = ""  # the outbox idempotency key, for channels that record one (Notify)


@dataclass(frozen=True)
class Delivered:
    server_reply: str
    provider_id: str | None = None  # the other side's id for the message (a Notify id)


class Channel(Protocol):
    name: str

    async def send(self, message: Outgoing) -> Delivered:
        """Deliver one message, or raise ``ChannelError``."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...
