"""Reports as a board receives them: report.pdf, opened with pypdf; the coordinator's notes;
and the evaluation organised by Kirkpatrick level, with accessibility and comments."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from pypdf import PdfReader
from sqlmodel import select
from typer.testing import CliRunner

from bot.cli import app
from bot.report.pdf import render, split_across_pages
from surveys.models import BookingStatus, Course, CourseSession, Stage, SurveyInvitation
from tests.conftest import utc
from tests.report_world import WT, QuarterWorld
from tests.report_world import cli_env as cli_env
from tests.report_world import quarter_world as quarter_world

HEADINGS = (
    "Contents",
    "At a glance",
    "Compared with the previous quarter",
    "1. Sessions in the quarter",
    "2. Attendance",
    "3. Response rates",
    "4. What the evaluation found",
    "5. Reaction: satisfaction",
    "6. Learning: knowledge and confidence",
    "7. Behaviour: impact on practice",
    "8. Results: for children and families",
    "9. Accessibility and comments",
    "10. Notable issues",
    "11. By sector, agency, role and course level",
)


def run(cli: CliRunner, *args: str) -> None:
    result = cli.invoke(app, ["report", *args])
    assert result.exit_code == 0, result.output


def page_texts(path: Path) -> list[str]:
    return [page.extract_text() for page in PdfReader(path).pages]


def add_many_sessions(w: QuarterWorld, count: int = 70) -> None:
    """Enough sessions of Working Together that the sessions table runs over pages."""
    course = w.session.exec(select(Course).where(Course.title == WT)).one()
    for n in range(count):
        starts = utc("2026-02-02 09:30") + timedelta(days=n % 50, hours=n // 50)
        w.add(CourseSession(ref=f"WT-X-{n:03d}", course_id=course.id, starts_at=starts,
                            ends_at=starts + timedelta(hours=6), max_places=20))  # fmt: skip
    w.session.commit()


def test_the_quarterly_report_as_a_pdf(
    quarter_world: QuarterWorld, cli_env: CliRunner, tmp_path: Path
) -> None:
    add_many_sessions(quarter_world)
    out = tmp_path / "q1"
    run(cli_env, "quarterly", "2026Q1", "--out", str(out), "--now", "2026-04-15T10:00", "--pdf")
    pdf = out / "report.pdf"
    reader = PdfReader(pdf)
    pages = page_texts(pdf)
    assert 6 <= len(pages) <= 20, f"{len(pages)} pages"
    width, height = (float(v) for v in reader.pages[0].mediabox.upper_right)
    assert (round(width / 72 * 25.4), round(height / 72 * 25.4)) == (210, 297)  # A4
    everything = "\n".join(pages)
    for heading in HEADINGS:
        assert heading in everything, heading
    # Every page is numbered, "Page n of N".
    for number, text in enumerate(pages, start=1):
        assert f"Page {number} of {len(pages)}" in text
    # The contents list gives each section's page, and the section is on that page.
    contents = pages[0]
    for heading in HEADINGS[1:]:
        found = re.search(re.escape(heading) + r"[ .]*?(\d+)\s*$", contents, re.MULTILINE)
        assert found, heading
        assert heading in pages[int(found[1]) - 1], (heading, found[1])
    # The charts are vector drawings: their words are text, and no page holds a picture.
    assert "Bookings" in everything and "Mean change (points on 1-5)" in everything
    assert all(not page.images for page in reader.pages)
    # The sessions table runs over pages, its header repeated, no row cut at a page's edge.
    with_sessions = [text for text in pages if "WT-X-0" in text]
    assert len(with_sessions) >= 2
    assert all("Booked" in text and "Session" in text for text in with_sessions)
    html = (out / "report.html").read_text()
    assert split_across_pages(render(html, out)) == []


def test_the_annual_report_as_a_pdf(
    quarter_world: QuarterWorld, cli_env: CliRunner, tmp_path: Path
) -> None:
    out = tmp_path / "2026"
    run(cli_env, "annual", "2026", "--out", str(out), "--now", "2026-12-31T12:00", "--pdf")
    pages = page_texts(out / "report.pdf")
    everything = "\n".join(pages)
    for heading in ("annual report", "1. The year quarter by quarter",
                    "2. Satisfaction and change", "3. By sector, agency, role and course level"):  # fmt: skip
        assert heading in everything, heading
    assert f"Page {len(pages)} of {len(pages)}" in pages[-1]
    assert split_across_pages(render((out / "report.html").read_text(), out)) == []


NOTES = """\
# Audit updates

The multi-agency audit of **neglect** referrals found thresholds applied more consistently.
<script>alert("x")</script> <img src=x onerror=alert(1)>

## Training requests

- Schools asked for a twilight session of *Working Together*.
- [A link that runs code](javascript:alert(1))

# Actions for next quarter

1. Run two extra sessions.
"""


def test_the_coordinators_notes_are_placed_in_the_report_safely(
    quarter_world: QuarterWorld, cli_env: CliRunner, tmp_path: Path
) -> None:
    notes = tmp_path / "notes.md"
    notes.write_text(NOTES)
    out = tmp_path / "q1"
    run(cli_env, "quarterly", "2026Q1", "--out", str(out), "--notes", str(notes), "--pdf")
    html = (out / "report.html").read_text()
    section = html[html.index('<h2 id="notes">') : html.index('<section aria-labelledby="about"')]
    assert "12. The training coordinator's notes" in section
    # The notes' headings sit under the report's own.
    assert "<h3>Audit updates</h3>" in section and "<h4>Training requests</h4>" in section
    assert "<strong>neglect</strong>" in section and "<em>Working Together</em>" in section
    assert "<li>Run two extra sessions.</li>" in section
    # HTML in the notes is shown as text, never run; a javascript: link is not a link.
    assert "&lt;script&gt;" in section and "<script" not in html
    assert "<img src" not in html and "&lt;img src=x onerror=alert(1)&gt;" in section
    assert 'href="javascript:' not in html
    assert "Actions for next quarter" in "\n".join(page_texts(out / "report.pdf"))

    annual = tmp_path / "year"
    run(cli_env, "annual", "2026", "--out", str(annual), "--notes", str(notes))
    assert "<h3>Actions for next quarter</h3>" in (annual / "report.html").read_text()


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "no such file"), (b"caf\xe9 notes", "not UTF-8 text (byte 4")],
)
def test_notes_that_cannot_be_read_stop_before_anything_is_written(
    quarter_world: QuarterWorld,
    cli_env: CliRunner,
    tmp_path: Path,
    content: bytes | None,
    message: str,
) -> None:
    notes = tmp_path / "notes.md"
    if content is not None:
        notes.write_bytes(content)
    out = tmp_path / "q1"
    result = cli_env.invoke(
        app, ["report", "quarterly", "2026Q1", "--out", str(out), "--notes", str(notes)]
    )
    assert result.exit_code == 2
    assert f"--notes: {notes}: {message}" in result.output
    assert not out.exists()


def add_voices(w: QuarterWorld) -> None:
    """Alice and Chloé on accessibility and in comments; a second impact example, about a child."""

    def end_of(ref: str) -> SurveyInvitation:
        return w.session.exec(
            select(SurveyInvitation).where(
                SurveyInvitation.booking_id == w.bookings[ref].id,
                SurveyInvitation.stage == Stage.END,
            )
        ).one()

    alice, chloe = end_of("B1"), end_of("B2")
    w.answer(alice, "accessibility", "partly")
    w.answer(alice, "accessibility_detail", "The hearing loop did not work, so Chloé repeated "
             "the questions for me.")  # fmt: skip
    w.answer(chloe, "accessibility", "yes")
    w.answer(alice, "comments", "Clear guidance on neglect thresholds and the referral pathway.")
    w.answer(chloe, "will_do_differently", "Use the neglect toolkit before every referral.")
    impact = w.session.exec(
        select(SurveyInvitation).where(
            SurveyInvitation.booking_id == w.bookings["B2"].id,
            SurveyInvitation.stage == Stage.IMPACT,
        )
    ).one()
    w.answer(impact, "example", "A child in my caseload was referred to early help a month sooner.")
    assert w.bookings["B2"].status == BookingStatus.ATTENDED
    w.session.commit()


def test_the_evaluation_by_kirkpatrick_level_with_accessibility_and_comments(
    quarter_world: QuarterWorld, cli_env: CliRunner, tmp_path: Path
) -> None:
    add_voices(quarter_world)
    out = tmp_path / "q1"
    run(cli_env, "quarterly", "2026Q1", "--out", str(out), "--now", "2026-04-15T10:00")
    html = (out / "report.html").read_text()
    levels = html[html.index('<h2 id="levels">') : html.index('<h2 id="satisfaction">')]
    rows = re.findall(r"<tr><td><a [^>]*>([^<]*)</a></td><td>[^<]*</td><td>([^<]*)</td>"
                      r"<td class=\"num\">([^<]*)</td></tr>", levels)  # fmt: skip
    assert [row[0] for row in rows] == ["1. Reaction", "2. Learning", "3. Behaviour", "4. Results"]
    found = {row[0]: (row[1], row[2]) for row in rows}
    # Reaction: 10 ratings (Alice 3 + 3, Chloé 3, Ian 1), mean 3.90.
    assert found["1. Reaction"] == ("mean satisfaction 3.90 on 1-5; 70.0% rated it 4 or 5",
                                    "10 ratings")  # fmt: skip
    assert found["2. Learning"][1] == "7 matched pairs" and "+1.29" in found["2. Learning"][0]
    assert found["3. Behaviour"] == ("50.0% of those asked at impact had applied their learning",
                                     "2 answers")  # fmt: skip
    assert found["4. Results"][0].startswith("1 of the 2 examples of practice involve a child")

    results = html[html.index('<h2 id="results">') : html.index('<h2 id="voices">')]
    assert "A child in my caseload was referred to early help a month sooner." in results
    assert "Managers' view" in results
    voices = html[html.index('<h2 id="voices">') : html.index('<h2 id="issues">')]
    assert re.search(r"<td>Partly</td><td class=\"num\">1</td><td class=\"num\">50.0%</td>", voices)
    # Quoted with the names Evalbot knows taken out.
    assert "so [name] repeated the questions" in voices and "Chloé" not in voices
    assert "<strong>neglect</strong> (2)" in voices and "<strong>referral</strong> (2)" in voices
    # Most frequent first, equal counts alphabetically: the same answers, the same report.
    themes = [(word, int(n)) for word, n in re.findall(r"<strong>(\w+)</strong> \((\d+)\)", voices)]
    assert len(themes) > 3 and themes == sorted(themes, key=lambda theme: (-theme[1], theme[0]))

    anonymous = tmp_path / "anonymous"
    run(cli_env, "quarterly", "2026Q1", "--out", str(anonymous), "--anonymous")
    voices = (anonymous / "report.html").read_text()
    voices = voices[voices.index('<h2 id="voices">') : voices.index('<h2 id="issues">')]
    assert "Fewer than 5 people answered" in voices and "<td>Partly</td>" not in voices
