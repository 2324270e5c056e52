"""A coordinator, signed in from the emailed link in headless Chromium, previews and confirms a
reminder campaign and watches its progress; axe-core finds nothing wrong on the Responses,
Campaigns and Reports pages."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlmodel import Session, func, select

from surveys.models import Campaign, Stage
from tests.accessibility import assert_accessible
from tests.conftest import utc
from tests.console_helpers import wait_for_link
from tests.console_pages import CARLA, add_console_staff, answer
from tests.test_browser_form import CHROMIUM, launch, served
from tests.test_cancellation import Mailbox
from tests.timeline import Timeline, at

__all__ = ["served"]  # the fixture, shared with the survey form's browser tests

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason=f"no Chromium at {CHROMIUM} (Debian package 'chromium'): the browser test cannot run",
)
NOW = utc("2026-03-10 10:00")


def test_a_coordinator_runs_a_campaign_and_reads_responses_and_reports(
    served, session: Session, world, database_url: str, tmp_path: Path
):
    base, settings, app = served
    people = world.standard()
    add_console_staff(database_url)
    timeline = Timeline(app.state.engine, settings)
    for moment in ("2026-03-02 09:00", "2026-03-09 09:30"):
        timeline.tick(moment)
    answer(
        app.state.engine,
        "BK-1001",
        Stage.PRE,
        {"knowledge": ["2", "2", "3"], "expectations": "Practical <b>examples</b>"},
        at("2026-03-09 12:00"),
        finish=False,
    )
    app.state.clock = lambda: NOW
    app.state.settings = settings.model_copy(update={"reports_dir": tmp_path / "reports"})

    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            page = browser.new_page(viewport={"width": 1024, "height": 800})
            # Sign in with the link from the email Evalbot sent.
            page.goto(f"{base}/admin/campaigns")
            assert page.url == f"{base}/admin/sign-in"
            page.get_by_label("Email address").fill(CARLA)
            with page.expect_navigation():
                page.get_by_role("button", name="Send me a sign-in link").click()
            assert page.get_by_text(CARLA).is_visible()
            page.goto(base + wait_for_link(Path(settings.mail_dir), CARLA))
            page.get_by_role("button", name="Sign in").click()
            assert page.locator("h1").inner_text() == "Dashboard"

            # Campaigns: choose the reminder for the pre-course survey, preview, confirm.
            page.get_by_role("navigation", name="Console sections").get_by_role(
                "link", name="Campaigns"
            ).click()
            assert page.locator("h1").inner_text() == "Campaigns"
            assert_accessible(page)
            remind = page.locator("form", has=page.locator("input[value=remind]"))
            remind.get_by_label("Survey").select_option("pre")
            remind.get_by_role("button", name="Preview the reminder campaign").click()
            assert "Preview: nothing has been sent" in page.locator("h1").inner_text()
            assert page.get_by_text(
                "Alice Okafor, Chloé O'Brien <Health & Care>", exact=True
            ).is_visible()
            assert page.get_by_role("region", name="Message text").is_visible()
            assert_accessible(page)
            with Session(app.state.engine) as check:
                assert check.exec(select(func.count()).select_from(Campaign)).one() == 0
            # Alice has started hers, Chloé has not: both are reminded (neither has finished).
            page.get_by_role("button", name=re.compile(r"Confirm and queue 2 messages")).click()
            assert re.fullmatch(rf"{base}/admin/campaigns/\d+", page.url)
            assert page.locator('[data-count="total"]').inner_text() == "2"
            assert page.locator('[data-count="waiting"]').inner_text() == "2"
            assert_accessible(page)

            # The runner delivers; the page's own script brings the figures up to date.
            # (in a thread of its own: Playwright's event loop runs in this one)
            mailbox = Mailbox(app.state.engine, app.state.settings)
            with ThreadPoolExecutor(1) as pool:
                pool.submit(mailbox.deliver, NOW).result()
            page.wait_for_function(
                "() => document.querySelector('[data-count=\"sent\"]').textContent === '2'",
                timeout=15000,
            )
            assert page.locator('[data-count="waiting"]').inner_text() == "0"
            page.get_by_role("link", name="Back to campaigns").click()
            assert page.get_by_role("link", name=re.compile(r"Reminder \d+")).is_visible()
            assert_accessible(page)

            # Responses: the index, a session's page.
            page.goto(f"{base}/admin/responses")
            assert_accessible(page)
            page.get_by_role("link", name="Working Together to Safeguard Children").click()
            assert page.get_by_text("Practical <b>examples</b>").is_visible()
            assert_accessible(page)
            page.goto(f"{base}/admin/responses/session/{people['session'].id}")
            assert page.get_by_text("Practical <b>examples</b>").is_visible()
            assert_accessible(page)

            # The trainer's register link, from the session's page.
            page.goto(f"{base}/admin/sessions/{people['session'].id}")
            page.get_by_role("link", name="The trainer's register link").click()
            assert_accessible(page)
            page.get_by_role("button", name="Show the register link").click()
            assert page.locator(".banner a[href*='/register/']").is_visible()
            assert_accessible(page)

            # Reports: produce the quarter, then its page.
            page.goto(f"{base}/admin/reports")
            assert_accessible(page)
            page.get_by_label("Quarter").select_option("2026Q1")
            page.get_by_role("button", name="Produce the report").click()
            assert page.url == f"{base}/admin/reports/2026Q1"
            assert_accessible(page)
            with page.expect_download() as download:
                page.get_by_role(
                    "link", name="Download the report with its CSV files (zip)"
                ).click()
            assert download.value.suggested_filename == "evalbot-report-2026Q1.zip"

            # Certificates for an agency: the form, by its label, then the download or a page
            # saying there is none yet.
            page.goto(f"{base}/admin/reports")
            page.get_by_role("link", name="download an agency's in one file").click()
            assert page.url == f"{base}/admin/certificates"
            assert_accessible(page)
            page.get_by_label("Agency").select_option(label="Northgate NHS Trust")
            page.get_by_role("button", name="Download the certificates (PDF)").click()
            assert page.get_by_role("heading", name="No certificates to download").is_visible()
            assert_accessible(page)
        finally:
            browser.close()
