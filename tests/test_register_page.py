"""The trainer's register behind the personal link in the register reminder.

The course starts on Monday 16 March 2026 at 09:30 and ends at 16:30 (GMT); the reminder goes out
24 hours after the end, on Tuesday 17 March at 16:30. Everything is done through the web app, and
its effects are those of ``evalbot attendance ... --close``: notices at the next tick, corrections
after closing.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, select

from bot.settings import Settings
from schedules.register_links import register_token
from surveys.models import (
    AuditEntry,
    Booking,
    CourseSession,
    OutboxMessage,
    SessionStatus,
)
from tests.conftest import utc
from tests.test_cancellation import client_at, link_in, make_settings, read_mail
from tests.timeline import Timeline, at

TARIQ = "tariq.aziz@partnership.example"
EVENING = utc("2026-03-17 17:00")  # the trainer opens the reminder


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return make_settings(database_url, tmp_path)


@pytest.fixture
def people(world):
    return world.standard()


def reminder_link(engine, settings: Settings) -> str:
    """Plays the course through the tick until the register reminder is sent; its link."""
    timeline = Timeline(engine, settings)
    for moment in ("2026-03-02 09:00", "2026-03-16 16:30", "2026-03-17 16:30"):
        timeline.tick(moment)
    mails = [read_mail(path) for path in sorted(Path(settings.mail_dir).glob("*.eml"))]
    (reminder,) = [m for m in mails if TARIQ in m.to and "Register" in m.subject]
    for body in (reminder.text, reminder.html):
        assert "evalbot attendance" not in body, "the email still shows a command"
        assert "--close" not in body
    assert 'href="http://testserver/register/' in reminder.html
    return link_in(reminder.text, "/register/")


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, "no form token on the page"
    return found.group(1)


def statuses(session: Session, people) -> tuple[str, str]:
    session.expire_all()
    alice = session.get(Booking, people["alice_booking"].id)
    chloe = session.get(Booking, people["chloe_booking"].id)
    assert alice is not None and chloe is not None
    return str(alice.status), str(chloe.status)


def queued(session: Session, template: str) -> list[str]:
    session.expire_all()
    rows = session.exec(select(OutboxMessage).where(OutboxMessage.template == template)).all()
    return sorted(row.recipient for row in rows)


def test_a_trainer_marks_and_closes_the_register_from_the_reminder(
    people, session, engine, settings
):
    link = reminder_link(engine, settings)
    client = client_at(settings, engine, EVENING)
    alice_id, chloe_id = people["alice_booking"].id, people["chloe_booking"].id

    page = client.get(link)
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-store"
    assert "WT-2026-03-16" in page.text and "Working Together" in page.text
    assert "Chloé O&#39;Brien &lt;Health &amp; Care&gt;" in page.text and "<Health" not in page.text
    assert "2 of 2 still to mark" in page.text
    assert statuses(session, people) == ("booked", "booked")  # a GET changes nothing
    csrf = csrf_of(page.text)

    # A form from elsewhere, or without the page's token, changes nothing.
    forged = client.post(link, data={"csrf": "x", f"mark-{alice_id}": "attended"})
    assert forged.status_code == 403 and "Nothing was changed" in forged.text
    elsewhere = client.post(
        link,
        data={"csrf": csrf, f"mark-{alice_id}": "attended"},
        headers={"Origin": "https://evil.example"},
    )
    assert elsewhere.status_code == 403
    nonsense = client.post(link, data={"csrf": csrf, f"mark-{alice_id}": "asleep"})
    assert nonsense.status_code == 422 and "&#39;asleep&#39; is not a mark" in nonsense.text
    assert statuses(session, people) == ("booked", "booked")

    # Closing with a delegate unmarked: the marks made are kept, the register stays open.
    early = client.post(
        link, data={"csrf": csrf, f"mark-{alice_id}": "attended", "action": "close"}
    )
    assert early.status_code == 409
    assert "1 still to mark: Chloé O&#39;Brien" in early.text
    assert statuses(session, people) == ("attended", "booked")

    saved = client.post(
        link,
        data={"csrf": csrf, f"mark-{alice_id}": "attended", f"mark-{chloe_id}": "no-show"},
        follow_redirects=False,
    )
    assert saved.status_code == 303
    assert "Saved: 1 mark changed." in client.get(saved.headers["location"]).text
    assert statuses(session, people) == ("attended", "no-show")

    confirm = client.post(link, data={"csrf": csrf, "action": "close"})
    assert confirm.status_code == 200 and "Close the register?" in confirm.text
    assert "Attended: 1" in confirm.text and "No-show: 1" in confirm.text
    session.expire_all()
    assert session.get(CourseSession, people["session"].id).register_closed_at is None

    closed = client.post(f"{link}/close", data={"csrf": csrf})
    assert closed.status_code == 200 and "The register is closed" in closed.text
    session.expire_all()
    course_session = session.get(CourseSession, people["session"].id)
    assert course_session.register_closed_at == EVENING
    entry = session.exec(select(AuditEntry).where(AuditEntry.action == "register.closed")).one()
    assert entry.actor == f"register-link:{TARIQ}"
    assert entry.detail["marks"] == {"attended": 1, "partly attended": 0, "no-show": 1}
    again = client.post(f"{link}/close", data={"csrf": csrf})
    assert "The register was already closed" in again.text

    # The next tick sends the no-show notices, as after `evalbot attendance ... --close`.
    timeline = Timeline(engine, settings)
    assert timeline.tick(at("2026-03-17 17:01")).no_show_notices == 1
    assert queued(session, "no-show-delegate") == ["chloe.obrien@northgate.example"]
    assert queued(session, "no-show-manager") == ["dev.patel@northgate.example"]

    # A correction after closing, as the CLI's: audited, and the notices are corrected.
    page = client.get(link)
    assert "The register was closed at 17:00 on Tuesday 17 March 2026" in page.text
    assert "Save corrections" in page.text and "Save and close" not in page.text
    corrected = client.post(
        link,
        data={"csrf": csrf, f"mark-{alice_id}": "attended", f"mark-{chloe_id}": "attended"},
        follow_redirects=False,
    )
    assert corrected.status_code == 303
    assert statuses(session, people) == ("attended", "attended")
    change = session.exec(select(AuditEntry).where(AuditEntry.action == "attendance.changed")).one()
    assert change.actor == f"register-link:{TARIQ}" and change.detail["previous"] == "no-show"
    assert queued(session, "no-show-correction") == [
        "chloe.obrien@northgate.example",
        "dev.patel@northgate.example",
    ]


def test_unknown_expired_and_cancelled_links_get_a_clear_page(people, session, engine, settings):
    token = register_token(session, settings.secret, people["session"])
    session.commit()
    client = client_at(settings, engine, EVENING)
    assert client.get(f"/register/{token}").status_code == 200

    unknown = client.get(f"/register/{token[:-2]}xy")
    assert unknown.status_code == 404 and "This link does not work" in unknown.text
    assert "WT-2026-03-16" not in unknown.text

    late = client_at(settings, engine, people["session"].ends_at + timedelta(days=31))
    expired = late.get(f"/register/{token}")
    assert expired.status_code == 404 and "This link does not work" in expired.text

    course_session = session.get(CourseSession, people["session"].id)
    course_session.status = SessionStatus.CANCELLED
    session.add(course_session)
    session.commit()
    cancelled = client.get(f"/register/{token}")
    assert cancelled.status_code == 410
    assert "This session was cancelled" in cancelled.text and "WT-2026-03-16" in cancelled.text
    post = client.post(f"/register/{token}/close", data={"csrf": "anything"})
    assert post.status_code == 410
    session.expire_all()
    assert session.get(CourseSession, people["session"].id).register_closed_at is None


def test_a_register_not_yet_open_says_when_it_opens(people, session, engine, settings):
    token = register_token(session, settings.secret, people["session"])
    session.commit()
    page = client_at(settings, engine, utc("2026-03-16 09:00")).get(f"/register/{token}")
    assert page.status_code == 200
    assert "The register opens at 09:15 on Monday 16 March 2026" in page.text
    assert "<form" not in page.text


def test_a_new_trainer_gets_a_new_link_and_the_old_one_stops(
    people, world, session, engine, settings
):
    old = register_token(session, settings.secret, people["session"])
    course_session = session.get(CourseSession, people["session"].id)
    other = world.person("Nadia Hussain", "nadia.hussain@partnership.example")
    course_session.trainer_id = other.id
    session.add(course_session)
    new = register_token(session, settings.secret, course_session)
    session.commit()
    client = client_at(settings, engine, EVENING)
    assert old != new
    assert client.get(f"/register/{old}").status_code == 404
    assert client.get(f"/register/{new}").status_code == 200


def test_a_coordinator_gives_the_trainer_the_link_from_the_session_page(
    people, session, engine, settings, database_url
):
    from bot.web.app import create_app
    from tests.console_helpers import Clock, csrf
    from tests.console_pages import CARLA, VIC, add_console_staff, signed_in

    add_console_staff(database_url)
    app = create_app(settings, engine)
    app.state.clock = Clock(EVENING)
    coordinator = signed_in(app, settings.mail_dir, CARLA)
    page = coordinator.get(f"/admin/sessions/{people['session'].id}")
    path = f"/admin/sessions/{people['session'].id}/register-link"
    assert f'href="{path}"' in page.text

    viewer = signed_in(app, settings.mail_dir, VIC)
    seen = viewer.get(path)
    assert seen.status_code == 200 and "only a coordinator can see the link" in seen.text
    assert "/register/" not in seen.text
    assert viewer.post(path, data={"csrf_token": csrf(seen.text)}).status_code == 403

    explained = coordinator.get(path)
    assert "/register/" not in explained.text  # a GET records and shows nothing
    shown = coordinator.post(path, data={"csrf_token": csrf(explained.text)})
    assert shown.status_code == 200
    link = link_in(shown.text, "/register/")
    entry = session.exec(select(AuditEntry).where(AuditEntry.action == "register.link_shown")).one()
    assert entry.actor == f"staff:{CARLA}"
    # The link is the trainer's own register, with no account.
    register = client_at(settings, engine, EVENING).get(link)
    assert register.status_code == 200 and "2 of 2 still to mark" in register.text


def test_the_telegram_reminder_carries_the_link_too(people, session, engine, settings):
    from tests.test_cancellation import telegram_texts

    link = reminder_link(engine, settings)
    session.expire_all()
    text = telegram_texts(session, settings)["register-reminder"]
    assert f'<a href="http://testserver{link}">Mark and close the register</a>' in text
    assert "evalbot attendance" not in text
