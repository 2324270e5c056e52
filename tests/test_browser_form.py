"""A survey answered in headless Chromium on a phone-sized screen, by keyboard alone.

The app runs under uvicorn on a loopback port; the test opens the link an invitation email gives
(with the first answer chosen in the email), answers every question with Tab, Space, the arrow
keys, Enter and typing, finishes, and finds the answers in the database.
"""

from __future__ import annotations

import email
import email.policy
import html
import re
import socket
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import uvicorn
from sqlmodel import Session, select
from typer.testing import CliRunner

from bot.cli import app as cli
from bot.settings import load_settings
from bot.web.app import create_app
from surveys import tokens
from surveys.models import Answer, InvitationStatus, LinkPurpose, Stage, SurveyInvitation
from tests.conftest import utc

CHROMIUM = Path("/usr/bin/chromium")
NOW = utc("2026-06-15 09:00")

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason=f"no Chromium at {CHROMIUM} (Debian package 'chromium'): the browser test cannot run",
)


@pytest.fixture
def served(database_url: str, engine, tmp_path: Path) -> Iterator[tuple[str, object]]:
    """The app under uvicorn on a loopback port; yields its base URL and settings."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)  # connections wait in the backlog until the server takes them
    base = f"http://127.0.0.1:{listener.getsockname()[1]}"
    settings = load_settings(database_url=database_url, public_url=base, mail_dir=tmp_path / "mail")
    app = create_app(settings, engine)
    app.state.clock = lambda: NOW  # a test may move it: served[2].state.clock = ...
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    try:
        yield base, settings, app
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        listener.close()


def active(page) -> str:
    """What has keyboard focus: tag, type and value or text, e.g. ``input:radio:4``."""
    return page.evaluate(
        """() => { const e = document.activeElement;
                   const kind = e.type ? ':' + e.type : '';
                   const what = e.value !== undefined && e.tagName !== 'BUTTON' ? e.value : e.textContent.trim();
                   return e.tagName.toLowerCase() + kind + ':' + what; }"""
    )


def tab_to(page, wanted: str, limit: int = 40) -> None:
    """Press Tab until focus is on ``wanted`` (an ``active()`` prefix)."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if active(page).startswith(wanted):
            return
    raise AssertionError(f"Tab never reached {wanted!r}; focus is on {active(page)!r}")


def choose_on_scale(page, value: int) -> None:
    """Into the radio group with Tab, along it with the arrow keys, then Continue with Enter."""
    tab_to(page, "input:radio:1")
    for _ in range(value - 1):
        page.keyboard.press("ArrowDown")
    assert active(page) == f"input:radio:{value}"
    continue_with_enter(page)


def continue_with_enter(page) -> None:
    tab_to(page, "button:submit:Continue")
    outline = page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none", "the focused button shows no focus outline"
    with page.expect_navigation():
        page.keyboard.press("Enter")


def launch(playwright):
    return playwright.chromium.launch(
        executable_path=str(CHROMIUM),
        headless=True,
        args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
    )


def test_a_delegate_answers_the_impact_survey_by_keyboard_on_a_phone(
    served, session: Session, world
):
    base, settings, _app = served
    people = world.standard()
    booking = people["chloe_booking"]
    invitation = SurveyInvitation(
        booking_id=booking.id,
        person_id=booking.delegate_id,
        stage=Stage.IMPACT,
        opens_at=NOW - timedelta(days=1),
        closes_at=NOW + timedelta(days=27),
        status=InvitationStatus.OPEN,
    )
    session.add(invitation)
    session.flush()
    token = tokens.issue(
        session,
        settings.secret,
        LinkPurpose.SURVEY,
        subject=f"invitation:{invitation.id}",
        invitation_id=invitation.id,
        expires_at=invitation.closes_at,
    )
    session.commit()

    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            page = browser.new_page(
                viewport={"width": 360, "height": 640}, java_script_enabled=False
            )
            # The "No" link under the first question of the invitation email.
            page.goto(f"{base}/s/{token}?q=applied&a=no")
            assert (
                page.locator("h1").inner_text()
                == "Have you used what you learned on the course in your work?"
            )
            assert (
                page.locator(".context strong").inner_text()
                == "Working Together to Safeguard Children"
            )
            assert page.get_by_text("Question 1 of 8").is_visible()
            assert page.get_by_role("radio", name="No").is_checked()
            fits = page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
            assert fits, "the page scrolls sideways on a 360px screen"
            tab_to(page, "input:radio:no")  # Tab lands on the chosen answer
            continue_with_enter(page)

            # Barriers: checkboxes, chosen with Space.
            assert page.get_by_role(
                "group", name="What has got in the way of using what you learned?"
            ).is_visible()
            assert page.get_by_text("Question 2 of 9").is_visible()
            tab_to(page, "input:checkbox:time")
            page.keyboard.press("Space")
            tab_to(page, "input:checkbox:other")
            page.keyboard.press("Space")
            continue_with_enter(page)

            # Free text, typed, with a name that breaks careless escaping.
            tab_to(page, "textarea")
            page.keyboard.type("Cover for O'Brien <script> on leave")
            continue_with_enter(page)

            # A required question left unanswered: the error summary takes focus.
            assert (
                "knowledge of how to recognise the signs of neglect"
                in page.locator("h1").inner_text()
            )
            continue_with_enter(page)
            assert page.locator(".error-summary").is_visible()
            assert active(page).startswith("div:")  # the summary, read out first
            assert page.get_by_role("alert").inner_text().count("Choose a number from 1 to 5.") == 1

            for value in (3, 4, 2, 4, 5, 3):
                choose_on_scale(page, value)

            tab_to(page, "textarea")  # optional: a few words
            page.keyboard.type("Supervision on neglect cases")
            continue_with_enter(page)

            assert page.locator("h1").inner_text() == "Check your answers"
            assert page.get_by_text("Cover for O'Brien <script> on leave").is_visible()
            tab_to(page, "button:submit:Finish the survey")
            with page.expect_navigation():
                page.keyboard.press("Enter")
            assert page.locator("h1").inner_text() == "Thank you: your answers have been sent"
        finally:
            browser.close()

    session.expire_all()
    rows = {
        a.question_key: a
        for a in session.exec(select(Answer).where(Answer.invitation_id == invitation.id))
    }
    assert rows["applied"].value_text == "no" and rows["applied"].value_num == 0.0
    assert rows["barriers"].value_json == ["time", "other"]
    assert rows["barriers_other"].value_text == "Cover for O'Brien <script> on leave"
    assert [rows[f"knowledge.{n}"].value_num for n in range(3)] == [3.0, 4.0, 2.0]
    assert [rows[f"confidence.{n}"].value_num for n in range(3)] == [4.0, 5.0, 3.0]
    assert rows["confidence.1"].measure == "confidence" and rows["confidence.1"].outcome_index == 1
    assert rows["further_support"].value_text == "Supervision on neglect cases"
    assert all(a.channel == "web" for a in rows.values())
    finished = session.get(SurveyInvitation, invitation.id)
    assert finished.status == InvitationStatus.FINISHED and finished.finished_at == NOW


def test_the_pre_course_survey_from_the_email_evalbot_sent(
    served, session: Session, world, database_url: str, tmp_path: Path, monkeypatch
):
    """The real path: the tick plans and sends the invitation; its email's "4" opens the form."""
    base, _settings, app = served
    people = world.standard()
    monkeypatch.setenv("EVALBOT_DATABASE_URL", database_url)
    monkeypatch.setenv("EVALBOT_PUBLIC_URL", base)
    monkeypatch.setenv("EVALBOT_MAIL_DIR", str(tmp_path / "sent"))
    ticked = CliRunner().invoke(cli, ["tick", "--now", "2026-03-10T10:00"])
    assert ticked.exit_code == 0, ticked.output
    mails = [
        email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        for path in sorted((tmp_path / "sent").glob("*.eml"))
    ]
    invitation_mail = next(
        m for m in mails if m["Subject"].startswith("Before ") and "chloe" in m["To"]
    )
    body = invitation_mail.get_body(("html",)).get_content()
    options = dict(
        (html.unescape(label), html.unescape(href))
        for href, label in re.findall(r'<a href="([^"]+\?q=[^"]+)"[^>]*>([^<]+)</a>', body)
    )
    assert list(options) == ["1 – Very little", "2", "3", "4", "5 – Very well"]
    app.state.clock = lambda: utc("2026-03-10 18:30")  # she opens it that evening
    invitation = session.exec(
        select(SurveyInvitation).where(
            SurveyInvitation.person_id == people["chloe"].id, SurveyInvitation.stage == Stage.PRE
        )
    ).one()

    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            page = browser.new_page(
                viewport={"width": 320, "height": 568}, java_script_enabled=False
            )
            page.goto(options["4"])
            assert page.locator(".context strong").inner_text() == (
                "Working Together to Safeguard Children"
            )
            assert "Monday 16 March 2026" in page.locator(".context").inner_text()
            assert page.get_by_text("Question 1 of 7").is_visible()
            group = page.get_by_role(
                "group",
                name="Before the course, how would you rate your knowledge of how to "
                "recognise the signs of neglect?",
            )
            assert group.get_by_role("radio", name="4").is_checked()
            session.expire_all()
            assert session.exec(select(Answer)).all() == [], "opening the link saved something"
            tab_to(page, "input:radio:4")
            continue_with_enter(page)
            for value in (2, 3, 4, 4, 5):
                choose_on_scale(page, value)
            assert page.get_by_role("textbox").get_attribute("aria-describedby") == (
                "answer-hint answer-limit"
            )
            tab_to(page, "textarea")
            page.keyboard.type("Work with O'Brien <Health & Care> on referrals")
            continue_with_enter(page)

            # Change one answer from the last look, by keyboard, and come back to it.
            assert page.locator("h1").inner_text() == "Check your answers"
            tab_to(page, "a:Change your answer to: How confident are you now that you can make")
            with page.expect_navigation():
                page.keyboard.press("Enter")
            assert page.get_by_role("radio", name="5 – Very confident").is_checked()
            tab_to(page, "input:radio:5")
            page.keyboard.press("ArrowUp")
            continue_with_enter(page)
            assert page.locator("h1").inner_text() == "Check your answers"
            tab_to(page, "button:submit:Finish the survey")
            with page.expect_navigation():
                page.keyboard.press("Enter")
            assert page.locator("h1").inner_text() == "Thank you: your answers have been sent"
            assert page.get_by_text("We will ask you the same questions").is_visible()
        finally:
            browser.close()

    session.expire_all()
    rows = {
        a.question_key: a
        for a in session.exec(select(Answer).where(Answer.invitation_id == invitation.id))
    }
    assert [rows[f"knowledge.{n}"].value_num for n in range(3)] == [4.0, 2.0, 3.0]
    assert [rows[f"confidence.{n}"].value_num for n in range(3)] == [4.0, 4.0, 4.0]
    assert rows["expectations"].value_text == "Work with O'Brien <Health & Care> on referrals"
    session.refresh(invitation)
    assert invitation.status == InvitationStatus.FINISHED
