"""The Campaigns pages: choose, preview (who and one rendered message, nothing written),
confirm (coordinators only, with the CSRF token), watch progress, and see past campaigns."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func
from sqlmodel import Session, col, select

from bot.web.app import create_app
from surveys.models import AuditEntry, Campaign, OutboxMessage
from tests.conftest import utc
from tests.console_helpers import Clock, csrf
from tests.console_pages import CARLA, VIC, add_console_staff, signed_in
from tests.test_cancellation import Mailbox
from tests.timeline import Timeline

NOW = utc("2026-03-10 10:00")  # the pre-course surveys are open; nobody has finished one
PREVIEW = "/admin/campaigns/preview?kind=remind&stage=pre&course=&session=&agency="


@pytest.fixture
def app(world, engine, settings, database_url):
    world.standard()
    add_console_staff(database_url)
    timeline = Timeline(engine, settings)
    for moment in ("2026-03-02 09:00", "2026-03-09 09:30"):
        timeline.tick(moment)
    app = create_app(settings, engine)
    app.state.clock = Clock(NOW)
    return app


def campaign_rows(engine) -> tuple[int, int, int]:
    with Session(engine) as session:
        return (
            session.exec(select(func.count()).select_from(Campaign)).one(),
            session.exec(
                select(func.count())
                .select_from(OutboxMessage)
                .where(col(OutboxMessage.campaign_id).is_not(None))
            ).one(),
            session.exec(
                select(func.count())
                .select_from(AuditEntry)
                .where(AuditEntry.action == "campaign.run")
            ).one(),
        )


def test_a_coordinator_previews_confirms_and_watches_a_reminder_campaign(app, engine, settings):
    client = signed_in(app, settings.mail_dir, CARLA)
    page = client.get("/admin/campaigns")
    assert page.status_code == 200
    assert "Preview the reminder campaign" in page.text and "No campaigns yet." in page.text

    preview = client.get(PREVIEW)
    assert preview.status_code == 200
    text = preview.text
    assert "Preview: nothing has been sent" in text
    assert "<dt>To message</dt><dd>2 (2 by email)</dd>" in text
    assert "Alice Okafor, Chloé O&#39;Brien &lt;Health &amp; Care&gt;" in text
    # One message, rendered as the first recipient would get it, with her personal link.
    assert "The message Alice Okafor would get" in text
    assert "alice.okafor@riverside.example" in text
    assert re.search(r"http://127.0.0.1:8000/s/[A-Za-z0-9_-]{20,}", text)
    assert "Confirm and queue 2 messages" in text
    assert campaign_rows(engine) == (0, 0, 0), "a preview wrote something"

    form = {"kind": "remind", "stage": "pre"}
    # Without the session's CSRF token nothing happens.
    stale = client.post("/admin/campaigns", data=form | {"csrf_token": "forged"})
    assert stale.status_code == 400 and "This form has expired" in stale.text
    assert campaign_rows(engine) == (0, 0, 0)

    done = client.post(
        "/admin/campaigns", data=form | {"csrf_token": csrf(text)}, follow_redirects=False
    )
    assert done.status_code == 303
    progress_path = done.headers["location"]
    assert re.fullmatch(r"/admin/campaigns/\d+", progress_path)
    assert campaign_rows(engine) == (1, 2, 1)
    with Session(engine) as session:
        entry = session.exec(select(AuditEntry).where(AuditEntry.action == "campaign.run")).one()
        assert entry.actor == f"staff:{CARLA}"

    progress = client.get(progress_path)
    assert progress.status_code == 200
    assert 'data-count="total">2<' in progress.text and 'data-count="waiting">2<' in progress.text
    assert 'data-count="sent">0<' in progress.text
    assert client.get(f"{progress_path}/progress.json").json()["waiting"] == 2

    # The runner delivers them; the page (and its JSON) follow.
    Mailbox(engine, settings).deliver(NOW)
    progress = client.get(progress_path)
    assert 'data-count="sent">2<' in progress.text and 'data-count="waiting">0<' in progress.text
    assert client.get(f"{progress_path}/progress.json").json() == {
        "total": 2,
        "sent": 2,
        "waiting": 0,
        "retrying": 0,
        "dead": 0,
        "withdrawn": 0,
    }
    listed = client.get("/admin/campaigns").text
    assert re.search(
        r'<td class="num">2</td>\s*<td class="num">2</td>\s*<td class="num">0</td>', listed
    )  # queued, delivered, waiting
    assert f"staff:{CARLA}" in listed

    # Running it again reaches nobody new: the preview says so and offers nothing to confirm.
    again = client.get(PREVIEW).text
    assert "<dt>Already messaged by this campaign</dt><dd>2</dd>" in again
    assert "Nobody to message" in again and "Confirm and queue" not in again


def test_a_viewer_can_preview_but_not_confirm(app, engine, settings):
    viewer = signed_in(app, settings.mail_dir, VIC)
    preview = viewer.get(PREVIEW)
    assert preview.status_code == 200
    assert "only a coordinator can send a campaign" in preview.text
    assert "Confirm and queue" not in preview.text
    refused = viewer.post(
        "/admin/campaigns",
        data={"kind": "remind", "stage": "pre", "csrf_token": csrf(preview.text)},
    )
    assert refused.status_code == 403 and "Only a coordinator can do this" in refused.text
    assert campaign_rows(engine) == (0, 0, 0)


def test_a_scope_that_cannot_run_says_why(app, engine, settings):
    client = signed_in(app, settings.mail_dir, CARLA)
    wrong = client.get("/admin/campaigns/preview?kind=remind&stage=post")
    assert wrong.status_code == 422
    assert "stage &#39;post&#39;: use one of" in wrong.text
    backwards = client.get(
        "/admin/campaigns/preview?kind=remind&stage=pre&date_from=2026-03-20&date_to=2026-03-01"
    )
    assert backwards.status_code == 422 and "the dates are the wrong way round" in backwards.text
    places = client.get("/admin/campaigns/preview?kind=places&session=")
    assert places.status_code == 422 and "a places campaign needs the session" in places.text
    posted = client.post(
        "/admin/campaigns",
        data={"kind": "places", "session": "NO-SUCH", "csrf_token": csrf(wrong.text)},
    )
    assert posted.status_code == 422 and "Nothing was queued" in posted.text
    assert campaign_rows(engine) == (0, 0, 0)
    assert client.get("/admin/campaigns/999").status_code == 404
