"""The evaluation by Kirkpatrick level: reaction, learning, behaviour and results, each with
what the evaluation found and the number it rests on; and the coordinator's notes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

from markupsafe import Markup

from bot.report.cells import Kind, plural, show
from surveys.report import QuarterlyReport
from surveys.report.rows import Measured


@dataclass(frozen=True)
class Level:
    number: int
    name: str
    question: str
    found: str
    n: str
    section: str  # the id of the report's section with the detail


def _figure(measured: Measured, kind: Kind, zone: ZoneInfo, smallest: int | None) -> str:
    if measured.suppressed:
        return f"left out (fewer than {smallest} people)"
    return show(measured.value, kind, zone)


def kirkpatrick(report: QuarterlyReport) -> list[Level]:
    """The four levels, from the quarter's headline figures (anonymous-edition aware)."""
    summary = report.summary
    if summary is None:
        return []
    zone, few = report.zone, report.smallest_group

    def n(measured: Measured, what: str) -> str:
        return "–" if measured.suppressed else f"{measured.n:,} {what}"

    knowledge = summary.change[("pre to end", "knowledge")]
    confidence = summary.change[("pre to end", "confidence")]
    seen = next((row for row in report.manager if row.item == "manager_change_seen"), None)
    voices = report.voices
    child = (
        f"{voices.child_example_count:,} of the "
        f"{plural(voices.example_count, 'example', 'examples')} of practice involve a child"
        if voices is not None
        else "–"
    )
    managers = (
        "no manager's answer yet"
        if seen is None
        else f"managers who saw a change: left out (fewer than {few})"
        if seen.suppressed
        else f"managers who saw a change: {show(seen.mean, 'pct', zone)} of {seen.answers:,}"
    )
    return [
        Level(1, "Reaction", "Did delegates value the course?",
              f"mean satisfaction {_figure(summary.satisfaction, 'mean', zone, few)} on 1-5; "
              f"{_figure(summary.satisfied, 'pct', zone, few)} rated it 4 or 5",
              n(summary.satisfaction, "ratings"), "satisfaction"),
        Level(2, "Learning", "Did their knowledge and confidence grow?",
              f"knowledge {_figure(knowledge, 'change', zone, few)}, confidence "
              f"{_figure(confidence, 'change', zone, few)} points, pre-course to end of course",
              n(knowledge, "matched pairs"), "change"),
        Level(3, "Behaviour", "Do they apply it in their practice?",
              f"{_figure(summary.applied, 'pct', zone, few)} of those asked at impact had "
              "applied their learning",
              n(summary.applied, "answers"), "impact"),
        Level(4, "Results", "Has it made a difference for children?",
              f"{child}; {managers}",
              plural(voices.example_count, "example", "examples") if voices is not None else "–",
              "results"),
    ]  # fmt: skip


class NotesError(ValueError):
    """A notes file that cannot be read; the message names the file and what is wrong."""


def render_notes(path: Path) -> Markup:
    """The coordinator's Markdown notes as HTML: raw HTML in them is shown as text, never run,
    and their headings sit under the report's own (a ``#`` heading becomes an ``<h3>``)."""
    from markdown_it import MarkdownIt

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NotesError(f"{path}: no such file") from None
    except UnicodeDecodeError as exc:
        raise NotesError(
            f"{path}: not UTF-8 text (byte {exc.start + 1} cannot be read); save it as UTF-8"
        ) from None
    except OSError as exc:
        raise NotesError(f"{path}: cannot be read ({exc.strerror})") from None
    parser = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    tokens = parser.parse(text)
    for token in tokens:
        if token.type in ("heading_open", "heading_close"):
            level = min(int(token.tag[1]) + 2, 6)
            token.tag = f"h{level}"
    html = parser.renderer.render(tokens, parser.options, {})
    return Markup(html)  # markdown-it escapes the text, and with html off, any tags in it
