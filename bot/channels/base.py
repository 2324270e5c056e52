"""The interface every delivery channel implements.

A channel turns one rendered message into one delivery attempt. It raises ``ChannelError`` when
the attempt fails, saying whether trying again can help (``permanent``) and, where the other side
said so, how long to wait (``retry_after``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


class ChannelError(Exception):
    def __init__(self, message: str, *, permanent: bool = False, retry_after: float | None = None):
        super().__init__(message)
        self.permanent = permanent
        self.retry_after = retry_after


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
    recipient: str  # an email address, or a Telegram chat id as text
    subject: str
    text: str
    html: str
    message_id: str  # stable per outbox row, so a retried email keeps it
    headers: dict[str, str] = field(default_factory=dict)
    buttons: list[list[tuple[str, str]]] = field(default_factory=list)  # Telegram: (label, url)
    attachments: tuple[Attachment, ...] = ()  # email only


@dataclass(frozen=True)
class Delivered:
    server_reply: str


class Channel(Protocol):
    name: str

    async def send(self, message: Outgoing) -> Delivered:
        """Deliver one message, or raise ``ChannelError``."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...
