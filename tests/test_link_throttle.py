"""Throttling guessed links without locking out an office: through `evalbot web` on loopback.

Everyone in an office shares one address behind its NAT. Someone there mistypes link after
link; a colleague's valid link must still open. A client that sends X-Forwarded-For must not
choose the address it is counted under unless it is a proxy Evalbot was told to trust.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import update
from typer.testing import CliRunner

from bot.cli import app
from bot.web.security import BAD_TOKENS_PER_MINUTE
from surveys.db import make_engine
from surveys.models import Link, SurveyInvitation
from tests.live_service import live, prepare


def guess() -> str:
    return f"/s/{secrets.token_urlsafe(24)}"


def survey_link(links: set[str]) -> str:
    return sorted(path for path in links if path.startswith("/s/"))[0]


def keep_links_alive(folder: Path) -> None:
    """The service reads the real clock, which may be past the example course: its links are
    made to last, as if the course were still to come."""
    engine = make_engine(f"sqlite:///{folder / 'evalbot.db'}")
    with engine.begin() as connection:
        connection.execute(update(Link).values(expires_at=None))
        connection.execute(
            update(SurveyInvitation).values(closes_at=datetime(2999, 1, 1, tzinfo=UTC))
        )
    engine.dispose()


def test_many_bad_tokens_do_not_lock_out_a_valid_link(tmp_path: Path) -> None:
    links = prepare(tmp_path)
    keep_links_alive(tmp_path)
    with live("web", tmp_path) as service, httpx.Client(base_url=service.base_url) as office:
        statuses = [office.get(guess()).status_code for _ in range(BAD_TOKENS_PER_MINUTE + 5)]
        assert statuses[:BAD_TOKENS_PER_MINUTE] == [404] * BAD_TOKENS_PER_MINUTE
        assert set(statuses[BAD_TOKENS_PER_MINUTE:]) == {429}, "the guessing is slowed"
        busy = office.get(guess())
        assert busy.status_code == 429 and int(busy.headers["retry-after"]) <= 60
        # A colleague at the same address opens her valid survey and cancel links.
        page = office.get(survey_link(links))
        assert page.status_code == 200 and "<form" in page.text
        cancel = sorted(path for path in links if path.startswith("/cancel/"))[0]
        assert office.get(cancel).status_code == 200


def test_a_spoofed_forwarded_for_from_an_untrusted_peer_is_ignored(tmp_path: Path) -> None:
    prepare(tmp_path)
    with live("web", tmp_path) as service, httpx.Client(base_url=service.base_url) as client:
        statuses = [
            client.get(guess(), headers={"X-Forwarded-For": f"198.51.100.{n}"}).status_code
            for n in range(BAD_TOKENS_PER_MINUTE + 1)
        ]
        # Each request claimed a new address; all were counted under the real one.
        assert statuses[-1] == 429


def test_a_trusted_proxy_names_the_client(tmp_path: Path) -> None:
    prepare(tmp_path)
    flags = ("--forwarded-allow-ips", "127.0.0.1")
    with live("web", tmp_path, *flags) as service, httpx.Client(base_url=service.base_url) as proxy:
        statuses = [
            proxy.get(guess(), headers={"X-Forwarded-For": f"198.51.100.{n}"}).status_code
            for n in range(BAD_TOKENS_PER_MINUTE + 1)
        ]
        assert set(statuses) == {404}, "each client behind the proxy has its own budget"
        one = [
            proxy.get(guess(), headers={"X-Forwarded-For": "203.0.113.9"}).status_code
            for _ in range(BAD_TOKENS_PER_MINUTE + 1)
        ]
        assert one[-1] == 429


@pytest.mark.parametrize("command", ["run", "web"])
def test_a_proxy_that_is_not_an_address_is_refused(command: str) -> None:
    result = CliRunner().invoke(app, [command, "--forwarded-allow-ips", "10.0.0.1,proxy.local"])
    assert result.exit_code == 2
    assert "--forwarded-allow-ips: 'proxy.local' is not an IP address or network" in result.output


def test_the_setting_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVALBOT_FORWARDED_ALLOW_IPS", "10.0.0.0/33")
    result = CliRunner().invoke(app, ["status"])
    assert result.exit_code == 2
    assert "EVALBOT_FORWARDED_ALLOW_IPS" in result.output and "10.0.0.0/33" in result.output


GUESSED_PAGES = [
    ("GET", "/s/{}"),
    ("GET", "/s/{}/texts"),
    ("GET", "/cancel/{}"),
    ("GET", "/nominate/{}"),
    ("GET", "/offer/{}"),
    ("GET", "/register/{}"),
    ("GET", "/unsubscribe/{}"),
    ("POST", "/unsubscribe/{}"),
    ("POST", "/unsubscribe/{}/undo"),
]


def test_every_personal_link_page_slows_guessing(tmp_path: Path) -> None:
    """Whichever kind of personal link is guessed, past the budget the answer is 429 with
    Retry-After rather than another "this link does not work". Each kind is guessed from its own
    client address, named by a trusted proxy, so each starts with a whole budget."""
    prepare(tmp_path)
    flags = ("--forwarded-allow-ips", "127.0.0.1")
    with live("web", tmp_path, *flags) as service, httpx.Client(base_url=service.base_url) as proxy:
        for n, (method, path) in enumerate(GUESSED_PAGES):
            client = {"X-Forwarded-For": f"203.0.113.{n + 1}"}
            answers = [
                proxy.request(method, path.format(secrets.token_urlsafe(24)), headers=client)
                for _ in range(BAD_TOKENS_PER_MINUTE + 1)
            ]
            statuses = [answer.status_code for answer in answers]
            assert statuses[:BAD_TOKENS_PER_MINUTE] == [404] * BAD_TOKENS_PER_MINUTE, path
            assert statuses[-1] == 429, f"{method} {path}: guessing is not slowed"
            assert int(answers[-1].headers["retry-after"]) <= 60
            assert "Too many attempts" in answers[-1].text
