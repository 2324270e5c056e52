"""A coordinator in headless Chromium: signs in from the link in the email Evalbot sent,
uploads a booking export (a bad one, then a good one), opens a session's page and cancels a
booking on a delegate's behalf; then looks at the outbox and people pages. axe-core finds no
accessibility violation on any console page, and the pages work by keyboard."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from sqlmodel import Session, select

from bot.settings import load_settings
from bot.web.app import create_app
from surveys.models import AuditEntry, Booking, BookingStatus
from tests.conftest import utc
from tests.console_helpers import LINK, add_staff, sign_in_emails

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
NOW = utc("2026-03-02 10:00")
CARLA = "carla.mendes@partnership.example"
HEADER = (
    "booking_ref,session_ref,course_title,starts_at,ends_at,venue,delegate_name,delegate_email,"
    "agency,agency_sector,manager_name,manager_email"
)
GOOD = (
    "BK-2001,NG-2026-04-20,Neglect: Recognition and Response,20/04/2026 09:30,20/04/2026 16:30,"
    "Civic Centre,Erin Walsh,erin.walsh@riverside.example,Riverside CSC,children's social care,"
    "Bob Whitfield,bob.whitfield@riverside.example"
)
BAD = GOOD.replace("20/04/2026 09:30", "31/04/2026 09:30", 1).replace("BK-2001", "BK-2002")

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason=f"no Chromium at {CHROMIUM} (Debian package 'chromium'): the browser test cannot run",
)


@pytest.fixture
def served(database_url: str, engine, tmp_path: Path) -> Iterator[tuple[str, object]]:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    base = f"http://127.0.0.1:{listener.getsockname()[1]}"
    settings = load_settings(database_url=database_url, public_url=base, mail_dir=tmp_path / "mail")
    app = create_app(settings, engine)
    app.state.clock = lambda: NOW
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    try:
        yield base, settings
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        listener.close()


def no_violations(page, checked: list[str]) -> None:
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    assert results.violations_count == 0, f"{page.url}:\n{results.generate_report()}"
    checked.append(page.url)


def focused(page) -> str:
    return page.evaluate(
        "() => { const e = document.activeElement;"
        " return e.tagName.toLowerCase() + ':' + (e.getAttribute('href') || e.type || '') + ':'"
        " + (e.textContent || '').trim(); }"
    )


def tab_to(page, wanted: str, limit: int = 80) -> None:
    for _ in range(limit):
        page.keyboard.press("Tab")
        if wanted in focused(page):
            outline = page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle")
            assert outline != "none", f"{wanted} shows no focus outline"
            return
    raise AssertionError(f"Tab never reached {wanted!r}; focus is on {focused(page)!r}")


def wait_for_email(mail_dir: Path, timeout: float = 15.0):
    """The sign-in email, delivered by the web app just after it answered."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = sign_in_emails(mail_dir) if mail_dir.exists() else []
        if found:
            return found[-1]
        time.sleep(0.05)
    raise AssertionError("the sign-in email never arrived")


def test_a_coordinator_signs_in_imports_and_cancels_a_booking(
    served, world, database_url, engine, tmp_path
):
    from playwright.sync_api import sync_playwright

    base, settings = served
    people = world.standard()
    add_staff(database_url, CARLA, name="Carla Mendes")
    bad_csv = tmp_path / "export-bad.csv"
    bad_csv.write_text(f"{HEADER}\n{GOOD}\n{BAD}\n", encoding="utf-8")
    good_csv = tmp_path / "export.csv"
    good_csv.write_text(f"{HEADER}\n{GOOD}\n", encoding="utf-8")
    checked: list[str] = []

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=ARGS
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            # Signed out, the console sends the browser to sign in.
            page.goto(f"{base}/admin/sessions")
            assert page.url == f"{base}/admin/sign-in"
            no_violations(page, checked)
            # By keyboard: the skip link first, then the email field; Enter sends the form.
            tab_to(page, "Skip to main content")
            tab_to(page, "input:email")
            page.keyboard.type(CARLA)
            with page.expect_navigation():
                page.keyboard.press("Enter")
            assert "Check your email" in page.inner_text("h1")
            no_violations(page, checked)

            message = wait_for_email(settings.mail_dir)
            text = message.get_body(preferencelist=("plain",)).get_content()
            link = LINK.search(text)[0]
            assert link.startswith(f"{base}/admin/sign-in/")
            page.goto(link)
            assert "Carla Mendes" in page.inner_text("main")
            no_violations(page, checked)
            tab_to(page, "button:submit:Sign in")
            with page.expect_navigation():
                page.keyboard.press("Enter")
            assert page.url == f"{base}/admin/"
            assert "Carla Mendes (coordinator)" in page.inner_text("header")
            no_violations(page, checked)

            # The import: a bad export first, then a good one.
            page.click("nav >> text=Import")
            no_violations(page, checked)
            page.set_input_files("#file", str(bad_csv))
            with page.expect_navigation():
                page.click("button:has-text('Check and import')")
            assert "export-bad.csv was not imported: 1 problem" in page.inner_text("main")
            problem_rows = page.eval_on_selector_all(
                "table tbody tr", "rows => rows.map(r => r.innerText)"
            )
            assert any(row.startswith("3\tstarts_at") for row in problem_rows), problem_rows
            no_violations(page, checked)
            page.set_input_files("#file", str(good_csv))
            with page.expect_navigation():
                page.click("button:has-text('Check and import')")
            assert "1 booking row imported" in page.inner_text("main")
            no_violations(page, checked)

            # The sessions list, searched; then the session's page.
            page.click("nav >> text=Sessions")
            page.fill("#q", "WT-2026")
            with page.expect_navigation():
                page.click("button:has-text('Search')")
            no_violations(page, checked)
            with page.expect_navigation():
                page.click("text=WT-2026-03-16")
            assert "Alice Okafor" in page.inner_text("main")
            no_violations(page, checked)

            # Cancel Alice's booking, by keyboard, after the confirmation step.
            tab_to(page, "Cancel booking BK-1001 for Alice Okafor")
            with page.expect_navigation():
                page.keyboard.press("Enter")
            assert "A cancellation in time" in page.inner_text("main")
            no_violations(page, checked)
            tab_to(page, "textarea")
            page.keyboard.type("Called in sick; asked the training team to cancel.")
            tab_to(page, "button:submit:Cancel booking BK-1001")
            with page.expect_navigation():
                page.keyboard.press("Enter")
            assert "is cancelled" in page.inner_text("main")
            no_violations(page, checked)

            # The other pages built here, as a coordinator sees them.
            for path in (
                "/admin/",
                "/admin/outbox",
                "/admin/people?q=okafor",
                f"/admin/people/{people['chloe'].id}",
                f"/admin/people/{people['chloe'].id}/erase",
                "/admin/sessions?when=past",
                "/admin/sessions?date=not-a-date",
            ):
                page.goto(base + path)
                no_violations(page, checked)
        finally:
            browser.close()

    with Session(engine) as session:
        booking = session.exec(select(Booking).where(Booking.ref == "BK-1001")).one()
        assert booking.status == BookingStatus.CANCELLED
        assert booking.cancel_reason.startswith("Called in sick")
        assert session.exec(select(Booking).where(Booking.ref == "BK-2001")).first() is not None
        assert session.exec(select(Booking).where(Booking.ref == "BK-2002")).first() is None
        actors = {
            entry.action: entry.actor
            for entry in session.exec(select(AuditEntry)).all()
            if entry.actor.startswith("staff:")
        }
    assert actors["booking.cancelled"] == f"staff:{CARLA}"
    assert actors["bookings.imported"] == f"staff:{CARLA}"
    assert len(checked) >= 18
