"""The Responses pages: a session's and a course's ratings, matched change and written answers,
signed in through the emailed link; and the same figures as CSV."""

from __future__ import annotations

import csv
import io

import pytest

from bot.web.app import create_app
from surveys.models import Stage
from tests.conftest import utc
from tests.console_helpers import Clock, TestClient
from tests.console_pages import CARLA, VIC, add_console_staff, answer, signed_in
from tests.timeline import Timeline, at


@pytest.fixture
def played(world, engine, settings, database_url):
    return play(world, engine, settings, database_url)


def play(world, engine, settings, database_url):
    """Alice and Chloé's session, with their pre-course and end-of-course answers."""
    people = world.standard()
    add_console_staff(database_url)
    timeline = Timeline(engine, settings)
    for moment in ("2026-03-02 09:00", "2026-03-09 09:30"):
        timeline.tick(moment)
    answer(
        engine,
        "BK-1001",
        Stage.PRE,
        {"knowledge": ["2", "2", "3"], "confidence": ["2", "3", "2"]},
        at("2026-03-10 10:00"),
    )
    timeline.tick("2026-03-16 16:30")
    answer(
        engine,
        "BK-1001",
        Stage.END,
        {
            "knowledge": ["4", "4", "4"],
            "confidence": ["3", "3", "3"],
            "satisfaction_content": "5",
            "accessibility": "partly",
            "accessibility_detail": "The hearing loop <did not> work",
            "will_do_differently": "=Check chronologies earlier",
        },
        at("2026-03-16 17:00"),
    )
    answer(
        engine,
        "BK-1002",
        Stage.END,
        {"knowledge": ["5", "5", "5"], "satisfaction_content": "4"},
        at("2026-03-16 17:10"),
    )
    app = create_app(settings, engine)
    app.state.clock = Clock(utc("2026-03-17 09:00"))
    return people, app


def test_a_sessions_responses_show_ratings_change_and_written_answers(played, settings):
    people, app = played
    client = signed_in(app, settings.mail_dir, VIC)  # a viewer sees everything
    index = client.get("/admin/responses")
    assert index.status_code == 200
    assert "Working Together to Safeguard Children" in index.text and "WT-2026-03-16" in index.text

    page = client.get(f"/admin/responses/session/{people['session'].id}")
    assert page.status_code == 200
    text = page.text
    assert "Working Together to Safeguard Children, session WT-2026-03-16" in text
    # Sent / started / finished per stage: both had the end-of-course survey and finished it.
    assert '<th scope="row">End of course</th><td class="num">2</td><td class="num">2</td>' in text
    # Alice's knowledge: 2, 2, 3 before and 4, 4, 4 after: three pairs, +1.67 on average.
    assert (
        "<td>Knowledge</td>\n    <td><strong>All learning outcomes</strong></td>\n"
        '    <td class="num">3</td>\n    <td class="num">2.33</td>\n'
        '    <td class="num">4.00</td>\n    <td class="num">+1.67</td>'
    ) in text
    # Chloé answered no pre-course survey, so she is in no pair; her ratings count at the end.
    assert "recognise the signs of neglect" in text
    assert "4: 1, 5: 1" in text  # end-of-course knowledge per outcome: Alice 4, Chloé 5
    assert "How satisfied are you with the content of the course?" in text
    # Written answers, the accessibility comment included, escaped.
    assert "The hearing loop &lt;did not&gt; work" in text and "<did not>" not in text
    assert "What made the course harder to take part in" in text

    download = client.get(f"/admin/responses/session/{people['session'].id}/responses.csv")
    assert download.status_code == 200
    assert download.headers["content-type"].startswith("text/csv")
    assert "attachment" in download.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(download.content.decode("utf-8-sig"))))
    change = [
        r for r in rows if r["section"] == "change pre to end" and r["question"] == "knowledge"
    ]
    overall = next(r for r in change if r["learning_outcome"] == "all outcomes")
    assert (overall["n"], overall["mean_change"]) == ("3", "1.67")
    texts = {r["answer"] for r in rows if r["section"] == "free text"}
    assert "The hearing loop <did not> work" in texts
    # A formula typed into a free-text answer stays text in a spreadsheet.
    assert "'=Check chronologies earlier" in texts


def test_a_course_gathers_every_session_and_unknown_ones_say_so(played, settings, world):
    people, app = played
    client = signed_in(app, settings.mail_dir, CARLA)
    page = client.get(f"/admin/responses/course/{people['course'].id}")
    assert page.status_code == 200
    assert (
        'Responses <span class="caption">Working Together to Safeguard Children</span>' in page.text
    )
    assert "WT-2026-03-16" in page.text  # the session of each written answer
    missing = client.get("/admin/responses/session/999")
    assert missing.status_code == 404 and "No such session" in missing.text


def test_responses_need_a_signed_in_browser(played):
    _, app = played
    client = TestClient(app)
    for path in (
        "/admin/responses",
        "/admin/responses/session/1",
        "/admin/responses/course/1/responses.csv",
    ):
        response = client.get(path, follow_redirects=False)
        assert (
            response.status_code in (302, 303) and "/admin/sign-in" in response.headers["location"]
        )


def test_responses_and_a_campaign_on_postgresql(postgres_engine, postgres_url, tmp_path):
    """The same figures on PostgreSQL, and a campaign preview that keeps nothing there either."""
    from sqlalchemy import func
    from sqlmodel import Session, select

    from bot.settings import load_settings
    from surveys.models import Campaign, OutboxMessage
    from tests.conftest import World

    settings = load_settings(database_url=postgres_url, mail_dir=tmp_path / "mail")
    with Session(postgres_engine, expire_on_commit=False) as session:
        world = World(session)
        people, app = play(world, postgres_engine, settings, postgres_url)
        world.course_session(people["course"], "WT-2026-04-20", starts_at=utc("2026-04-20 09:30"))
        session.commit()
    client = signed_in(app, settings.mail_dir, CARLA)
    page = client.get(f"/admin/responses/course/{people['course'].id}").text
    assert '<td class="num">3</td>\n    <td class="num">2.33</td>' in page
    assert "The hearing loop &lt;did not&gt; work" in page
    preview = client.get("/admin/campaigns/preview?kind=remind&stage=impact")
    assert preview.status_code == 200 and "Nobody to message" in preview.text
    reminder = client.get("/admin/campaigns/preview?kind=remind&stage=end")
    assert "Nobody to message" in reminder.text  # both finished the end-of-course survey
    places = client.get("/admin/campaigns/preview?kind=places&session=WT-2026-04-20")
    assert places.status_code == 200 and "Confirm and queue" in places.text
    assert "Last-minute places" in places.text and "<dt>Subject</dt>" in places.text
    with Session(postgres_engine) as session:
        assert session.exec(select(func.count()).select_from(Campaign)).one() == 0
        assert (
            session.exec(
                select(func.count())
                .select_from(OutboxMessage)
                .where(OutboxMessage.campaign_id.is_not(None))  # type: ignore[union-attr]
            ).one()
            == 0
        )
