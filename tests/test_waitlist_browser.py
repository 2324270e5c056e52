"""The place offer page in headless Chromium: seen, accepted by keyboard, then refused when used
again, each page checked by axe-core for accessibility violations."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from axe_playwright_python.sync_playwright import Axe
from sqlmodel import Session, select

from bot.settings import load_settings
from bot.web.app import create_app
from schedules.cancellation import cancel_booking
from schedules.offers import offer_subject
from schedules.policy import load_policy
from schedules.tick import tick
from surveys import tokens
from surveys.models import Booking, BookingStatus, LinkPurpose, PlaceOffer
from tests.conftest import utc

CHROMIUM = Path("/usr/bin/chromium")
IN_TIME = utc("2026-03-12 12:00")
POLICY = load_policy({})

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason=f"no Chromium at {CHROMIUM} (Debian package 'chromium'): the browser test cannot run",
)


@pytest.fixture
def site(database_url: str, engine, tmp_path: Path) -> Iterator[tuple[str, Any]]:
    """The app under uvicorn on a loopback port, its clock an hour after the offer."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    base = f"http://127.0.0.1:{listener.getsockname()[1]}"
    settings = load_settings(database_url=database_url, public_url=base, mail_dir=tmp_path / "m")
    app = create_app(settings, engine)
    app.state.clock = lambda: IN_TIME + timedelta(hours=1)
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


def no_violations(page: Any) -> None:
    results = Axe().run(page)
    assert results.violations_count == 0, results.generate_report()


def test_an_offer_is_accepted_in_the_browser_and_its_link_then_explains(
    site, world, session: Session, engine
):
    base, settings = site
    people = world.standard()
    wen = world.person("Wen Li", "wen@riverside.example", people["riverside"])
    world.booking(people["session"], wen, people["bob"], "BK-W1", status=BookingStatus.WAITING)
    session.commit()
    cancel_booking(
        session,
        session.get(Booking, people["alice_booking"].id),  # type: ignore[arg-type]
        now=IN_TIME,
        policy=POLICY,
        zone=settings.zone,
        secret=settings.secret,
        actor="test",
    )
    session.commit()
    tick(engine, now=IN_TIME, policy=POLICY, zone=settings.zone, secret=settings.secret)
    offer = session.exec(select(PlaceOffer)).one()
    token = tokens.make_token(settings.secret, LinkPurpose.OFFER, offer_subject(offer))

    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        page = browser.new_page(viewport={"width": 390, "height": 844})
        page.goto(f"{base}/offer/{token}")
        assert page.locator("h1").inner_text() == "A place for you"
        assert "open until 11:59 on Friday 13 March 2026" in page.content()
        no_violations(page)
        for _ in range(10):  # by keyboard alone
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.textContent.trim()") == "Accept the place":
                break
        with page.expect_navigation():
            page.keyboard.press("Enter")
        assert page.locator("h1").inner_text() == "The place is yours"
        no_violations(page)

        page.goto(f"{base}/offer/{token}")
        assert page.locator("h1").inner_text() == "This offer cannot be accepted"
        assert "You have already accepted this place" in page.content()
        no_violations(page)
        browser.close()
    session.expire_all()
    booking = session.exec(select(Booking).where(Booking.ref == "BK-W1")).one()
    assert booking.status == BookingStatus.BOOKED
