"""Inline keyboards and their ``callback_data``.

Telegram returns a button's ``callback_data`` (at most 64 bytes) when it is tapped. Ours is a
short verb and its arguments joined by ``:``, e.g. ``a:42:knowledge.0:3`` (answer invitation 42's
question ``knowledge.0`` with its fourth option). A button never carries a secret: every tap is
checked against the chat's linked person and the database before anything changes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

MAX_DATA = 64
# A question key longer than this is named by a hash in callback data, so the whole fits.
MAX_REF = 30
SEP = ":"


class CallbackTooLong(ValueError):
    """Callback data over Telegram's 64 bytes: a bug in the caller, never the person's fault."""


def data(verb: str, *args: object) -> str:
    """``verb:arg:arg``, checked against Telegram's 64-byte limit."""
    text = SEP.join([verb, *(str(arg) for arg in args)])
    if len(text.encode()) > MAX_DATA:
        raise CallbackTooLong(f"callback data {text!r} is over {MAX_DATA} bytes")
    return text


def parse(raw: str | None) -> tuple[str, list[str]]:
    """``"a:42:x:3"`` to ``("a", ["42", "x", "3"])``; unknown shapes give ``("", [])``."""
    if not raw:
        return "", []
    verb, *args = raw.split(SEP)
    return verb, args


def ref(key: str) -> str:
    """A question key as it goes into callback data: itself, or ``~`` and a hash when it is long
    or holds the separator."""
    if len(key) <= MAX_REF and SEP not in key and not key.startswith("~"):
        return key
    return "~" + hashlib.sha256(key.encode()).hexdigest()[:12]


def matches(key: str, reference: str) -> bool:
    return ref(key) == reference


class Button(NamedTuple):
    """An inline button that gives its ``callback_data`` back when tapped.

    A plain tuple rather than PTB's ``InlineKeyboardButton``: building those (every attribute
    checked as it is set) cost more than the rest of rendering a question."""

    text: str
    callback_data: str


@dataclass(frozen=True)
class Keyboard:
    """The buttons under a message, row by row."""

    inline_keyboard: tuple[tuple[Button, ...], ...]

    def as_json(self) -> dict[str, Any]:
        """As the Bot API's ``reply_markup``."""
        return {
            "inline_keyboard": [
                [{"text": text, "callback_data": callback} for text, callback in row]
                for row in self.inline_keyboard
            ]
        }


def button(label: str, verb: str, *args: object) -> Button:
    return Button(label, data(verb, *args))


def markup(rows: Iterable[Sequence[Button]]) -> Keyboard | None:
    """The keyboard, or None when there are no buttons at all."""
    kept = tuple(tuple(row) for row in rows if row)
    return Keyboard(kept) if kept else None


def mask_of(selected: Iterable[int]) -> str:
    """The chosen options of a multiple-choice question, as a hexadecimal bit mask."""
    value = 0
    for index in selected:
        value |= 1 << index
    return format(value, "x")


def chosen(mask: str) -> set[int]:
    try:
        value = int(mask, 16)
    except ValueError:
        return set()
    return {index for index in range(value.bit_length()) if value >> index & 1}
