"""Messages and pages that say only what is true when they are read.

The standard session: Monday 16 March 2026, 09:30-16:30 (GMT). Alice attends; Chloé is marked a
no-show, and the register closes at 18:30.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from bot.settings import Settings
from schedules.policy import Policy, load_policy
from schedules.tick import tick
from surveys.models import OutboxState, Stage
from tests.conftest import utc
from tests.test_attendance import marked
from tests.test_cancellation import Mailbox, client_at, link_in, make_settings, to
from tests.timeline import Timeline

END = utc("2026-03-16 16:30")
CLOSED = utc("2026-03-16 18:30")
ALICE, CHLOE = "alice.okafor", "chloe.obrien"


def run_tick(engine, settings: Settings, policy: Policy, now: datetime) -> None:
    tick(engine, now=now, policy=policy, zone=settings.zone, secret=settings.secret)


def evaluation(mails, who):
    return [mail for mail in to(mails, who) if mail.subject.startswith(("How was", "Reminder"))]


def test_the_evaluation_invitation_claims_no_attendance_before_the_register(
    world, engine, database_url, tmp_path
):
    settings = make_settings(database_url, tmp_path)
    policy = load_policy({})
    world.standard()
    run_tick(engine, settings, policy, utc("2026-03-02 09:00"))
    run_tick(engine, settings, policy, END)
    mails = Mailbox(engine, settings).deliver(END)
    [alice] = evaluation(mails, ALICE)
    assert "Thank you for attending" not in alice.text + alice.html
    assert alice.subject == "How was Working Together to Safeguard Children? Your evaluation"
    assert "has finished" in alice.text
    assert (
        "Your certificate of attendance comes when you have finished this and the register "
        "shows you attended the whole course." in alice.text
    )


def test_after_the_register_closes_a_no_show_gets_no_evaluation_or_reminder(
    world, session, engine, database_url, tmp_path
):
    settings = make_settings(database_url, tmp_path)
    policy = load_policy({})
    people = world.standard()
    run_tick(engine, settings, policy, utc("2026-03-02 09:00"))
    run_tick(engine, settings, policy, END)
    mailbox = Mailbox(engine, settings)
    sent = mailbox.deliver(END)
    chloe_link = link_in(evaluation(sent, CHLOE)[0].text, "/s/")
    marked(session, people, policy)  # Alice attended; Chloé a no-show; closed at 18:30
    run_tick(engine, settings, policy, CLOSED + timedelta(minutes=1))
    timeline = Timeline(engine, settings, policy)
    assert timeline.invitation("BK-1002", Stage.END).status == "withdrawn"

    # Two days on, the reminder goes to Alice alone.
    reminder_time = utc("2026-03-18 16:31")
    run_tick(engine, settings, policy, reminder_time)
    later = mailbox.deliver(reminder_time)
    assert [mail.subject.startswith("Reminder") for mail in evaluation(later, ALICE)] == [True]
    assert evaluation(later, CHLOE) == []
    chloe_rows = timeline.rows(booking_id=people["chloe_booking"].id)
    assert not [
        row
        for row in chloe_rows
        if row.template in ("survey-invitation", "survey-reminder")
        and row.state in (OutboxState.PENDING, OutboxState.FAILED)
    ]

    # Her link says why it no longer works, and whom to tell if the register is wrong.
    page = client_at(settings, engine, reminder_time).get(chloe_link)
    assert page.status_code == 410
    assert "The register shows you did not attend" in page.text
    assert "This survey has closed" not in page.text
    assert "If the register is wrong" in page.text
    assert "mailto:training@partnership.example" in page.text


def test_an_unsent_evaluation_is_withdrawn_when_the_register_marks_a_no_show(
    world, session, engine, database_url, tmp_path
):
    settings = make_settings(database_url, tmp_path)
    policy = load_policy({})
    people = world.standard()
    run_tick(engine, settings, policy, utc("2026-03-02 09:00"))
    Mailbox(engine, settings).deliver(utc("2026-03-02 09:00"))
    late_end = utc("2026-03-16 18:05")  # the invitations are queued, held for the morning
    run_tick(engine, settings, policy, late_end)
    marked(session, people, policy)
    run_tick(engine, settings, policy, CLOSED + timedelta(minutes=1))
    mails = Mailbox(engine, settings).deliver(utc("2026-03-17 08:00"))
    assert len(evaluation(mails, ALICE)) == 1
    assert evaluation(mails, CHLOE) == []


def test_a_link_used_after_its_survey_closed_says_so_and_when(
    world, engine, database_url, tmp_path
):
    settings = make_settings(database_url, tmp_path)
    policy = load_policy({})
    world.standard()
    run_tick(engine, settings, policy, utc("2026-03-02 09:00"))
    run_tick(engine, settings, policy, END)
    link = link_in(evaluation(Mailbox(engine, settings).deliver(END), ALICE)[0].text, "/s/")
    after = utc("2026-04-02 10:00")  # the evaluation closed on 30 March at 16:30 (BST)
    run_tick(engine, settings, policy, after)
    page = client_at(settings, engine, after).get(link)
    assert page.status_code == 410
    assert "This survey has closed" in page.text
    assert "It closed at 16:30 on Monday 30 March 2026" in page.text
    assert "does not work" not in page.text
    assert "training@partnership.example" in page.text
    # An address that was never a link still gives nothing away.
    unknown = client_at(settings, engine, after).get("/s/" + "x" * 43)
    assert unknown.status_code == 404 and "This link does not work" in unknown.text


def test_the_root_and_missing_pages_say_what_this_is_and_whom_to_ask(
    engine, database_url, tmp_path: Path
):
    settings = make_settings(
        database_url, tmp_path, admin_email=None, reply_to="Training Team <training@lscp.example>"
    )
    client = client_at(settings, engine, utc("2026-03-02 09:00"))
    home = client.get("/")
    assert home.status_code == 200 and home.headers["content-type"].startswith("text/html")
    assert "Riverside Safeguarding Children Partnership" in home.text
    assert "links arrive by email" in home.text
    assert "mailto:training@lscp.example" in home.text

    missing = client.get("/no-such-page", headers={"Accept": "text/html"})
    assert missing.status_code == 404
    assert "Page not found" in missing.text and "mailto:training@lscp.example" in missing.text
    assert client.get("/no-such-page").json() == {"detail": "Not Found"}  # programs keep JSON


def test_every_booking_error_page_names_the_team(world, session, engine, database_url, tmp_path):
    settings = make_settings(database_url, tmp_path, admin_email=None, reply_to="t@lscp.example")
    client = client_at(settings, engine, utc("2026-03-02 09:00"))
    for path in ("/cancel/nonsense", "/s/nonsense", "/unsubscribe/nonsense"):
        page = client.get(path)
        assert page.status_code == 404, path
        assert "mailto:t@lscp.example" in page.text, path
