"""Shared by the console's tests: a clock to move, staff added through the CLI, and signing in
with the link from the sign-in email in the mail folder."""

from __future__ import annotations

import email
import email.policy
import re
import time
import warnings
from datetime import datetime
from pathlib import Path

from typer.testing import CliRunner

from bot.cli import app as cli

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

LINK = re.compile(r"https?://[^\s\"<>]+/admin/sign-in/([A-Za-z0-9_-]+)")
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
FORM_TOKEN = re.compile(r'name="form_token" value="([^"]+)"')


class Clock:
    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def add_staff(database_url: str, email_address: str, *, name: str, role: str = "coordinator"):
    result = CliRunner().invoke(
        cli,
        ["staff", "add", email_address, "--name", name, "--role", role],
        env={"EVALBOT_DATABASE_URL": database_url},
    )
    assert result.exit_code == 0, result.output
    return result


def sign_in_emails(mail_dir: Path) -> list[email.message.EmailMessage]:
    found = []
    for path in sorted(mail_dir.glob("*.eml"), key=lambda p: p.stat().st_mtime_ns):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        if "sign-in link" in str(message["Subject"]):
            found.append(message)
    return found


def link_in(message: email.message.EmailMessage) -> str:
    """The path of the sign-in link in an email's plain text."""
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    match = LINK.search(body.get_content())
    assert match, "the sign-in email holds no sign-in link"
    return f"/admin/sign-in/{match[1]}"


def form_token(page: str) -> str:
    match = FORM_TOKEN.search(page)
    assert match, "the page has no form token"
    return match[1]


def csrf(page: str) -> str:
    match = CSRF.search(page)
    assert match, "the page has no CSRF token"
    return match[1]


def request_link(client: TestClient, address: str):
    page = client.get("/admin/sign-in")
    return client.post(
        "/admin/sign-in", data={"email": address, "form_token": form_token(page.text)}
    )


def latest_link(mail_dir: Path, address: str) -> str:
    messages = [m for m in sign_in_emails(mail_dir) if address in str(m["To"])]
    assert messages, f"no sign-in email reached {address}"
    return link_in(messages[-1])


def wait_for_link(mail_dir: Path, address: str, timeout: float = 15.0) -> str:
    """The path of the newest sign-in link sent to ``address``, waiting for the email: a live
    server delivers it in a background task just after answering, so it may still be on its way
    when the browser shows the next page."""
    deadline = time.monotonic() + timeout
    while True:
        messages = (
            [m for m in sign_in_emails(mail_dir) if address in str(m["To"])]
            if (mail_dir.exists())
            else []
        )
        if messages:
            return link_in(messages[-1])
        if time.monotonic() > deadline:
            raise AssertionError(f"no sign-in email reached {address}")
        time.sleep(0.05)


def follow_link(client: TestClient, path: str):
    """Open the emailed link (which changes nothing), then press its Sign in button."""
    page = client.get(path)
    if page.status_code != 200:
        return page
    return client.post(path, data={"form_token": form_token(page.text)}, follow_redirects=False)


def sign_in(client: TestClient, mail_dir: Path, address: str) -> str:
    """Sign ``client`` in as ``address``; returns the dashboard's HTML."""
    assert request_link(client, address).status_code == 200
    response = follow_link(client, latest_link(mail_dir, address))
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/admin/"
    dashboard = client.get("/admin/")
    assert dashboard.status_code == 200
    return dashboard.text


def routes(app) -> list:
    """Every route of the app with a path, looking inside included routers."""
    found = []

    def walk(items) -> None:
        for item in items:
            inner = getattr(item, "original_router", None)
            if inner is not None:
                walk(inner.routes)
            elif getattr(item, "path", None) is not None:
                found.append(item)

    walk(app.routes)
    return found
