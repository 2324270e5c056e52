"""How long a text message is, in fragments, and making one fit in two.

A text goes as GSM-7 when every character is in the GSM 03.38 alphabet, else as UCS-2:

- GSM-7: one message holds 160 septets; a longer one is split into fragments of 153 (the rest
  is the concatenation header). The extension characters (``^ { } \\ [ ~ ] |`` ``€`` and form
  feed) take two septets, an escape and the character, and a pair is never split between
  fragments. Two fragments hold 306 septets.
- UCS-2: one message holds 70 UTF-16 units; fragments hold 67, and a character outside the
  Basic Multilingual Plane (an emoji) takes two units that are never split. Two fragments hold
  134 units.

Before counting, ``plain`` replaces the typographic characters that would otherwise force UCS-2
for nothing (curly quotes, dashes, the ellipsis, a no-break space) with their GSM equivalents, as
GOV.UK Notify does; the text sent is the one counted.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM_EXTENDED = frozenset("^{}\\[~]|€\f")
MAX_FRAGMENTS = 2
_SINGLE = {"GSM-7": 160, "UCS-2": 70}
_FRAGMENT = {"GSM-7": 153, "UCS-2": 67}
_PLAIN = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201a": "'",
        "\u201b": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u201e": '"',
        "\u201f": '"',
        "\u2010": "-",
        "\u2011": "-",
        "\u2012": "-",
        "\u2013": "-",
        "\u2014": "-",
        "\u2015": "-",
        "\u2026": "...",
        "\u00a0": " ",
        "\u202f": " ",
        "\u2009": " ",
        "\t": " ",
    }
)


@dataclass(frozen=True)
class TextSize:
    encoding: str  # "GSM-7" or "UCS-2"
    units: int  # septets for GSM-7, UTF-16 units for UCS-2
    fragments: int


def plain(text: str) -> str:
    """The text with typographic characters made plain, spaces tidied and lines trimmed."""
    lines = [" ".join(line.split()) for line in text.translate(_PLAIN).splitlines()]
    tidy: list[str] = []
    for line in lines:
        if line or (tidy and tidy[-1]):  # at most one empty line in a row
            tidy.append(line)
    return "\n".join(tidy).strip()


def is_gsm(text: str) -> bool:
    return all(c in GSM_BASIC or c in GSM_EXTENDED for c in text)


def _widths(text: str, gsm: bool) -> list[int]:
    if gsm:
        return [2 if c in GSM_EXTENDED else 1 for c in text]
    return [len(c.encode("utf-16-le")) // 2 for c in text]


def measure(text: str) -> TextSize:
    """The encoding, length and number of fragments of ``text`` as sent."""
    gsm = is_gsm(text)
    encoding = "GSM-7" if gsm else "UCS-2"
    widths = _widths(text, gsm)
    units = sum(widths)
    if units <= _SINGLE[encoding]:
        return TextSize(encoding, units, 1 if units else 0)
    capacity = _FRAGMENT[encoding]
    fragments, used = 1, 0
    for width in widths:  # a two-unit character is never split between fragments
        if used + width > capacity:
            fragments, used = fragments + 1, 0
        used += width
    return TextSize(encoding, units, fragments)


class TooLong(ValueError):
    """Even with every name shortened, the text needs more than two fragments."""


def to_gsm(value: str) -> str:
    """``value`` with each character GSM-7 lacks replaced by its letter without accents where
    that is GSM (Gŵyl becomes Gwyl, Zoë becomes Zoe; Chloé keeps her é, which GSM-7 has): a name
    spelt plainly costs less than a text cut to less than half its length by UCS-2."""
    out: list[str] = []
    for character in value:
        if character in GSM_BASIC or character in GSM_EXTENDED:
            out.append(character)
            continue
        base = "".join(
            c for c in unicodedata.normalize("NFKD", character) if not unicodedata.combining(c)
        )
        out.append(base if base and is_gsm(base) else character)
    return "".join(out)


def fit(
    render: Callable[[Mapping[str, Any]], str],
    context: Mapping[str, Any],
    shortenable: tuple[tuple[str, int], ...],
    *,
    max_fragments: int = MAX_FRAGMENTS,
) -> str:
    """``render(context)`` made plain, within ``max_fragments``. If it is too long: first the
    values named in ``shortenable`` are spelt in GSM-7 where they forced UCS-2 (``to_gsm``);
    then each is cut in turn, in the order given and no shorter than its floor (a course title
    before the partnership's name), to the longest that fits, ending in "..."; a link is never
    cut."""
    values = dict(context)

    def fits(candidate: str) -> bool:
        return measure(candidate).fragments <= max_fragments

    text = plain(render(values))
    if fits(text):
        return text
    present = [(k, floor) for k, floor in shortenable if isinstance(values.get(k), str)]
    for key, _ in present:
        values[key] = to_gsm(str(values[key]))
    text = plain(render(values))
    if fits(text):
        return text
    for key, floor in present:
        full = str(values[key])

        def cut(limit: int, key: str = key, full: str = full) -> str:
            values[key] = full if len(full) <= limit else full[: limit - 3].rstrip() + "..."
            return plain(render(values))

        low, high, best = floor, len(full) - 1, None
        while low <= high:  # the longest cut that fits
            middle = (low + high) // 2
            if fits(cut(middle)):
                best, low = middle, middle + 1
            else:
                high = middle - 1
        if best is not None:
            return cut(best)
        cut(floor)  # as short as it may be; the next value is cut too
    size = measure(text)
    raise TooLong(
        f"the text is {size.units} {size.encoding} characters ({size.fragments} fragments), "
        f"more than {max_fragments} fragments even with names shortened"
    )
