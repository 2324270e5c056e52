"""Privacy in the quarterly report: names in free text, and small groups in the anonymous
edition, on the hand-counted quarter of tests/report_world.py."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlmodel import Session, select
from typer.testing import CliRunner

from bot.cli import app
from surveys.models import (
    Agency,
    BookingStatus,
    Course,
    CourseSession,
    InvitationStatus,
    Stage,
    SurveyInvitation,
)
from surveys.report import Quarter, suppress_small_groups
from tests.conftest import utc
from tests.report_world import NM, WT, QuarterWorld, figures, read_csv, scores
from tests.report_world import cli_env as cli_env
from tests.report_world import quarter_world as quarter_world

# --- privacy: names in free text, and small groups in the anonymous edition -------------------

CE = "Child Exploitation"
CE_PEOPLE = ("Uma Price", "Vic Stone", "Wyn Doyle", "Xan Ruiz", "Yas Khan", "Zed Moss")


def add_a_larger_course(w: QuarterWorld) -> None:
    """Six delegates on one more course, enough to show their figures in the anonymous edition.

    Each rated knowledge and confidence 2 before; after, knowledge 4 for five of them and 2 for
    Zed, confidence 3 for all; satisfaction with the content 5, 5, 4, 4, 3, 3 (mean 4.00).
    Pre to end, knowledge: 6 pairs, mean change (5 x 2 + 0) / 6 = +1.67, 5 improved (83.3%).
    """
    agency = w.session.get(Agency, w.people["Alice"].agency_id)
    course = w.add(Course(title=CE, learning_outcomes=["spot the signs"]))
    starts = utc("2026-03-03 09:30")
    ce = w.add(CourseSession(ref="CE-2026-03-03", course_id=course.id, starts_at=starts,
                             ends_at=starts + timedelta(hours=6), max_places=10))  # fmt: skip
    for n, (name, rating) in enumerate(zip(CE_PEOPLE, (5, 5, 4, 4, 3, 3), strict=True)):
        w.person(name, agency)
        ref = f"G{n}"
        w.booking(ref, ce, name.split()[0], BookingStatus.ATTENDED)
        after = 2 if name.startswith("Zed") else 4
        w.invitation(ref, Stage.PRE, InvitationStatus.FINISHED, scores([2], [2]))
        w.invitation(ref, Stage.END, InvitationStatus.FINISHED,
                     {**scores([after], [3]), "satisfaction_content": rating})  # fmt: skip
    w.session.commit()


def write(cli: CliRunner, out: Path, *flags: str) -> str:
    result = cli.invoke(app, ["report", "quarterly", "2026Q1", "--out", str(out),
                              "--now", "2026-04-15T10:00", *flags])  # fmt: skip
    assert result.exit_code == 0, result.output
    return (out / "report.html").read_text()


def test_names_contacts_in_examples_are_taken_out(
    quarter_world: QuarterWorld, cli_env: CliRunner, tmp_path: Path
) -> None:
    w = quarter_world
    # Chloé's impact survey: an example naming a colleague (a delegate Evalbot knows) and Alice.
    impact = w.session.exec(
        select(SurveyInvitation).where(
            SurveyInvitation.booking_id == w.bookings["B2"].id,
            SurveyInvitation.stage == Stage.IMPACT,
        )
    ).one()
    w.answer(impact, "example", "Ed Marsh and I now meet the school nurse weekly, and Alice's "
             "manager joins us. Email ed.marsh@example.org or ring 07700 900123.")  # fmt: skip
    w.session.commit()
    for edition, flags in (("named", ()), ("anonymous", ("--anonymous",))):
        out = tmp_path / edition
        html = write(cli_env, out, *flags)
        quoted = ("[name] and I now meet the school nurse weekly, and [name]&#39;s manager "
                  "joins us. Email [email] or ring [phone].")  # fmt: skip
        assert quoted in html, edition
        examples = read_csv(out / "impact_examples.csv")
        assert len(examples) == 2
        everything = html + "".join(p.read_text(encoding="utf-8-sig") for p in out.glob("*.csv"))
        for leak in ("Marsh", "Alice", "ed.marsh@", "07700"):
            assert leak not in everything, (edition, leak)
        # Course and agency words are not mistaken for names.
        assert "referred them to early help" in html and "Riverside Children" in html


def test_anonymous_edition_leaves_out_figures_from_fewer_than_five_people(
    quarter_world: QuarterWorld, cli_env: CliRunner, tmp_path: Path
) -> None:
    add_a_larger_course(quarter_world)
    named = write(cli_env, tmp_path / "named")
    html = write(cli_env, tmp_path / "anon", "--anonymous")
    anon = tmp_path / "anon"
    assert "+1.40" in named and "+1.40" not in html  # Working Together: 3 people, suppressed
    assert "rest on fewer than 5 people" in html and "&lt;5" in html

    change = {(r["course"], r["measure"]): r for r in read_csv(anon / "change_pre_to_end.csv")}
    assert change[(WT, "Knowledge")]["pairs"] == "<5"
    assert change[(WT, "Knowledge")]["mean_change"] == ""
    assert change[(WT, "Knowledge")]["share_improved"] == ""
    # Six people: shown, as worked out by hand.
    ce = change[(CE, "Knowledge")]
    assert (ce["pairs"], ce["mean_change"], ce["improved"], ce["share_improved"]) == (
        "6", "1.6667", "5", "0.8333")  # fmt: skip
    assert "+1.67" in html
    # All courses (13 pairs, +1.46) less Child Exploitation would give the other courses' four
    # people's change back: the total goes too, and with it the headline tile.
    every = change[("All courses", "Knowledge")]
    assert (every["pairs"], every["mean_change"]) == ("<5", "")
    assert "+1.46" in named and "+1.46" not in html

    rated = {(r["course"], r["item"]): r for r in read_csv(anon / "satisfaction.csv")}
    assert rated[(CE, "Content")]["answers"] == "6" and rated[(CE, "Content")]["mean"] == "4.0000"
    assert rated[(NM, "Trainer")]["answers"] == "<5" and rated[(NM, "Trainer")]["mean"] == ""
    assert "4.00 (6)" in html and "– (&lt;5)" in html
    # Content was rated by 4 people on the other courses, too few to be the difference.
    assert rated[("All courses", "Content")]["answers"] == "<5"

    # Two impact answers, one barrier answer, one manager: all too few to show.
    applied = read_csv(anon / "impact_applied.csv")
    assert [(r["answers"], r["share_applied"]) for r in applied] == [("<5", ""), ("<5", "")]
    assert {r["times_chosen"] for r in read_csv(anon / "impact_barriers.csv")} == {"<5"}
    assert "too few to show in this anonymous edition" in html
    assert {r["answers"] for r in read_csv(anon / "manager_view.csv")} == {"<5"}
    assert "too few people to show" in html  # the "applying their learning" tile
    # Counts of bookings and surveys are not opinions: they stay as they are.
    assert read_csv(anon / "attendance_by_agency.csv")[-1]["booked"] == "18"
    assert read_csv(anon / "response_rates.csv") == read_csv(
        tmp_path / "named" / "response_rates.csv"
    )
    for name in CE_PEOPLE:
        assert name not in html
    # The one example is Working Together's: too few to say which course it came from.
    example = "I noticed the signs of neglect in a family sooner and referred them to early help."
    assert read_csv(anon / "impact_examples.csv") == [
        {"course": "Other courses", "example": example}
    ]
    assert '<span class="course-name">Other courses</span><blockquote>' + example in html
    assert f'<span class="course-name">{WT}</span><blockquote>' + example in named


def test_a_total_is_shown_once_what_it_hides_is_itself_enough_people(
    session: Session, quarter_world: QuarterWorld
) -> None:
    add_a_larger_course(quarter_world)
    report = figures(session, Quarter(2026, 1))

    def knowledge(smallest: int) -> dict[str, bool]:
        shown = suppress_small_groups(report, smallest)
        return {
            r.course: r.suppressed
            for r in shown.change
            if r.transition == "pre to end" and r.measure == "knowledge"
        }

    # Pre to end, knowledge: Child Exploitation 6 people, Working Together 2 (at most 2 pairs
    # per outcome), Neglect Matters 1. Leaving out 2 + 1 = 3 people: a total of the rest is
    # fine at 3, and gives them away at 4.
    assert knowledge(3) == {CE: False, NM: True, WT: True, "All courses": False}
    assert knowledge(4) == {CE: False, NM: True, WT: True, "All courses": True}
    assert knowledge(1) == dict.fromkeys((CE, NM, WT, "All courses"), False)
    assert suppress_small_groups(report, 3).smallest_group == 3

    # Per outcome: where one of a course's outcomes is hidden, all of them are, or the course's
    # figure less the others would give the hidden one back.
    for smallest in (2, 3, 4):
        by_course: dict[tuple[str, str, str], set[bool]] = {}
        for row in suppress_small_groups(report, smallest).change_by_outcome:
            key = (row.course, row.transition, row.measure)
            by_course.setdefault(key, set()).add(row.suppressed)
        assert all(len(states) == 1 for states in by_course.values()), (smallest, by_course)
    assert report.smallest_group is None  # the named edition's figures are left as they were
