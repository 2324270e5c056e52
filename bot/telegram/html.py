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


# What Telegram's HTML parse mode accepts (https://core.telegram.org/bots/api#html-style).
TAGS = {
    "b": set(),
    "strong": set(),
    "i": set(),
    "em": set(),
    "u": set(),
    "ins": set(),
    "s": set(),
    "strike": set(),
    "del": set(),
    "tg-spoiler": set(),
    "span": {"class"},
    "a": {"href"},
    "tg-emoji": {"emoji-id"},
    "code": {"class"},
    "pre": set(),
    "blockquote": {"expandable"},
}
ENTITIES = {"lt", "gt", "amp", "quot"}
_CHECK = re.compile(
    r"<(/?)([A-Za-z][A-Za-z0-9-]*)((?:\s+[A-Za-z-]+(?:\s*=\s*(?:\"[^\"]*\"|'[^']*'|[^\s>]+))?)*)\s*>"
    r"|&(?:#([0-9]{1,7})|#[xX]([0-9A-Fa-f]{1,6})|([A-Za-z]+));"
    r"|([<>&])"
)
_ATTRIBUTE = re.compile(r"\s+([A-Za-z-]+)(?:\s*=\s*(?:\"[^\"]*\"|'[^']*'|[^\s>]+))?")


def problem(markup: str) -> str | None:
    """Why Telegram would refuse ``markup`` in HTML parse mode, or None when it parses.

    Checked before sending, so a fault in a template never reaches the chat half sent."""
    stack: list[str] = []
    for match in _CHECK.finditer(markup):
        closing, name, attributes, decimal, hexadecimal, named, stray = match.groups()
        at = match.start()
        if stray is not None:
            return f"{stray!r} at character {at} is neither a tag nor an entity: escape it"
        if named is not None:
            if named not in ENTITIES:
                return f"unsupported entity &{named}; at character {at}"
            continue
        if decimal is not None or hexadecimal is not None:
            code = int(decimal) if decimal is not None else int(hexadecimal, 16)
            if not 0 < code <= 0x10FFFF:
                return f"no such character as entity {match.group(0)} at character {at}"
            continue
        name = name.lower()
        if name not in TAGS:
            return f"unsupported tag <{closing}{name}> at character {at}"
        if closing:
            if attributes.strip() or not stack or stack[-1] != name:
                return f"unexpected end tag </{name}> at character {at}"
            stack.pop()
            continue
        given = {a.lower() for a in _ATTRIBUTE.findall(attributes)}
        if given - TAGS[name]:
            return f"unsupported attribute of <{name}> at character {at}"
        if name == "a" and "href" not in given:
            return f"<a> without href at character {at}"
        if stack and (stack[-1] == "code" or (stack[-1] == "pre" and name != "code")):
            return f"<{name}> inside <{stack[-1]}> at character {at}"
        stack.append(name)
    if stack:
        return f"<{stack[-1]}> is never closed"
    return None


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
