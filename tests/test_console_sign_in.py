"""Signing in to the staff console and the rules of its sessions, through HTTP with a clock the
test moves: the emailed link's expiry and single use, the cookie, idle and absolute session
ends, sign-out, CSRF, viewers refused, signed-out browsers refused everywhere, rate limits."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlmodel import Session, select
from typer.testing import CliRunner

from bot.cli import app as cli
from bot.web.app import create_app
from surveys.models import AuditEntry, OutboxMessage, OutboxState
from surveys.staff import StaffSignIn
from tests.conftest import utc
from tests.console_helpers import (
    Clock,
    TestClient,
    add_staff,
    csrf,
    follow_link,
    latest_link,
    request_link,
    routes,
    sign_in,
    sign_in_emails,
)

NOW = utc("2026-03-16 10:00")
CARLA = "carla.mendes@partnership.example"
VIC = "victor.osei@partnership.example"


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


@pytest.fixture
def app(settings, engine, clock, database_url):
    add_staff(database_url, CARLA, name="Carla Mendes")
    add_staff(database_url, VIC, name="Victor Osei", role="viewer")
    app = create_app(settings, engine)
    app.state.clock = clock
    return app


@pytest.fixture
def client(app):
    return TestClient(app)


@pytest.fixture
def mail(settings):
    return settings.mail_dir


def test_staff_commands_add_list_and_remove(database_url):
    runner = CliRunner()
    env = {"EVALBOT_DATABASE_URL": database_url}
    assert runner.invoke(cli, ["db", "upgrade"], env=env).exit_code == 0
    added = runner.invoke(
        cli, ["staff", "add", "Carla.Mendes@Partnership.example", "--name", "Carla Mendes"], env=env
    )
    assert added.exit_code == 0, added.output
    assert "Added Carla Mendes <carla.mendes@partnership.example> as a coordinator" in added.output
    viewer = runner.invoke(cli, ["staff", "add", VIC, "--role", "viewer"], env=env)
    assert "as a viewer" in viewer.output
    listed = runner.invoke(cli, ["staff", "list"], env=env)
    assert re.search(
        r"carla\.mendes@partnership\.example\s+coordinator\s+Carla Mendes", listed.output
    )
    assert re.search(r"victor\.osei@partnership\.example\s+viewer", listed.output)
    bad = runner.invoke(cli, ["staff", "add", "not-an-address"], env=env)
    assert bad.exit_code == 2 and "is not an email address" in bad.output
    removed = runner.invoke(cli, ["staff", "remove", VIC], env=env)
    assert removed.exit_code == 0 and "can no longer sign in" in removed.output
    again = runner.invoke(cli, ["staff", "remove", VIC], env=env)
    assert again.exit_code == 1 and "is not a member of staff" in again.output
    assert "victor" not in runner.invoke(cli, ["staff", "list"], env=env).output


def test_a_coordinator_signs_in_with_the_emailed_link_at_once(client, mail, engine):
    page = request_link(client, CARLA)
    assert "If <strong>carla.mendes@partnership.example</strong> is the address" in page.text
    # Delivered at once, not at the next tick: the email is in the folder already.
    [message] = sign_in_emails(mail)
    assert message["To"].addresses[0].addr_spec == CARLA
    path = latest_link(mail, CARLA)
    token = path.rsplit("/", 1)[1]
    assert len(token) >= 22  # at least 128 bits
    with Session(engine) as session:
        [row] = session.exec(select(StaffSignIn)).all()
        assert row.token_hash != token and token not in str(
            session.exec(select(OutboxMessage)).one().context
        )
        assert session.exec(select(OutboxMessage)).one().state == OutboxState.SENT
    # Opening the link changes nothing (mail scanners open links)...
    opened = client.get(path)
    assert "You are signing in as <strong>Carla Mendes</strong>" in opened.text
    # ...the button signs in.
    response = follow_link(client, path)
    assert response.status_code == 303
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/admin" in cookie
    assert "Secure" not in cookie  # the public URL is http here
    dashboard = client.get("/admin/")
    assert dashboard.status_code == 200 and "Carla Mendes (coordinator)" in dashboard.text
    with Session(engine) as session:
        actions = [
            e.action
            for e in session.exec(select(AuditEntry).where(AuditEntry.actor == f"staff:{CARLA}"))
        ]
    assert "staff signed in" in actions


def test_the_cookie_is_secure_when_the_public_url_is_https(
    settings, engine, clock, database_url, mail
):
    add_staff(database_url, CARLA, name="Carla Mendes")
    app = create_app(settings.model_copy(update={"public_url": "https://evalbot.example"}), engine)
    app.state.clock = clock
    client = TestClient(app, base_url="https://evalbot.example")
    request_link(client, CARLA)
    response = follow_link(client, latest_link(mail, CARLA))
    assert "Secure" in response.headers["set-cookie"]


def test_unknown_addresses_get_the_same_answer_and_no_email(client, mail):
    staff = request_link(client, CARLA)
    stranger = request_link(client, "someone.else@example.org")
    assert staff.status_code == stranger.status_code == 200
    assert staff.text.replace(CARLA, "X") == stranger.text.replace("someone.else@example.org", "X")
    assert len(sign_in_emails(mail)) == 1


def test_a_link_works_once(client, mail):
    request_link(client, CARLA)
    path = latest_link(mail, CARLA)
    assert follow_link(client, path).status_code == 303
    other = TestClient(client.app)
    reused = follow_link(other, path)
    assert reused.status_code == 410
    assert "This sign-in link has already been used" in reused.text
    assert "Get a new sign-in link" in reused.text
    assert other.get("/admin/", follow_redirects=False).status_code == 303


def test_a_link_expires_after_15_minutes(client, mail, clock):
    request_link(client, CARLA)
    path = latest_link(mail, CARLA)
    clock.now = NOW + timedelta(minutes=14, seconds=59)
    assert client.get(path).status_code == 200
    clock.now = NOW + timedelta(minutes=15)
    expired = follow_link(client, path)
    assert expired.status_code == 410 and "This sign-in link has expired" in expired.text
    # The button pressed on a page opened in time is refused too.
    clock.now = NOW
    page = client.get(path)
    clock.now = NOW + timedelta(minutes=16)
    from tests.console_helpers import form_token

    late = client.post(path, data={"form_token": form_token(page.text)})
    assert late.status_code == 410 and "expired" in late.text


def test_an_unknown_link_says_so_and_guessing_is_slowed(client):
    response = client.get("/admin/sign-in/not-a-real-token-at-all-xxxxxxx")
    assert response.status_code == 404 and "This sign-in link does not work" in response.text
    from bot.web.security import BAD_TOKENS_PER_MINUTE

    for _ in range(BAD_TOKENS_PER_MINUTE + 2):
        response = client.get("/admin/sign-in/guess-guess-guess-guess-guess")
    assert response.status_code == 429 and "Too many sign-in links" in response.text


def test_a_session_ends_after_30_minutes_idle(client, mail, clock):
    sign_in(client, mail, CARLA)
    clock.now = NOW + timedelta(minutes=29)
    assert client.get("/admin/").status_code == 200
    clock.now += timedelta(minutes=29)  # each visit restarts the idle time
    assert client.get("/admin/").status_code == 200
    clock.now += timedelta(minutes=30)
    response = client.get("/admin/", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/admin/sign-in"


def test_a_session_ends_after_12_hours_however_busy(client, mail, clock):
    sign_in(client, mail, CARLA)
    for minutes in range(20, 12 * 60, 20):
        clock.now = NOW + timedelta(minutes=minutes)
        assert client.get("/admin/").status_code == 200
    clock.now = NOW + timedelta(hours=12)
    assert client.get("/admin/", follow_redirects=False).status_code == 303


def test_signing_out_ends_the_session_even_if_the_cookie_is_kept(client, mail):
    page = sign_in(client, mail, CARLA)
    cookie = client.cookies.get("evalbot_console")
    out = client.post("/admin/sign-out", data={"csrf_token": csrf(page)})
    assert out.status_code == 200 and "You have signed out" in out.text
    client.cookies.set("evalbot_console", cookie, path="/admin")
    assert client.get("/admin/", follow_redirects=False).status_code == 303


def test_a_post_without_the_sessions_csrf_token_is_refused(client, mail, engine):
    page = sign_in(client, mail, CARLA)
    old_token = csrf(page)
    missing = client.post("/admin/sign-out", data={})
    assert missing.status_code == 400 and "This form has expired" in missing.text
    wrong = client.post("/admin/sign-out", data={"csrf_token": "0" * 40})
    assert wrong.status_code == 400
    # Signed in again, a page from the old session is stale.
    sign_in(client, mail, CARLA)
    stale = client.post("/admin/sign-out", data={"csrf_token": old_token})
    assert stale.status_code == 400 and "nothing was changed" in stale.text
    # Another site's form is refused even with the token.
    fresh = csrf(client.get("/admin/").text)
    foreign = client.post(
        "/admin/sign-out", data={"csrf_token": fresh}, headers={"Origin": "https://evil.example"}
    )
    assert foreign.status_code == 400
    assert client.get("/admin/").status_code == 200  # still signed in


def test_a_viewer_sees_the_console_but_cannot_change_anything(client, mail, app):
    page = sign_in(client, mail, VIC)
    assert "Victor Osei (viewer)" in page
    posts = [
        route.path
        for route in routes(app)
        if route.path.startswith("/admin/")
        and "POST" in getattr(route, "methods", set())
        and not route.path.startswith("/admin/sign-in")
        and route.path != "/admin/sign-out"
    ]
    assert len(posts) >= 5
    for path in posts:
        concrete = re.sub(r"\{[^}]+\}", "1", path)
        response = client.post(concrete, data={"csrf_token": csrf(page)})
        assert response.status_code == 403, path
        assert "Only a coordinator can do this" in response.text
    # Pages that only prepare a change are refused too; the rest can be seen.
    assert client.get("/admin/import").status_code == 403
    assert client.get("/admin/sessions").status_code == 200
    assert client.get("/admin/outbox").status_code == 200
    # Signing out is not a change to the partnership's data: a viewer may.
    assert client.post("/admin/sign-out", data={"csrf_token": csrf(page)}).status_code == 200


def test_every_console_page_sends_a_signed_out_browser_to_sign_in(app):
    client = TestClient(app)
    found = [
        route
        for route in routes(app)
        if route.path.startswith("/admin") and not route.path.startswith("/admin/sign-in")
    ]
    assert len(found) >= 2
    for route in found:
        concrete = re.sub(r"\{[^}]+\}", "1", route.path)
        for method in route.methods:
            response = client.request(method, concrete, follow_redirects=False)
            assert response.status_code == 303, (method, route.path)
            assert response.headers["location"] == "/admin/sign-in"
            assert "Carla" not in response.text


def test_sign_in_requests_are_limited_per_address_and_per_client(client, mail, clock):
    for _ in range(5):
        assert request_link(client, CARLA).status_code == 200
    limited = request_link(client, CARLA)
    assert limited.status_code == 429 and "Too many sign-in requests" in limited.text
    assert len(sign_in_emails(mail)) == 5
    # The same for an address that is not staff's: the answer tells nothing.
    for _ in range(5):
        request_link(client, "nobody@example.org")
    assert request_link(client, "nobody@example.org").status_code == 429
    # Per client: many addresses from one computer.
    for n in range(10):
        request_link(client, f"person{n}@example.org")
    assert request_link(client, "fresh@example.org").status_code == 429
    clock.now = NOW + timedelta(minutes=15)
    assert request_link(client, CARLA).status_code == 200


def test_a_removed_member_is_signed_out_at_once(client, mail, database_url):
    sign_in(client, mail, CARLA)
    result = CliRunner().invoke(
        cli, ["staff", "remove", CARLA], env={"EVALBOT_DATABASE_URL": database_url}
    )
    assert result.exit_code == 0
    assert client.get("/admin/", follow_redirects=False).status_code == 303


def test_a_bad_email_address_is_explained(client):
    page = client.get("/admin/sign-in")
    from tests.console_helpers import form_token

    response = client.post(
        "/admin/sign-in", data={"email": "carla", "form_token": form_token(page.text)}
    )
    assert response.status_code == 400
    assert "Enter your work email address" in response.text
    stale = client.post("/admin/sign-in", data={"email": CARLA, "form_token": "x"})
    assert stale.status_code == 400 and "This form has expired" in stale.text


def test_a_malformed_form_is_refused_with_a_page(client, mail):
    sign_in(client, mail, CARLA)
    response = client.post(
        "/admin/import",
        content=b'--xyz\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\nabc',
        headers={"Content-Type": "multipart/form-data; boundary=xyz"},
    )
    assert response.status_code == 400 and "This form has expired" in response.text
