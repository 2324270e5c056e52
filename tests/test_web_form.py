"""The survey form through HTTP: pages, prefilled links, answers, errors, tokens, escaping."""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
import warnings
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlmodel import Session, select

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from bot.links import url_for
from bot.web.app import create_app
from bot.web.security import BAD_TOKENS_PER_MINUTE, BadTokenLimiter
from schedules.certificates import certificate_link
from surveys import tokens
from surveys.models import (
    Answer,
    BookingStatus,
    InvitationStatus,
    LinkPurpose,
    Stage,
    SurveyDefinitionVersion,
    SurveyInvitation,
)
from tests.conftest import utc
from tests.loopback import free_port

NOW = utc("2026-03-16 17:00")


class Clock:
    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


@pytest.fixture
def client(settings, engine, clock):
    app = create_app(settings, engine)
    app.state.clock = clock
    return TestClient(app)


@pytest.fixture
def people(world):
    return world.standard()


def invite(
    session: Session, settings, booking, stage: Stage, *, person=None, **extra
) -> tuple[SurveyInvitation, str]:
    fields = {
        "opens_at": NOW - timedelta(hours=1),
        "closes_at": NOW + timedelta(days=14),
        "status": InvitationStatus.OPEN,
        **extra,
    }
    invitation = SurveyInvitation(
        booking_id=booking.id,
        person_id=(person.id if person else booking.delegate_id),
        stage=stage,
        **fields,
    )
    session.add(invitation)
    session.flush()
    token = tokens.issue(
        session,
        settings.secret,
        LinkPurpose.SURVEY,
        subject=f"invitation:{invitation.id}",
        invitation_id=invitation.id,
        person_id=invitation.person_id,
        expires_at=invitation.closes_at,
    )
    session.commit()
    return invitation, token


def stored(session: Session, invitation: SurveyInvitation) -> dict[str, Answer]:
    session.expire_all()
    rows = session.exec(select(Answer).where(Answer.invitation_id == invitation.id)).all()
    return {row.question_key: row for row in rows}


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert found, "the page has no form token"
    return found.group(1)


def heading(page: str) -> str:
    found = re.search(r"<h1>(.*?)</h1>", page, re.S)
    assert found
    return html.unescape(re.sub(r"<[^>]+>", "", found.group(1)).strip())


def checked(html: str) -> list[str]:
    return re.findall(r'name="a" value="([^"]+)" checked', html)


def answer(client: TestClient, token: str, key: str, *values: str, csrf: str | None = None):
    page = client.get(f"/s/{token}")
    return client.post(
        f"/s/{token}", data={"csrf": csrf or csrf_of(page.text), "q": key, "a": list(values)}
    )


def test_the_first_page_says_which_course_and_how_far(client, session, settings, people):
    _invitation, token = invite(session, settings, people["alice_booking"], Stage.PRE)
    page = client.get(f"/s/{token}")
    assert page.status_code == 200
    assert "Working Together to Safeguard Children" in page.text
    assert "Monday 16 March 2026" in page.text
    assert "Question 1 of 7" in page.text
    assert heading(page.text).endswith("knowledge of how to recognise the signs of neglect?")
    assert "A few questions before you come on the course" in page.text  # the intro
    assert (
        "<legend><h1>" in page.text and '<label for="answer-1">1 – Very little</label>' in page.text
    )
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["referrer-policy"] == "same-origin"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]


def test_a_get_records_nothing_even_with_an_answer_in_the_link(client, session, settings, people):
    invitation, token = invite(session, settings, people["alice_booking"], Stage.IMPACT)
    page = client.get(f"/s/{token}?q=applied&a=no")
    assert page.status_code == 200 and checked(page.text) == ["no"]
    client.get(f"/s/{token}?q=applied&a=yes")
    assert client.head(f"/s/{token}?q=applied&a=yes").status_code == 200  # link checkers
    assert stored(session, invitation) == {}
    session.refresh(invitation)
    assert invitation.started_at is None and invitation.definition_id is None
    assert session.exec(select(SurveyDefinitionVersion)).all() == []
    # Submitting the pre-selected answer saves it.
    result = client.post(
        f"/s/{token}",
        data={"csrf": csrf_of(page.text), "q": "applied", "a": "no"},
        follow_redirects=False,
    )
    assert result.status_code == 303 and result.headers["location"] == token
    assert stored(session, invitation)["applied"].value_text == "no"


def test_a_link_with_an_unknown_question_or_answer_falls_back(client, session, settings, people):
    _invitation, token = invite(session, settings, people["alice_booking"], Stage.PRE)
    page = client.get(f"/s/{token}?q=knowledge.1&a=9")
    assert "Question 2 of 7" in page.text and checked(page.text) == []
    page = client.get(f"/s/{token}?q=nonsense&a=3")
    assert "Question 1 of 7" in page.text and checked(page.text) == []
    page = client.get(f"/s/{token}?q={'k' * 5000}")
    assert page.status_code == 200 and "Question 1 of 7" in page.text


def test_answering_walks_through_the_survey_and_finishes(client, session, settings, people):
    invitation, token = invite(session, settings, people["alice_booking"], Stage.IMPACT)
    page = answer(client, token, "applied", "no")
    assert (
        page.status_code == 200
        and heading(page.text) == "What has got in the way of using what you learned?"
    )
    assert "Question 2 of 9" in page.text and 'type="checkbox"' in page.text
    assert f'href="{token}?q=applied"' in page.text  # back to the previous question
    page = answer(client, token, "barriers", "time", "other")
    assert heading(page.text).startswith("What else has got in the way?")
    page = answer(client, token, "barriers_other", "Staff shortages")
    for key in (
        "knowledge.0",
        "knowledge.1",
        "knowledge.2",
        "confidence.0",
        "confidence.1",
        "confidence.2",
    ):
        page = answer(client, token, key, "4")
    assert "(optional)" in page.text
    page = answer(client, token, "further_support")  # skipped
    assert heading(page.text) == "Check your answers"
    assert "Workload or lack of time, Something else" in page.text and "Not answered" in page.text
    assert f'href="{token}?q=barriers"' in page.text

    # Going back shows the saved answer, and changing it returns to the last look.
    back = client.get(f"/s/{token}?q=barriers")
    assert sorted(checked(back.text)) == ["other", "time"]
    page = answer(client, token, "barriers", "time", "other", "support")
    assert heading(page.text) == "Check your answers"

    done = client.post(f"/s/{token}", data={"csrf": csrf_of(page.text), "action": "finish"})
    assert done.status_code == 200 and "Thank you: your answers have been sent" in done.text
    session.refresh(invitation)
    assert invitation.status == InvitationStatus.FINISHED and invitation.finished_at == NOW
    got = stored(session, invitation)
    assert got["barriers"].value_json == ["time", "support", "other"]
    assert got["knowledge.2"].value_num == 4.0 and got["knowledge.2"].channel == "web"
    assert len(got) == 10
    # The finished survey stays finished: further answers are not taken.
    again = client.post(
        f"/s/{token}", data={"csrf": csrf_of(page.text), "q": "applied", "a": "yes"}
    )
    assert "Thank you" in again.text and stored(session, invitation)["applied"].value_text == "no"


def test_a_bad_answer_is_shown_beside_the_question_and_in_a_summary(
    client, session, settings, people
):
    invitation, token = invite(session, settings, people["alice_booking"], Stage.END)
    page = answer(client, token, "knowledge.0")
    assert page.status_code == 422
    assert page.text.count("Choose a number from 1 to 5.") == 2
    assert '<a href="#answer-1">Choose a number from 1 to 5.</a>' in page.text
    assert (
        'id="answer-error"' in page.text
        and 'aria-describedby="answer-hint answer-error"' in page.text
    )
    assert "<title>Error: " in page.text
    long_text = "é" * 1001
    for key in (
        "knowledge.0",
        "knowledge.1",
        "knowledge.2",
        "confidence.0",
        "confidence.1",
        "confidence.2",
        "satisfaction_content",
        "satisfaction_trainer",
        "satisfaction_venue",
    ):
        answer(client, token, key, "5")
    answer(client, token, "accessibility", "yes")
    page = answer(client, token, "will_do_differently", long_text)
    assert page.status_code == 422
    assert "Your answer is 1,001 characters long" in page.text
    assert f">{long_text}</textarea>" in page.text  # kept, so it can be shortened
    assert 'aria-invalid="true"' in page.text
    assert "will_do_differently" not in stored(session, invitation)


def test_a_post_needs_the_pages_form_token(client, session, settings, people):
    alice, alice_token = invite(session, settings, people["alice_booking"], Stage.IMPACT)
    _chloe, chloe_token = invite(session, settings, people["chloe_booking"], Stage.IMPACT)
    chloe_csrf = csrf_of(client.get(f"/s/{chloe_token}").text)
    refused = client.post(f"/s/{alice_token}", data={"q": "applied", "a": "yes"})
    assert refused.status_code == 403 and "Your answer was not saved" in refused.text
    refused = client.post(
        f"/s/{alice_token}", data={"csrf": chloe_csrf, "q": "applied", "a": "yes"}
    )
    assert refused.status_code == 403
    alice_csrf = csrf_of(client.get(f"/s/{alice_token}").text)
    refused = client.post(
        f"/s/{alice_token}",
        data={"csrf": alice_csrf, "q": "applied", "a": "yes"},
        headers={"Origin": "https://evil.example"},
    )
    assert refused.status_code == 403
    assert stored(session, alice) == {}
    accepted = client.post(
        f"/s/{alice_token}",
        data={"csrf": alice_csrf, "q": "applied", "a": "yes"},
        headers={"Origin": settings.public_url},
        follow_redirects=False,
    )
    assert accepted.status_code == 303 and "applied" in stored(session, alice)


def test_submitting_twice_keeps_one_answer(client, session, settings, people):
    invitation, token = invite(session, settings, people["alice_booking"], Stage.PRE)
    csrf = csrf_of(client.get(f"/s/{token}").text)
    for value in ("2", "2", "3"):
        client.post(f"/s/{token}", data={"csrf": csrf, "q": "knowledge.0", "a": value})
    got = stored(session, invitation)
    assert list(got) == ["knowledge.0"] and got["knowledge.0"].value_num == 3.0


def test_an_expired_link_says_its_survey_closed_an_unknown_one_does_not_work(
    client, session, settings, people, clock
):
    _invitation, token = invite(
        session, settings, people["alice_booking"], Stage.PRE, closes_at=NOW + timedelta(hours=1)
    )
    assert client.get(f"/s/{token}").status_code == 200
    clock.now = NOW + timedelta(hours=2)
    expired = client.get(f"/s/{token}")
    unknown = client.get("/s/" + "A" * len(token))
    assert expired.status_code == 410 and unknown.status_code == 404
    assert "This survey has closed" in expired.text and "It closed at" in expired.text
    assert "This link does not work" in unknown.text
    assert client.post("/s/nothing-here", data={"q": "x"}).status_code == 404


def test_closed_and_not_yet_open_pages(client, session, settings, people):
    _closed, closed_token = invite(
        session, settings, people["alice_booking"], Stage.END, status=InvitationStatus.WITHDRAWN
    )
    page = client.get(f"/s/{closed_token}")
    assert page.status_code == 410 and "This survey has closed" in page.text
    assert "Working Together to Safeguard Children" in page.text
    _early, early_token = invite(
        session,
        settings,
        people["chloe_booking"],
        Stage.IMPACT,
        opens_at=utc("2026-06-15 08:00"),
        status=InvitationStatus.PLANNED,
    )
    page = client.get(f"/s/{early_token}")
    assert "This survey is not open yet" in page.text and "Monday 15 June 2026, 09:00" in page.text


def finish_end_survey(client, token: str):
    """Answer every required question of the end-of-course survey, then finish."""
    for key in ("knowledge.0", "knowledge.1", "knowledge.2", "confidence.0", "confidence.1"):
        answer(client, token, key, "4")
    for key in ("confidence.2", "satisfaction_content", "satisfaction_trainer"):
        answer(client, token, key, "5")
    answer(client, token, "satisfaction_venue", "3")
    answer(client, token, "accessibility", "yes")
    answer(client, token, "will_do_differently", "Check chronologies for neglect")
    page = answer(client, token, "comments")
    assert heading(page.text) == "Check your answers"
    return client.post(f"/s/{token}", data={"csrf": csrf_of(page.text), "action": "finish"})


def test_finishing_after_attending_gives_the_certificate(client, session, settings, people):
    booking = people["alice_booking"]
    booking.status = BookingStatus.ATTENDED
    session.add(booking)
    session.commit()
    _, token = invite(session, settings, booking, Stage.END)
    done = finish_end_survey(client, token)
    certificate = url_for(settings, LinkPurpose.CERTIFICATE, f"booking:{booking.id}")
    assert f'href="{certificate}"' in done.text
    # The link works: finishing recorded it.
    assert client.get(certificate.removeprefix(settings.public_url)).status_code == 200


def test_the_certificate_waits_for_the_register(client, session, settings, people):
    booking = people["alice_booking"]
    _, token = invite(session, settings, booking, Stage.END)
    done = finish_end_survey(client, token)
    assert "Thank you: your answers have been sent" in done.text
    assert "once the trainer has confirmed the register" in done.text
    assert "/certificate/" not in done.text
    booking.status = BookingStatus.ATTENDED
    session.add(booking)
    session.commit()
    # Marked attended: the link appears once it has been issued (the tick sends it too).
    assert "on its way" in client.get(f"/s/{token}").text
    certificate_link(session, booking, secret=settings.secret)
    session.commit()
    certificate = url_for(settings, LinkPurpose.CERTIFICATE, f"booking:{booking.id}")
    assert f'href="{certificate}"' in client.get(f"/s/{token}").text


def test_no_certificate_for_part_attendance_or_a_manager(client, session, settings, people):
    booking = people["chloe_booking"]
    booking.status = BookingStatus.PARTLY_ATTENDED
    session.add(booking)
    session.commit()
    _, token = invite(session, settings, booking, Stage.END)
    done = finish_end_survey(client, token)
    assert "given only for attending every part of a course" in done.text
    assert "/certificate/" not in done.text
    _, manager_token = invite(
        session,
        settings,
        booking,
        Stage.MANAGER,
        person=people["dev"],
        status=InvitationStatus.FINISHED,
    )
    page = client.get(f"/s/{manager_token}")
    assert "Thank you" in page.text and "certificate" not in page.text


def test_names_and_titles_are_escaped(client, session, settings, people, world):
    course = world.course("Neglect <script>alert(1)</script> & O'Brien's Law")
    course_session = world.course_session(course, ref="NG-1")
    booking = world.booking(course_session, people["chloe"], people["dev"], "BK-2001")
    session.commit()
    _invitation, token = invite(session, settings, booking, Stage.MANAGER, person=people["dev"])
    page = client.get(f"/s/{token}")
    assert "<script>" not in page.text
    assert "Neglect &lt;script&gt;alert(1)&lt;/script&gt; &amp; O&#39;Brien&#39;s Law" in page.text
    # The delegate's name, in the manager's question.
    assert "Chloé O&#39;Brien &lt;Health &amp; Care&gt;" in page.text
    answer(client, token, "manager_change_seen", "yes")
    page = answer(client, token, "manager_example", "<script>alert('x')</script> she refers sooner")
    page = client.get(f"/s/{token}?q=manager_example")
    assert (
        "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; she refers sooner</textarea>" in page.text
    )
    assert "<script>" not in page.text


def test_repeated_bad_tokens_are_slowed_down(client, session, settings, people, clock):
    _invitation, token = invite(session, settings, people["alice_booking"], Stage.PRE)
    for n in range(BAD_TOKENS_PER_MINUTE):
        assert client.get(f"/s/guess{n:04d}guessguessguessguess").status_code == 404
    slowed = client.get("/s/guess-one-more")
    assert slowed.status_code == 429 and slowed.headers["retry-after"] == "60"
    assert "Too many attempts" in slowed.text
    # A good link from the same address still works: what is guessed is throttled, not who.
    assert client.get(f"/s/{token}").status_code == 200
    clock.now = NOW + timedelta(seconds=61)
    assert client.get("/s/guess-after-a-minute").status_code == 404


def test_the_limiter_forgets_after_its_window():
    limiter = BadTokenLimiter(limit=3, window=timedelta(minutes=1), max_addresses=2)
    start = NOW
    for seconds in (0, 10, 20):
        assert not limiter.blocked("198.51.100.7", start + timedelta(seconds=seconds))
        limiter.record("198.51.100.7", start + timedelta(seconds=seconds))
    assert limiter.retry_after("198.51.100.7", start + timedelta(seconds=30)) == 30
    assert not limiter.blocked("203.0.113.9", start + timedelta(seconds=30))
    # The first bad token has aged out.
    assert not limiter.blocked("198.51.100.7", start + timedelta(seconds=60))
    # Many addresses do not grow it without bound.
    for n in range(10):
        limiter.record(f"192.0.2.{n}", start + timedelta(seconds=61 + n))
    assert len(limiter._seen) <= 2


@pytest.mark.parametrize("stage", list(Stage))
def test_the_invitation_email_opens_the_form_with_the_answer_chosen(
    client, session, settings, people, stage, clock
):
    from bot.rendering import render_email, render_telegram
    from schedules.planning import FirstQuestions, issue_links, survey_context
    from surveys.models import Channel, MessageKind, OutboxMessage

    booking = people["chloe_booking"]
    recipient = people["dev"] if stage is Stage.MANAGER else people["chloe"]
    invitation, token = invite(session, settings, booking, stage, person=recipient)
    context = survey_context(
        invitation,
        booking,
        people["session"],
        people["course"],
        recipient,
        people["chloe"],
        FirstQuestions(None),
    )
    if stage is Stage.PRE:  # as planning does when it queues the message
        issue_links(
            session,
            settings.secret,
            {"cancel": context["links"]["cancel"]},
            person=recipient,
            booking=booking,
            invitation=invitation,
            starts_at=people["session"].starts_at,
        )
        session.commit()
    for template in ("survey-invitation", "survey-reminder"):
        row = OutboxMessage(
            id=7,
            idempotency_key=f"inv:{invitation.id}:{template}",
            person_id=recipient.id,
            channel=Channel.EMAIL,
            recipient=recipient.email,
            template=template,
            context=context,
            kind=MessageKind.INVITATION,
            due_at=NOW,
            available_at=NOW,
        )
        mail = render_email(
            settings, row, recipient=recipient.email, recipient_name=recipient.name, now=NOW
        )
        assert "Working Together to Safeguard Children" in mail.subject
        assert "<script" not in mail.html and "O&#39;Brien &lt;Health &amp; Care&gt;" in mail.html
        options = re.findall(r'<a href="([^"]+\?q=[^"]+)"', mail.html)
        assert options, "the first question's options are links"
        last = html.unescape(options[-1])
        assert last.startswith(f"{settings.public_url}/s/{token}?q=")
        assert last in mail.text  # the plain-text part has the same links
        page = client.get(last.removeprefix(settings.public_url))
        assert page.status_code == 200 and "Question 1 of" in page.text
        assert checked(page.text) == [last.rsplit("a=", 1)[1]]
        chat = render_telegram(
            settings, row, recipient="42", recipient_name=recipient.name, now=NOW
        )
        assert re.fullmatch(r"(?s)(?:[^<]|<(/?)(b|i|a)( href=\"[^\"]*\")?>)*", chat.text), chat.text
        # The pre-course survey, and each reminder of it, carries the way to cancel the place.
        cancels = [
            re.findall(r'<a href="([^"]+/cancel/[^"]+)"', mail.html),
            re.findall(r"\S+/cancel/\S+", mail.text),
            re.findall(r'<a href="([^"]+/cancel/[^"]+)">Cancel your place</a>', chat.text),
        ]
        if stage is Stage.PRE:
            assert all(len(found) == 1 for found in cancels), (template, cancels)
            clock.now = people["session"].starts_at - timedelta(days=3)  # before the course
            cancel_page = client.get(cancels[1][0].removeprefix(settings.public_url))
            clock.now = NOW
            assert cancel_page.status_code == 200, cancel_page.text
            assert "Working Together to Safeguard Children" in cancel_page.text
        else:
            assert cancels == [[], [], []], (template, cancels)
    assert stored(session, invitation) == {}


def _serve(database_url: str, *flags: str, port_setting: int) -> tuple[subprocess.Popen[str], str]:
    """Start ``evalbot web``; returns it and the address uvicorn says it is running on."""
    env = {
        **os.environ,
        "EVALBOT_DATABASE_URL": database_url,
        "EVALBOT_WEB_HOST": "127.0.0.1",
        "EVALBOT_WEB_PORT": str(port_setting),
    }
    evalbot = Path(sys.executable).with_name("evalbot")
    server = subprocess.Popen(
        [str(evalbot), "web", *flags], env=env, stderr=subprocess.PIPE, text=True
    )
    assert server.stderr is not None
    for line in server.stderr:  # uvicorn says where it listens once the socket is bound
        if "Uvicorn running on" in line:
            return server, line.split("running on ")[1].split()[0]
    raise AssertionError(f"evalbot web stopped with code {server.wait()}")


def test_evalbot_web_takes_its_host_from_the_settings_and_a_flag_wins(engine, database_url):
    setting, flag = free_port(), free_port()
    # EVALBOT_WEB_HOST gives the host; --port wins over EVALBOT_WEB_PORT.
    server, address = _serve(database_url, "--port", str(flag), port_setting=setting)
    try:
        assert address == f"http://127.0.0.1:{flag}"
        assert httpx.get(f"{address}/health").json() == {"status": "ok"}
        assert httpx.get(f"{address}/s/not-a-token").status_code == 404
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_a_courses_outcomes_are_set_from_the_command_line_and_asked_about(
    client, session, settings, people, world, database_url, monkeypatch
):
    from typer.testing import CliRunner

    from bot.cli import app

    course = world.course("Neglect: Recognition & Response")
    course.learning_outcomes = []
    course_session = world.course_session(course, ref="NG-1")
    booking = world.booking(course_session, people["alice"], people["bob"], "BK-3001")
    session.commit()
    invitation, token = invite(session, settings, booking, Stage.PRE)
    monkeypatch.setenv("EVALBOT_DATABASE_URL", database_url)

    def outcomes(*args: str, code: int = 0) -> str:
        result = CliRunner().invoke(app, ["surveys", "outcomes", *args])
        assert result.exit_code == code, result.output
        return result.output

    title = "neglect:  recognition & RESPONSE"  # any case and spacing
    assert "has no learning outcomes" in outcomes(title)
    page = client.get(f"/s/{token}")
    assert "Question 1 of 3" in page.text
    assert heading(page.text).endswith(
        "knowledge of the subject of Neglect: Recognition & Response?"
    )

    shown = outcomes(title, "recognise the signs of neglect.", "use the  Graded Care Profile")
    assert "1. recognise the signs of neglect\n  2. use the Graded Care Profile" in shown
    page = client.get(f"/s/{token}")
    assert "Question 1 of 5" in page.text
    assert heading(page.text).endswith("knowledge of how to recognise the signs of neglect?")
    answer(client, token, "knowledge.0", "2")

    # Reordering would make the answer given read as if about the other outcome: refused.
    refused = outcomes(
        title, "use the Graded Care Profile", "recognise the signs of neglect", code=1
    )
    assert "1 answer(s) were already given" in refused
    # Adding one at the end keeps every answer true.
    outcomes(
        title, "recognise the signs of neglect", "use the Graded Care Profile", "write a chronology"
    )
    page = client.get(f"/s/{token}")
    assert "Question 2 of 7" in page.text and heading(page.text).endswith("Graded Care Profile?")
    assert stored(session, invitation)["knowledge.0"].value_num == 2.0
    assert "No course is titled 'Neglect'" in outcomes("Neglect", code=2)
    assert "at most 300" in outcomes(title, "x" * 301, code=2)
    outcomes(title, "--clear", "--force")
    assert "Question 1 of 3" in client.get(f"/s/{token}").text


def test_a_survey_link_carries_a_long_token_and_only_its_hash_is_stored(
    client, session, settings, people, engine
):
    import base64

    from surveys.tokens import token_hash

    _alice, alice_token = invite(session, settings, people["alice_booking"], Stage.PRE)
    _chloe, chloe_token = invite(session, settings, people["chloe_booking"], Stage.PRE)
    assert alice_token != chloe_token
    for token in (alice_token, chloe_token):
        assert re.fullmatch(r"[A-Za-z0-9_-]+", token)
        assert len(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))) * 8 >= 128
    raw = engine.raw_connection()
    try:
        dump = "\n".join(raw.driver_connection.iterdump())
    finally:
        raw.close()
    assert alice_token not in dump and token_hash(alice_token) in dump
    assert client.get(f"/s/{alice_token}").status_code == 200
    assert client.get(f"/s/{token_hash(alice_token)}").status_code == 404  # the hash opens nothing


def test_tampered_answers_are_refused_and_nothing_is_stored(client, session, settings, people):
    invitation, token = invite(session, settings, people["alice_booking"], Stage.IMPACT)
    page = answer(client, token, "applied", "yes", "no")
    assert page.status_code == 422 and "not one of the answers you can give" in page.text
    assert checked(page.text) == []  # a radio group shows one answer or none
    page = answer(client, token, "applied", "maybe")
    assert page.status_code == 422 and checked(page.text) == []  # an unknown value is not shown
    # Barriers are asked only after "no": posted before that, they are not taken.
    page = answer(client, token, "barriers", "time")
    assert heading(page.text) == "Have you used what you learned on the course in your work?"
    page = answer(client, token, "../../admin", "yes")
    assert page.status_code == 200 and "Question 1 of" in page.text
    assert stored(session, invitation) == {}
    # Control characters are dropped and the text is kept as typed otherwise.
    answer(client, token, "applied", "yes")
    answer(client, token, "example", "Line one\r\nLine two\x00\x07 <b>bold</b>")
    assert stored(session, invitation)["example"].value_text == "Line one\nLine two <b>bold</b>"
