"""The pages a person lands on without a working survey: the root, a missing page, a closed
survey and a no-show's evaluation link, in headless Chromium with axe-core finding nothing."""

from __future__ import annotations

import socket
import threading
from datetime import timedelta
from pathlib import Path

import pytest
import uvicorn
from playwright.sync_api import sync_playwright

from bot.web.app import create_app
from schedules.policy import load_policy
from schedules.tick import tick
from tests.conftest import utc
from tests.test_attendance import marked
from tests.test_browser_form import CHROMIUM, launch
from tests.test_cancellation import Mailbox, link_in, make_settings, to

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason=f"no Chromium at {CHROMIUM} (Debian package 'chromium'): the browser test cannot run",
)

END = utc("2026-03-16 16:30")


@pytest.fixture
def served_at(engine):
    """Start the app under uvicorn on a loopback port with given settings and clock."""
    started = []

    def serve(settings, now):
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        app = create_app(settings, engine)
        app.state.clock = lambda: now
        server = uvicorn.Server(
            uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
        )
        thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
        thread.start()
        started.append((server, thread, listener))
        return f"http://127.0.0.1:{listener.getsockname()[1]}", app

    yield serve
    for server, thread, listener in started:
        server.should_exit = True
        thread.join(timeout=10)
        listener.close()


def evaluation(mails, who):
    return next(m for m in to(mails, who) if m.subject.startswith("How was"))


def no_violations(page) -> None:
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    assert results.violations_count == 0, results.generate_report()


def test_pages_without_a_survey_read_well_and_name_the_team(
    served_at, world, session, engine, database_url, tmp_path: Path
):
    settings = make_settings(database_url, tmp_path)
    policy = load_policy({})
    people = world.standard()
    for now in (utc("2026-03-02 09:00"), END):
        tick(engine, now=now, policy=policy, zone=settings.zone, secret=settings.secret)
    mails = Mailbox(engine, settings).deliver(END)
    chloe = link_in(evaluation(mails, "chloe.obrien").text, "/s/")
    alice = link_in(evaluation(mails, "alice.okafor").text, "/s/")
    marked(session, people, policy)
    tick(engine, now=END + timedelta(hours=3), policy=policy, zone=settings.zone,
         secret=settings.secret)  # fmt: skip
    base, _app = served_at(settings, utc("2026-04-01 10:00"))
    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            page = browser.new_page(viewport={"width": 375, "height": 740})
            for path, heading in (
                ("/", "training evaluation"),
                ("/no-such-page", "Page not found"),
                (chloe, "The register shows you did not attend"),
                (alice, "This survey has closed"),
            ):
                page.goto(base + path)
                assert heading in page.locator("h1").inner_text(), path
                assert page.locator('a[href="mailto:training@partnership.example"]').count(), path
                no_violations(page)
        finally:
            browser.close()
