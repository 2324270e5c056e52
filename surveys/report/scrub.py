"""Names, email addresses and phone numbers taken out of free text."""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterable
from itertools import pairwise

from sqlalchemy import (
    select,
)
from sqlalchemy.engine import Connection

from surveys.report.periods import (
    MONTHS,
)
from surveys.report.query import (
    AGENCY,
    COURSE,
    PERSON,
)

# Names in free text --------------------------------------------------------------------------

_WORD = re.compile(r"[^\W\d_]+(?:['’-][^\W\d_]+)*")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# UK numbers as people write them: 020 7946 0000, 07700 900123, +44 7700 900123.
_PHONE = re.compile(r"(?<![\w+])(?:\+44\s?\(?0?\)?\s?|0)\d(?:[\s-]?\d){8,9}(?!\w)")
NAME_MARK = "[name]"
# Capitalised words that are names as often as not, kept because an example uses them for time.
_TIME_WORDS = {
    *(m.casefold() for m in MONTHS),
    *(d.casefold() for d in calendar.day_name),
}


def _words(text: str) -> list[str]:
    return [word.casefold() for word in _WORD.findall(text)]


def _possessive(word: str) -> str | None:
    """``alice's`` to ``alice``; None when the word is not possessive."""
    return word[:-2] if len(word) > 3 and word[-2:] in ("'s", "’s") else None


class NameScrubber:
    """Takes the names of the people Evalbot knows, email addresses and phone numbers out of
    free text, each replaced by a mark such as ``[name]``.

    A person's name matches whole, or as first and last name, in any case; a single word
    matches when it is capitalised and is the first or last name of anyone known (so "Alice"
    alone goes too), unless it is a word of a course title, an agency's name or a month or
    day. Names Evalbot cannot know, such as a child's, are left: whoever shares an example
    further still reads it first.
    """

    def __init__(self, names: Iterable[str], keep: Iterable[str] = ()):
        self.phrases: set[tuple[str, ...]] = set()
        self.single: set[str] = set()
        for name in names:
            words = _words(name)
            if not words:
                continue
            self.phrases.add(tuple(words))
            if len(words) > 1:
                self.phrases.update({(words[0], words[1]), (words[0], words[-1])})
            self.single.update(word for word in words if len(word) > 1)
        kept = {word for text in keep for word in _words(text)} | _TIME_WORDS
        self.single -= kept
        self.longest = max((len(phrase) for phrase in self.phrases), default=0)

    def __call__(self, text: str) -> str:
        text = _EMAIL.sub("[email]", text)
        text = _PHONE.sub("[phone]", text)
        if not self.phrases:
            return text
        found = list(_WORD.finditer(text))
        out: list[str] = []
        copied = 0  # how much of the text is in out
        i = 0
        while i < len(found):
            span, possessive = self._match(text, found, i)
            if span:
                first, last = found[i], found[i + span - 1]
                out.append(text[copied : first.start()] + NAME_MARK)
                out.append(last[0][-2:] if possessive else "")
                copied = last.end()
                i += span
            else:
                i += 1
        out.append(text[copied:])
        return "".join(out)

    def _match(self, text: str, found: list[re.Match[str]], start: int) -> tuple[int, bool]:
        """How many words from ``start`` make a name (0: none), and whether it ends in 's."""
        for span in range(min(self.longest, len(found) - start), 1, -1):
            window = found[start : start + span]
            if any(text[a.end() : b.start()].strip() for a, b in pairwise(window)):
                continue  # only spaces may come between the words of a name
            words = tuple(m[0].casefold() for m in window)
            if words in self.phrases:
                return span, False
            ending = _possessive(words[-1])
            if ending and (*words[:-1], ending) in self.phrases:
                return span, True
        word = found[start][0]
        if not word[:1].isupper():
            return 0, False
        folded = word.casefold()
        if (folded,) in self.phrases or folded in self.single:
            return 1, False
        ending = _possessive(folded)
        if ending and ((ending,) in self.phrases or ending in self.single):
            return 1, True
        return 0, False


def name_scrubber(connection: Connection) -> NameScrubber:
    """A scrubber for the names of everyone in the database."""
    names = connection.execute(
        select(PERSON.c.name).where(PERSON.c.erased_at.is_(None)).distinct()
    ).scalars()
    keep = [
        *connection.execute(select(COURSE.c.title)).scalars(),
        *connection.execute(select(AGENCY.c.name)).scalars(),
        *(sector or "" for sector in connection.execute(select(AGENCY.c.sector)).scalars()),
    ]
    return NameScrubber((name for name in names if name), keep)
