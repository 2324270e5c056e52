"""What delegates said in their own words and choices: how accessible the course was, the
themes of their comments, and the impact examples that involve a child (results, the fourth
Kirkpatrick level).

The counts are the database's; the frequent words are counted in Python over the comments,
which are read once, streamed, with the names in the few quoted taken out (``NameScrubber``).
"""

from __future__ import annotations

import re
from collections import Counter
from zoneinfo import ZoneInfo

from sqlalchemy import and_, func, or_, select
from sqlalchemy.engine import Connection

from surveys.models import Stage
from surveys.report.periods import Period
from surveys.report.query import ANSWER, answers_from, count_where, ran_in
from surveys.report.rows import Voices
from surveys.report.scrub import NameScrubber

ACCESSIBILITY_OPTIONS = {"yes": "Yes, fully", "partly": "Partly", "no": "No"}
COMMENT_ITEMS = ("comments", "will_do_differently")
# Words that name a child in an impact example (matched in lower case, anywhere in a word).
CHILD_WORDS = ("child", "young person", "young people", "baby", "babies", "infant", "pupil",
               "teenager", "toddler")  # fmt: skip
_WORD = re.compile(r"[a-z][a-z'’-]{2,}")
# Words too common to be a theme: grammar, and the words every comment on training uses.
_STOP_TEXT = """
    the and for that this with was were are have has had not but you your our they them their
    there what when which who will would could should can may more most very much many some
    any all also been being into about from than then its it's i'm i've we've don't didn't
    just really well how out ours one two get got make made use used able way ways time
    course training session day today trainer thank thanks good great lots lot felt feel
    think learnt learned learning found things thing other others does did doing
"""
STOP_WORDS = frozenset(_STOP_TEXT.split())


def voices(
    connection: Connection,
    period: Period,
    zone: ZoneInfo,
    scrub: NameScrubber,
    *,
    quoted: int = 3,
    words: int = 12,
) -> Voices:
    """The accessibility answers, comment themes and examples involving a child."""
    end, end_condition = answers_from(Stage.END)
    ran = ran_in(period, zone)
    chosen = {
        str(key): int(count)
        for key, count in connection.execute(
            select(ANSWER.c.value_text, func.count())
            .select_from(end)
            .where(end_condition, ran, ANSWER.c.item == "accessibility")
            .group_by(ANSWER.c.value_text)
        )
        if key is not None
    }
    text = func.trim(ANSWER.c.value_text)
    has_text = and_(ANSWER.c.value_text.is_not(None), text != "")
    details = [
        scrub(value)
        for value in connection.execute(
            select(text)
            .select_from(end)
            .where(end_condition, ran, ANSWER.c.item == "accessibility_detail", has_text)
            .order_by(func.length(text).desc(), ANSWER.c.id)
            .limit(quoted)
        ).scalars()
    ]
    counted: Counter[str] = Counter()
    comments = 0
    fullest: list[tuple[int, str]] = []
    for (value,) in connection.execution_options(yield_per=2000).execute(
        select(text)
        .select_from(end)
        .where(end_condition, ran, ANSWER.c.item.in_(COMMENT_ITEMS), has_text)
    ):
        comments += 1
        counted.update(set(_WORD.findall(value.lower())) - STOP_WORDS)
        fullest.append((len(value), value))
        if len(fullest) > 4 * quoted:
            fullest = sorted(fullest, reverse=True)[:quoted]
    examples = [scrub(value) for _, value in sorted(fullest, reverse=True)[:quoted]]
    names = scrub.single
    # Most frequent first; equal counts alphabetically, so the same answers give the same report.
    ordered = sorted(counted.items(), key=lambda item: (-item[1], item[0]))
    themes = [(word, count) for word, count in ordered if word not in names]

    impact, impact_condition = answers_from(Stage.IMPACT)
    example_text = and_(
        impact_condition, ran, ANSWER.c.item == "example", ANSWER.c.value_text.is_not(None),
        func.trim(ANSWER.c.value_text) != "",
    )  # fmt: skip
    about_a_child = or_(*(func.lower(ANSWER.c.value_text).contains(w) for w in CHILD_WORDS))
    total, with_child = connection.execute(
        select(func.count(), count_where(about_a_child)).select_from(impact).where(example_text)
    ).one()
    child = [
        scrub(value)
        for value in connection.execute(
            select(func.trim(ANSWER.c.value_text))
            .select_from(impact)
            .where(example_text, about_a_child)
            .order_by(func.length(ANSWER.c.value_text).desc(), ANSWER.c.id)
            .limit(quoted)
        ).scalars()
    ]
    return Voices(
        accessibility=chosen,
        accessibility_answers=sum(chosen.values()),
        accessibility_details=details,
        theme_words=themes[:words],
        comments=comments,
        comment_examples=examples,
        child_examples=child,
        child_example_count=int(with_child),
        example_count=int(total),
    )
