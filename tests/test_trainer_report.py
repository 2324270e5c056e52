"""The trainer's report on each session (``Stage.TRAINER``), kept by the tick: asked when the
session ends, reminded once, closed after a week; none without a trainer, withdrawn with a
cancelled session; the delegates' figures never count it; the quarterly report's "Trainers'
reports"; the trainer's own export and erasure; the schema's rule that an invitation belongs to
a booking or a session."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select
from typer.testing import CliRunner

from bot.cli import app as cli
from bot.web.admin.dashboard import notable_issues, quarter_of
from schedules.planning import cancel_session
from schedules.policy import load_policy
from surveys import engine as survey_engine
from surveys.models import (
    CourseSession,
    InvitationStatus,
    Person,
    Stage,
    SurveyInvitation,
)
from surveys.responses import responses, session_scope
from tests.conftest import World, utc
from tests.timeline import Timeline, at

ALICE = "alice.okafor@riverside.example"
CHLOE = "chloe.obrien@northgate.example"
TARIQ = "tariq.aziz@partnership.example"

# What Tariq reports, by question id; his free text names a delegate, and starts like a formula.
REPORT = {
    "trainer_went": "4",
    "trainer_attended": "11",
    "trainer_issues": "=The projector failed; Alice Okafor lent us her laptop",
    "trainer_concern": "yes",
    "trainer_concern_details": "A delegate described a child at risk; passed to the MASH at once",
    "trainer_changes": "More time for the case study",
}


def report_of(session: Session, session_id: int) -> SurveyInvitation | None:
    session.expire_all()
    return session.exec(
        select(SurveyInvitation).where(
            SurveyInvitation.session_id == session_id, SurveyInvitation.stage == Stage.TRAINER
        )
    ).first()


def answer_report(db: Engine, session_id: int, values: dict[str, str], now_text: str) -> None:
    """Tariq answers his report through the answering engine, as the form and the chat do."""
    with Session(db, expire_on_commit=False) as session:
        invitation = report_of(session, session_id)
        assert invitation is not None
        while (view := survey_engine.next_question(session, invitation)) is not None:
            survey_engine.submit_answer(
                session,
                invitation,
                view.key,
                values.get(view.item, ""),
                now=at(now_text),
                channel="web",
            )
        survey_engine.finish(session, invitation, now=at(now_text))
        session.commit()


def to_tariq(timeline: Timeline, since: str) -> list[tuple[str, str | None]]:
    """The survey messages Tariq was sent (his register reminder is another matter)."""
    return [
        (template, stage)
        for who, template, stage in timeline.sent(since=at(since))
        if who == TARIQ and template.startswith("survey-")
    ]


def test_the_trainer_is_asked_at_the_end_reminded_once_and_the_report_closes_after_a_week(
    world, engine, settings, session
):
    people = world.standard()
    timeline = Timeline(engine, settings)
    report = timeline.tick("2026-03-02 09:00")
    assert report.trainer.planned == 1
    invitation = report_of(session, people["session"].id)
    assert invitation is not None and invitation.booking_id is None
    assert invitation.person_id == people["tariq"].id
    assert invitation.status == InvitationStatus.PLANNED
    assert invitation.opens_at == at("2026-03-16 16:30")  # the session's end
    assert invitation.closes_at == at("2026-03-23 16:30")  # seven days on

    timeline.tick("2026-03-16 16:29")
    assert to_tariq(timeline, "2026-03-16 00:00") == []
    timeline.tick("2026-03-16 16:30")
    assert to_tariq(timeline, "2026-03-16 16:30") == [("survey-invitation", "trainer")]
    [message] = timeline.rows(template="survey-invitation", recipient=TARIQ)
    assert message.booking_id is None and message.kind == "invitation"
    timeline.tick("2026-03-17 16:30")
    assert to_tariq(timeline, "2026-03-17 00:00") == []
    timeline.tick("2026-03-18 16:30")  # two days after it opened
    assert to_tariq(timeline, "2026-03-18 00:00") == [("survey-reminder", "trainer")]
    for moment in ("2026-03-20 16:30", "2026-03-23 16:29"):
        timeline.tick(moment)
    assert to_tariq(timeline, "2026-03-19 00:00") == []  # once only
    timeline.tick("2026-03-23 16:30")
    assert report_of(session, people["session"].id).status == InvitationStatus.CLOSED

    # The delegates' figures do not count it: two end-of-course evaluations sent, no
    # "trainer" stage among the response rates.
    course_session = session.get(CourseSession, people["session"].id)
    figures = responses(session, session_scope(session, course_session))
    assert [(row.stage, row.sent) for row in figures.stages] == [
        ("pre", 2),
        ("end", 2),
        ("impact", 0),
    ]


def test_a_finished_report_gets_no_reminder(world, engine, settings, session):
    people = world.standard()
    timeline = Timeline(engine, settings)
    timeline.tick("2026-03-02 09:00")
    timeline.tick("2026-03-16 16:30")
    answer_report(engine, people["session"].id, REPORT, "2026-03-17 09:00")
    for moment in ("2026-03-18 16:30", "2026-03-23 16:30"):
        timeline.tick(moment)
    assert to_tariq(timeline, "2026-03-17 00:00") == []
    assert report_of(session, people["session"].id).status == InvitationStatus.FINISHED


def test_no_report_without_a_trainer_and_none_for_a_cancelled_session(
    world, engine, settings, session
):
    people = world.standard()
    other = world.course_session(
        people["course"], ref="WT-2026-03-17", starts_at=utc("2026-03-17 09:30")
    )
    session.commit()
    timeline = Timeline(engine, settings)
    timeline.tick("2026-03-02 09:00")
    assert report_of(session, other.id) is None  # no trainer recorded
    assert report_of(session, people["session"].id).status == InvitationStatus.PLANNED

    row = session.get(CourseSession, people["session"].id)
    cancel_session(session, row, now=at("2026-03-12 10:00"), actor="cli:admin")
    session.commit()
    report = timeline.tick("2026-03-12 10:00")
    assert report.trainer.withdrawn == 1
    assert report_of(session, people["session"].id).status == InvitationStatus.WITHDRAWN
    for moment in ("2026-03-16 16:30", "2026-03-18 16:30"):
        timeline.tick(moment)
    assert to_tariq(timeline, "2026-03-12 00:00") == []


def test_a_new_trainer_before_the_end_is_the_one_asked(world, engine, settings, session):
    people = world.standard()
    timeline = Timeline(engine, settings)
    timeline.tick("2026-03-02 09:00")
    nadia = world.person("Nadia Rahman", "nadia.rahman@partnership.example")
    row = session.get(CourseSession, people["session"].id)
    row.trainer_id = nadia.id
    session.add(row)
    session.commit()
    assert timeline.tick("2026-03-10 09:00").trainer.moved == 1
    timeline.tick("2026-03-16 16:30")
    sent = [(who, stage) for who, template, stage in timeline.sent(since=at("2026-03-16 16:30"))]
    assert ("nadia.rahman@partnership.example", "trainer") in sent
    assert (TARIQ, "trainer") not in sent


def test_the_policy_can_turn_the_report_off_or_time_it_otherwise(world, engine, settings, session):
    people = world.standard()
    off = Timeline(engine, settings, load_policy({"trainer_report": False}))
    off.tick("2026-03-02 09:00")
    assert report_of(session, people["session"].id) is None
    later = load_policy(
        {"stages": {"trainer": {"opens_after": "1d", "reminders": [], "closes_after": "3d"}}}
    )
    timeline = Timeline(engine, settings, later)
    timeline.tick("2026-03-02 09:00")
    invitation = report_of(session, people["session"].id)
    assert invitation.opens_at == at("2026-03-17 16:30")
    assert invitation.closes_at == at("2026-03-20 16:30")
    for moment in ("2026-03-17 16:30", "2026-03-19 16:30"):
        timeline.tick(moment)
    assert to_tariq(timeline, "2026-03-16 00:00") == [("survey-invitation", "trainer")]


def test_the_quarterly_report_has_the_trainers_reports_with_names_taken_out(
    world, engine, settings, session, database_url: str, tmp_path: Path
):
    people = world.standard()
    timeline = Timeline(engine, settings)
    timeline.tick("2026-03-02 09:00")
    timeline.tick("2026-03-16 16:30")
    answer_report(engine, people["session"].id, REPORT, "2026-03-17 09:00")
    out = tmp_path / "report"
    result = CliRunner().invoke(
        cli,
        ["report", "quarterly", "2026Q1", "--out", str(out), "--now", "2026-04-02T09:00"],
        env={"EVALBOT_DATABASE_URL": database_url},
    )
    assert result.exit_code == 0, result.output
    page = (out / "report.html").read_text()
    assert '<h2 id="trainers">Trainers\' reports</h2>' in page
    assert '<a href="#trainers">Trainers' in page  # in the contents
    assert "1 of 1 trainer asked sent one (100%)" in page
    assert "the trainers of 1 session reported a concern raised during the session" in page
    assert "lent us her laptop" in page and "Alice Okafor" not in page.split('id="trainers"')[1]
    # The concern is among the notable issues, in the report and on the console's dashboard.
    issues = page[page.index('<h2 id="issues">') :]
    assert "Safeguarding concern raised" in issues and "(WT-2026-03-16)" in issues
    with (out / "notable_issues.csv").open(encoding="utf-8-sig") as handle:
        kinds = [row["kind"] for row in csv.DictReader(handle)]
    assert "Safeguarding concern raised" in kinds
    with Session(engine) as console_session:
        on_dashboard = notable_issues(
            console_session,
            quarter_of(at("2026-03-17 10:00").date(), "calendar"),
            zone=settings.zone,
            alert_rate=0.15,
            now=at("2026-03-17 10:00"),
        )
    assert (
        "Safeguarding concern raised",
        "Working Together to Safeguard Children (WT-2026-03-16)",
    ) in [(issue.kind, issue.subject) for issue in on_dashboard]
    with (out / "trainer_reports.csv").open(encoding="utf-8-sig") as handle:
        [row] = list(csv.DictReader(handle))
    assert row["session_ref"] == "WT-2026-03-16" and row["trainer"] == "Tariq Aziz"
    assert row["went"] == "4" and row["counted_by_trainer"] == "11"
    assert row["attended_by_register"] == "0"  # the register has not been marked
    assert row["concern_raised"] == "Yes" and row["report"] == "Received"
    # Scrubbed, and written so that a spreadsheet does not run it as a formula.
    assert row["issues"] == "'=The projector failed; [name] lent us her laptop"
    assert row["concern_details"].endswith("passed to the MASH at once")

    anonymous = tmp_path / "anonymous"
    result = CliRunner().invoke(
        cli,
        ["report", "quarterly", "2026Q1", "--out", str(anonymous), "--anonymous",
         "--now", "2026-04-02T09:00"],
        env={"EVALBOT_DATABASE_URL": database_url},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    with (anonymous / "trainer_reports.csv").open(encoding="utf-8-sig") as handle:
        [row] = list(csv.DictReader(handle))
    assert "trainer" not in row and "Tariq" not in (anonymous / "report.html").read_text()

    # The annual report counts them, quarter by quarter.
    annual = tmp_path / "annual"
    result = CliRunner().invoke(
        cli,
        ["report", "annual", "2026", "--out", str(annual), "--now", "2026-12-31T09:00"],
        env={"EVALBOT_DATABASE_URL": database_url},
    )
    assert result.exit_code == 0, result.output
    assert '<h2 id="trainers">Trainers\' reports</h2>' in (annual / "report.html").read_text()
    with (annual / "annual_trainer_reports.csv").open(encoding="utf-8-sig") as handle:
        counted = {row["period"]: row for row in csv.DictReader(handle)}
    assert list(counted) == ["2026 Q1", "2026 Q2", "2026 Q3", "2026 Q4", "2026"]
    assert (counted["2026 Q1"]["received"], counted["2026 Q1"]["concerns"]) == ("1", "1")
    assert counted["2026 Q2"]["asked"] == "0" and counted["2026"]["went_mean"] == "4.0000"


def test_the_trainers_export_holds_the_report_and_erasure_clears_it(
    world, engine, settings, session, database_url: str, tmp_path: Path
):
    people = world.standard()
    timeline = Timeline(engine, settings)
    timeline.tick("2026-03-02 09:00")
    timeline.tick("2026-03-16 16:30")
    answer_report(engine, people["session"].id, REPORT, "2026-03-17 09:00")
    env = {"EVALBOT_DATABASE_URL": database_url}
    exported = tmp_path / "tariq.json"
    result = CliRunner().invoke(cli, ["person", "export", TARIQ, "--out", str(exported)], env=env)
    assert result.exit_code == 0, result.output
    record = json.loads(exported.read_text())
    [survey] = record["surveys"]
    assert survey["stage"] == "trainer" and survey["session"] == "WT-2026-03-16"
    assert survey["booking"] is None and survey["status"] == "finished"
    given = {a["question"]: a["value"] for a in survey["answers"]}
    assert given["trainer_changes"] == "More time for the case study"

    result = CliRunner().invoke(cli, ["person", "erase", TARIQ, "--yes"], env=env)
    assert result.exit_code == 0, result.output
    session.expire_all()
    invitation = report_of(session, people["session"].id)
    texts = [
        a.value_text
        for a in survey_engine.load_survey(session, invitation).answers.values()
        if a.value_text is not None
    ]
    assert texts == [] or all("case study" not in t for t in texts)
    assert session.get(Person, people["tariq"].id).erased_at is not None


def test_an_erased_trainer_is_asked_nothing_more(world, engine, settings, session, database_url):
    people = world.standard()
    timeline = Timeline(engine, settings)
    timeline.tick("2026-03-02 09:00")
    env = {"EVALBOT_DATABASE_URL": database_url}
    result = CliRunner().invoke(cli, ["person", "erase", TARIQ, "--yes"], env=env)
    assert result.exit_code == 0, result.output
    for moment in ("2026-03-10 09:00", "2026-03-16 16:30", "2026-03-18 16:30"):
        timeline.tick(moment)
    assert report_of(session, people["session"].id).status == InvitationStatus.WITHDRAWN
    erased = session.get(Person, people["tariq"].id)
    assert [row.template for row in timeline.rows(person_id=erased.id, state="sent")] == []


def _constraint_holds(db: Engine) -> None:
    with Session(db) as session:
        world_session = session
        person = Person(name="Tariq Aziz", email="tariq@example.org")
        world_session.add(person)
        world_session.flush()
        orphan = SurveyInvitation(
            person_id=person.id,
            stage=Stage.TRAINER,
            opens_at=utc("2026-03-16 16:30"),
            closes_at=utc("2026-03-23 16:30"),
        )
        world_session.add(orphan)
        with pytest.raises(IntegrityError):
            world_session.flush()


def test_an_invitation_belongs_to_a_booking_or_a_session_on_sqlite(engine: Engine) -> None:
    _constraint_holds(engine)


def test_an_invitation_belongs_to_a_booking_or_a_session_on_postgresql(
    postgres_engine: Engine,
) -> None:
    _constraint_holds(postgres_engine)


def test_a_reminder_campaign_cannot_take_the_trainers_report_as_its_survey():
    from schedules.campaign_scope import Scope as CampaignScope
    from schedules.campaigns import CampaignError

    with pytest.raises(
        CampaignError, match="stage 'trainer': use one of pre, end, impact, manager"
    ):
        CampaignScope.parse("remind", {"stage": "trainer"})
    assert CampaignScope.parse("remind", {"stage": "end"}).stage == Stage.END


def _down_and_up(db: Engine) -> None:
    """From the trainer's stage back to the schema before it, and up again: the delegates'
    invitations stay; the trainers' reports, which the older schema cannot hold, go."""
    from alembic import command
    from sqlalchemy import text

    from surveys.db import current_revision, head_revision, migrate

    with Session(db) as session:
        people = World(session).standard()
        common = {"opens_at": utc("2026-03-16 16:30"), "closes_at": utc("2026-03-23 16:30")}
        session.add(
            SurveyInvitation(
                booking_id=people["alice_booking"].id,
                person_id=people["alice"].id,
                stage=Stage.END,
                **common,
            )
        )
        session.add(
            SurveyInvitation(
                session_id=people["session"].id,
                person_id=people["tariq"].id,
                stage=Stage.TRAINER,
                **common,
            )
        )
        session.commit()  # fmt: skip

    def move(step: str, revision: str) -> None:
        migrate(db, getattr(command, step), revision)

    move("downgrade", "0003_survey_variants")
    assert current_revision(db) == "0003_survey_variants"
    with db.connect() as connection:
        assert connection.execute(text("select stage from survey_invitation")).all() == [("end",)]
    move("upgrade", "head")
    assert current_revision(db) == head_revision()
    _constraint_holds(db)


def test_the_migration_goes_down_and_up_on_sqlite(engine: Engine) -> None:
    _down_and_up(engine)


def test_the_migration_goes_down_and_up_on_postgresql(postgres_engine: Engine) -> None:
    _down_and_up(postgres_engine)


def test_a_report_passed_to_a_new_trainer_after_it_opened_invites_them(
    world, engine, settings, session, database_url
):
    """Tariq is asked, then erased; Nadia takes the session over: she gets the invitation
    itself (not only a reminder timed from Tariq's), and her one reminder two days later."""
    people = world.standard()
    timeline = Timeline(engine, settings)
    timeline.tick("2026-03-02 09:00")
    timeline.tick("2026-03-16 16:30")
    env = {"EVALBOT_DATABASE_URL": database_url}
    assert CliRunner().invoke(cli, ["person", "erase", TARIQ, "--yes"], env=env).exit_code == 0
    timeline.tick("2026-03-17 09:00")
    nadia = world.person("Nadia Rahman", "nadia.rahman@partnership.example")
    course_session = session.get(CourseSession, people["session"].id)
    assert course_session is not None
    course_session.trainer_id = nadia.id
    session.add(course_session)
    session.commit()
    for moment in ("2026-03-17 10:00", "2026-03-17 11:00", "2026-03-19 16:30", "2026-03-20 16:30"):
        timeline.tick(moment)
    to_nadia = [
        template
        for who, template, stage in timeline.sent(since=at("2026-03-17 00:00"))
        if who == "nadia.rahman@partnership.example" and stage == "trainer"
    ]
    assert to_nadia == ["survey-invitation", "survey-reminder"], to_nadia
