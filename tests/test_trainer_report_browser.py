"""The trainer's report end to end: ``evalbot tick`` sends it to the trainer over SMTP (aiosmtpd
on loopback) when the session ends; the trainer answers on the same web form as delegates, in
headless Chromium; the coordinator reads it on the session's console page. axe-core finds
nothing wrong on any of those pages."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import Session, select
from typer.testing import CliRunner

from bot.cli import app as cli
from surveys.models import Answer, InvitationStatus, Stage, SurveyInvitation
from tests.accessibility import assert_accessible
from tests.conftest import utc
from tests.console_helpers import wait_for_link
from tests.console_pages import CARLA, add_console_staff
from tests.smtp_servers import SmtpServer, running
from tests.test_browser_form import CHROMIUM, launch, served

__all__ = ["served"]

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason=f"no Chromium at {CHROMIUM} (Debian package 'chromium'): the browser test cannot run",
)
TARIQ = "tariq.aziz@partnership.example"
SUBJECT = "Your report on Working Together to Safeguard Children, 16 March 2026"


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with running() as server:
        yield server


def tick(env: dict[str, str], when: str) -> None:
    result = CliRunner().invoke(cli, ["tick", "--now", when], env=env)
    assert result.exit_code == 0, result.output


def test_the_trainer_reports_on_the_web_form_and_the_coordinator_reads_it(
    served, session: Session, world, database_url: str, smtp: SmtpServer
):
    base, settings, app = served
    people = world.standard()
    add_console_staff(database_url)
    env = {
        "EVALBOT_DATABASE_URL": database_url,
        "EVALBOT_PUBLIC_URL": base,
        "EVALBOT_SMTP_HOST": "127.0.0.1",
        "EVALBOT_SMTP_PORT": str(smtp.port),
        "EVALBOT_SMTP_SECURITY": "none",
        "EVALBOT_MAIL_FROM": "Training <training@partnership.example>",
    }
    tick(env, "2026-03-02T09:00")
    tick(env, "2026-03-16T16:30")  # the session's end (London and UTC agree in March)
    [mail] = [
        r.message for r in smtp.received if TARIQ in r.rcpt_tos and "report" in r.message["Subject"]
    ]
    assert mail["Subject"] == SUBJECT
    text = mail.get_body(("plain",)).get_content()
    assert "Thank you for delivering Working Together to Safeguard Children" in text
    body = mail.get_body(("html",)).get_content()
    options = dict(
        (html.unescape(label), html.unescape(href))
        for href, label in re.findall(r'<a href="([^"]+\?q=[^"]+)"[^>]*>([^<]+)</a>', body)
    )
    assert list(options) == ["1 – Very badly", "2", "3", "4", "5 – Very well"]
    app.state.clock = lambda: utc("2026-03-16 18:00")

    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            page = browser.new_page(viewport={"width": 360, "height": 640})
            page.goto(options["4"])  # "4" under the first question of the email
            assert page.locator(".context").inner_text().splitlines() == [
                "Working Together to Safeguard Children",
                "Monday 16 March 2026",
                "Your report on the session",
            ]
            assert page.get_by_text("Question 1 of 5").is_visible()
            assert page.get_by_role("radio", name="4").is_checked()
            assert_accessible(page)
            page.get_by_role("button", name="Continue").click()
            page.get_by_role("textbox").fill("11")
            page.get_by_role("button", name="Continue").click()
            page.get_by_role("textbox").fill("The projector failed after lunch")
            page.get_by_role("button", name="Continue").click()
            assert page.locator("h1").inner_text() == (
                "Did anyone raise a safeguarding concern, or make a disclosure, during the session?"
            )
            page.get_by_role("radio", name="Yes").check()
            page.get_by_role("button", name="Continue").click()
            assert page.get_by_text("Question 5 of 6").is_visible()  # the follow-up applies
            assert_accessible(page)
            page.get_by_role("textbox").fill("A disclosure about a child; passed to the MASH")
            page.get_by_role("button", name="Continue").click()
            page.get_by_role("textbox").fill("More time for the case study")
            page.get_by_role("button", name="Continue").click()
            assert page.locator("h1").inner_text() == "Check your answers"
            assert_accessible(page)
            page.get_by_role("button", name="Finish the survey").click()
            assert page.locator("h1").inner_text() == "Thank you: your answers have been sent"
            assert page.get_by_text("Your report goes to the training coordinator").is_visible()
            assert not page.get_by_text("certificate").count()
            assert_accessible(page)

            # The coordinator signs in and opens the session's page.
            page = browser.new_page(viewport={"width": 1024, "height": 800})
            page.goto(f"{base}/admin/sessions/{people['session'].id}")
            page.get_by_label("Email address").fill(CARLA)
            page.get_by_role("button", name="Send me a sign-in link").click()
            page.goto(base + wait_for_link(Path(settings.mail_dir), CARLA))
            page.get_by_role("button", name="Sign in").click()
            page.goto(f"{base}/admin/sessions/{people['session'].id}")
            section = page.locator("dl.trainer-report")
            assert page.get_by_role("heading", name="The trainer's report").is_visible()
            assert page.get_by_text(
                "Sent by Tariq Aziz on Monday 16 March 2026, 18:00"
            ).is_visible()
            shown = section.inner_text()
            assert "Overall, how well did the session go?\n4 of 5" in shown
            assert "How many delegates attended, by your own count?\n11" in shown
            assert "make a disclosure, during the session?\nYes" in shown
            assert "A disclosure about a child; passed to the MASH" in shown
            assert_accessible(page)
        finally:
            browser.close()

    session.expire_all()
    invitation = session.exec(
        select(SurveyInvitation).where(SurveyInvitation.stage == Stage.TRAINER)
    ).one()
    assert invitation.status == InvitationStatus.FINISHED
    given = {
        a.question_key: a
        for a in session.exec(select(Answer).where(Answer.invitation_id == invitation.id))
    }
    assert given["trainer_went"].value_num == 4.0
    assert given["trainer_concern"].value_text == "yes"
    assert all(a.channel == "web" for a in given.values())
