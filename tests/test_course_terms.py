"""What messages say of a course's length, the cancellation terms and the partnership's wording.

The standard session starts on Monday 16 March 2026 at 09:30 (GMT); with the default cut-off a
cancellation is in time until the end of Thursday 12 March.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from sqlmodel import Session
from typer.testing import CliRunner

from bot.cli import app as cli_app
from bot.settings import Settings
from schedules.cancellation import record_late_cancellation_charges
from schedules.planning import plan
from schedules.policy import Policy, load_policy
from surveys.models import BookingStatus, Duration
from tests.conftest import utc
from tests.test_attendance import marked, notify
from tests.test_cancellation import LATE, START, Mailbox, cancel, make_settings, to

ALICE = "alice.okafor@riverside.example"
BOB = "bob.whitfield@riverside.example"
CHLOE = "chloe.obrien@northgate.example"


def settings_with(database_url: str, tmp_path: Path, **policy: object) -> Settings:
    values = {"charge_full_day_pence": 7500, "charge_half_day_pence": 4000, **policy}
    return make_settings(database_url, tmp_path, policy=values)


def half_day(world) -> dict:
    """The standard world, its course a half day: 09:30-13:00."""
    people = world.standard()
    people["course"].duration = Duration.HALF
    people["session"].ends_at = utc("2026-03-16 13:00")
    world.session.add(people["course"])
    world.session.add(people["session"])
    world.session.commit()
    return people


def planned(session: Session, settings: Settings, policy: Policy, now: datetime) -> None:
    plan(session, now=now, policy=policy, zone=settings.zone, secret=settings.secret)
    session.commit()


def test_a_late_cancellation_of_a_half_day_course_is_charged_the_half_day_rate(
    world, session, engine, database_url, tmp_path
):
    settings = settings_with(database_url, tmp_path)
    policy = load_policy(settings.policy)
    people = half_day(world)
    mailbox = Mailbox(engine, settings)
    planned(session, settings, policy, utc("2026-03-02 09:00"))
    confirmation = to(mailbox.deliver(utc("2026-03-02 09:00")), ALICE)[0]
    assert "09:30 to 13:00 (half day)" in confirmation.text
    assert "(full day)" not in confirmation.text + confirmation.html
    assert "£40.00 (half day)" in confirmation.text

    alice = session.get(type(people["alice_booking"]), people["alice_booking"].id)
    cancel(session, alice, settings, policy, LATE)
    request = to(mailbox.deliver(LATE), BOB)[0]
    assert "your agency will be charged £40 (half day)" in request.text

    assert record_late_cancellation_charges(session, now=START, policy=policy) == 1
    session.commit()
    session.refresh(alice)
    assert alice.status == BookingStatus.LATE_CANCELLATION
    assert alice.charge_pence == 4000
    assert "half day charge £40" in (alice.charge_note or "")

    # Chloé's certificate names the course's real length.
    from schedules.certificates import certificate_status

    chloe = session.get(type(people["chloe_booking"]), people["chloe_booking"].id)
    status = certificate_status(session, chloe)
    assert (status.duration_text, status.day_length) == ("3 hours 30 minutes", "half day")


def test_a_confirmation_sent_after_the_cutoff_says_cancelling_is_now_late(
    world, session, engine, database_url, tmp_path
):
    settings = settings_with(database_url, tmp_path)
    policy = load_policy(settings.policy)
    world.standard()
    mailbox = Mailbox(engine, settings)
    planned(session, settings, policy, LATE)  # Friday: booked after Thursday's cut-off
    confirmation = to(mailbox.deliver(LATE), ALICE)[0]
    assert "please cancel by" not in confirmation.text
    assert "a cancellation now counts as late" in confirmation.text
    assert "asked to nominate a colleague from your agency" in confirmation.text
    assert "your agency may be charged £75.00 (full day)" in confirmation.text
    assert "counts as <strong>late</strong>" in confirmation.html


def test_a_confirmation_sent_in_time_gives_the_cutoff_and_the_default_wording(
    world, session, engine, database_url, tmp_path
):
    settings = settings_with(database_url, tmp_path)
    policy = load_policy(settings.policy)
    world.standard()
    mailbox = Mailbox(engine, settings)
    planned(session, settings, policy, utc("2026-03-02 09:00"))
    confirmation = to(mailbox.deliver(utc("2026-03-02 09:00")), ALICE)[0]
    assert "please cancel by 23:59 on Thursday 12 March 2026" in confirmation.text
    assert "counts as late" not in confirmation.text
    assert "please tell us as early as you can if you cannot come" in confirmation.text
    assert "If you need any adjustments to take part" in confirmation.text


def test_the_partnerships_own_words_reach_its_messages(
    world, session, engine, database_url, tmp_path
):
    settings = settings_with(
        database_url,
        tmp_path,
        accessibility_statement="Hearing loops are in every room; ask us for anything else.",
        cancellation_terms="Our training is free, but an empty seat costs a child's worker a place.",
        courses={
            "Working Together to Safeguard Children": {
                "no_show_terms": "Non-attendance is reported to the agency's training lead."
            }
        },
    )
    policy = load_policy(settings.policy)
    people = world.standard()
    mailbox = Mailbox(engine, settings)
    planned(session, settings, policy, utc("2026-03-02 09:00"))
    confirmation = to(mailbox.deliver(utc("2026-03-02 09:00")), ALICE)[0]
    assert "Hearing loops are in every room; ask us for anything else." in confirmation.text
    assert "Hearing loops are in every room" in confirmation.html
    assert "an empty seat costs a child's worker a place" in confirmation.text
    assert "If you need any adjustments" not in confirmation.text

    marked(session, people, policy)
    assert notify(session, settings, policy) == 1
    mails = mailbox.deliver(utc("2026-03-17 08:00"))
    notice = to(mails, CHLOE)[0]
    assert "Non-attendance is reported to the agency's training lead." in notice.text
    assert "we let them and the line manager" not in notice.text


def test_policy_show_names_each_values_source(tmp_path: Path, database_url):
    (tmp_path / "evalbot.toml").write_text(
        f'database_url = "{database_url}"\n'
        "[policy]\n"
        'window_start = "08:30"\n'
        'no_show_terms = "Our own words."\n'
        '[policy.courses."Neglect"]\n'
        "cutoff_hours = 48\n"
        '[policy.courses."Neglect".stages.impact]\n'
        'opens_after = "3mo"\n'
    )
    runner = CliRunner()
    result = runner.invoke(cli_app, ["policy", "show"])
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line for line in result.output.splitlines()[1:]}
    assert lines["window_start"].endswith("08:30  [partnership]")
    assert lines["window_end"].endswith("18:00  [default]")
    assert lines["no_show_terms"].endswith("Our own words.  [partnership]")
    assert lines["cutoff_hours"].endswith("not set  [default]")
    assert lines["stages.impact.opens_after"].endswith("91 days  [default]")
    assert "If you need any adjustments" in lines["accessibility_statement"]

    result = runner.invoke(cli_app, ["policy", "show", "--course", "neglect"])
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line for line in result.output.splitlines()[1:]}
    assert lines["cutoff_hours"].endswith("48  [course]")
    assert lines["stages.impact.opens_after"].endswith("3 months  [course]")
    assert lines["window_start"].endswith("08:30  [partnership]")


@pytest.mark.parametrize("key", ["no_show_terms", "accessibility_statement"])
def test_policy_wording_must_be_text(key):
    from schedules.policy import PolicyError

    with pytest.raises(PolicyError, match=f"policy.{key}: expected text"):
        load_policy({key: 12})
