"""Telegram's HTML parse mode: escaping what people wrote, and splitting long messages.

Telegram takes at most 4,096 characters of text after its entities are parsed, counted in
UTF-16 code units, and every tag must be closed in the same message. ``split`` cuts a message at
line breaks (or spaces, or anywhere as a last resort) and closes and reopens the tags that span
a cut, so each part parses on its own.
"""

from __future__ import annotations

import html
import re

LIMIT = 4096
_TOKEN = re.compile(r"(<[^<>]*>)|(&#?[A-Za-z0-9]+;)|([^<&]+)|(.)", re.DOTALL)
_TAG_NAME = re.compile(r"</?\s*([A-Za-z][A-Za-z0-9-]*)")


def escape(text: object) -> str:
    """Any value as HTML parse-mode text: ``&``, ``<`` and ``>`` escaped (quotes too)."""
    return html.escape(str(text), quote=True)


def units(text: str) -> int:
    """Telegram's length of plain text: UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


def visible_length(markup: str) -> int:
    """The length Telegram counts for an HTML message: tags dropped, entities as one char."""
    return units(html.unescape(re.sub(r"<[^<>]*>", "", markup)))


def split(markup: str, limit: int = LIMIT) -> list[str]:
    """``markup`` as one or more messages of at most ``limit`` visible characters each.

    A message is cut after the last line break that leaves it at least half full, else after
    the last space, else where the limit falls; tags open at the cut are closed before it and
    opened again after it.
    """
    if visible_length(markup) <= limit:
        return [markup]
    parts: list[str] = []
    current: list[_Piece] = []
    size = 0
    open_tags: list[tuple[str, str]] = []  # (name, the start tag as written)

    def emit(upto: int) -> None:
        nonlocal current, size
        kept, rest = current[:upto], current[upto:]
        tags = kept[-1].open_after if kept else []
        text = "".join(p.text for p in kept) + "".join(f"</{n}>" for n, _ in reversed(tags))
        if visible_length(text):
            parts.append(text.strip("\n") if not tags else text)
        reopened = [_Piece(tag, 0, list(tags[: i + 1])) for i, (_, tag) in enumerate(tags)]
        current = reopened + rest
        size = sum(p.length for p in current)

    for text, length, tag in _pieces(markup, max(1, limit // 4)):
        if tag is not None:
            name = tag[0]
            if text.startswith("</"):
                if open_tags and open_tags[-1][0] == name:
                    open_tags.pop()
            else:
                open_tags.append((name, text))
        elif size + length > limit and size > 0:
            emit(_cut_point(current, limit))
            while size + length > limit and size > 0:
                emit(len(current))
        current.append(_Piece(text, length, list(open_tags)))
        size += length
    emit(len(current))
    return parts


class _Piece:
    """A tag or a run of text, with the tags open after it."""

    __slots__ = ("length", "open_after", "text")

    def __init__(self, text: str, length: int, open_after: list[tuple[str, str]]):
        self.text = text
        self.length = length
        self.open_after = open_after


def _cut_point(pieces: list[_Piece], limit: int) -> int:
    """Where to end the message: after a line break, else a space, at least half full."""
    size = 0
    line = space = 0
    for index, piece in enumerate(pieces):
        size += piece.length
        if size >= limit // 2 and piece.length:
            if piece.text.endswith("\n"):
                line = index + 1
            elif piece.text[-1:].isspace():
                space = index + 1
    return line or space or len(pieces)


def _pieces(markup: str, longest: int) -> list[tuple[str, int, tuple[str] | None]]:
    """Tags (length 0), and text in pieces no longer than a line, a word or the limit."""
    found: list[tuple[str, int, tuple[str] | None]] = []
    for match in _TOKEN.finditer(markup):
        tag, entity, text, stray = match.groups()
        if tag is not None:
            name = _TAG_NAME.match(tag)
            found.append((tag, 0, (name.group(1).lower(),) if name else ("",)))
        elif entity is not None:
            found.append((entity, units(html.unescape(entity)), None))
        else:
            for chunk in _chunks(text if text is not None else stray, longest):
                found.append((chunk, units(chunk), None))
    return found


def _chunks(text: str, longest: int) -> list[str]:
    """Text in pieces ending at line breaks, then at spaces, none longer than ``longest``."""
    pieces: list[str] = []
    for line in re.findall(r"[^\n]*\n|[^\n]+", text):
        words = re.findall(r"\S*\s*|\s+", line) if units(line) > longest else [line]
        for word in words:
            while units(word) > longest:
                pieces.append(word[: longest // 2])
                word = word[longest // 2 :]
            if word:
                pieces.append(word)
    return pieces
