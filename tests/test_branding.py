"""The partnership's look and words: its own templates, its logo and its colour.

A coordinator puts files in ``EVALBOT_TEMPLATES_DIR`` to change wording, checks them with
``evalbot templates check``, and sets ``EVALBOT_LOGO`` and ``EVALBOT_BRAND_COLOUR``; the
emails and pages Evalbot then writes carry them.
"""

from __future__ import annotations

import email
import email.policy
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from bot.cli import app
from bot.settings import SettingsError, load_settings
from bot.web.app import create_app

SVG_LOGO = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="80" height="40">'
    '<rect width="80" height="40" fill="#004b87"/></svg>'
)


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("EVALBOT_DATABASE_URL", f"sqlite:///{tmp_path / 'evalbot.db'}")
    monkeypatch.setenv("EVALBOT_MAIL_DIR", str(tmp_path / "mail"))
    monkeypatch.setenv("EVALBOT_PARTNERSHIP_NAME", "Riverside Safeguarding Partnership")
    return CliRunner()


def sent_mail(tmp_path: Path) -> email.message.EmailMessage:
    [written] = sorted((tmp_path / "mail").glob("*.eml"))
    message = email.message_from_bytes(written.read_bytes(), policy=email.policy.default)
    assert isinstance(message, email.message.EmailMessage)
    return message


def test_shipped_templates_all_render(cli: CliRunner) -> None:
    result = cli.invoke(app, ["templates", "check"])
    assert result.exit_code == 0, result.output
    assert "templates: no errors." in result.output


def test_a_broken_override_is_reported_by_file_and_line(cli: CliRunner, tmp_path: Path) -> None:
    own = tmp_path / "own" / "email"
    own.mkdir(parents=True)
    (own / "booking-confirmation-body.txt").write_text(
        "Dear {{ recipient_name }},\n\n{% if course %}\nYour place is booked.\n"
    )
    (own / "booking-confirmation-subject.txt").write_text("{{ course | shout }}\n")
    (own / "booking-confirmaton-body.html").write_text("<p>typo in the name</p>\n")
    result = cli.invoke(app, ["templates", "check", str(tmp_path / "own")])
    assert result.exit_code == 1
    body = own / "booking-confirmation-body.txt"
    assert f"{body}, line 4: Unexpected end of template" in result.output
    assert f"{own / 'booking-confirmation-subject.txt'}, line 1: No filter named 'shout'" in (
        result.output
    )
    assert f"{own / 'booking-confirmaton-body.html'}: not a template Evalbot uses" in result.output
    assert "2 with errors" in result.output


def test_own_wording_logo_and_colour_reach_a_real_email(
    cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    own = tmp_path / "own" / "email"
    own.mkdir(parents=True)
    (own / "admin-test-subject.txt").write_text("{{ partnership }}: checking our email settings\n")
    logo = tmp_path / "logo.svg"
    logo.write_text(SVG_LOGO)
    monkeypatch.setenv("EVALBOT_TEMPLATES_DIR", str(tmp_path / "own"))
    monkeypatch.setenv("EVALBOT_LOGO", str(logo))
    monkeypatch.setenv("EVALBOT_BRAND_COLOUR", "#004B87")
    monkeypatch.setenv("EVALBOT_PUBLIC_URL", "https://training.riverside.example")
    result = cli.invoke(app, ["outbox", "test-email", "coordinator@riverside.example"])
    assert result.exit_code == 0, result.output
    message = sent_mail(tmp_path)
    assert message["Subject"] == "Riverside Safeguarding Partnership: checking our email settings"
    html_part = message.get_body(("html",))
    assert html_part is not None
    html = html_part.get_content()
    assert (
        '<img src="https://training.riverside.example/brand/logo" '
        'alt="Riverside Safeguarding Partnership"' in html
    )
    assert "background: #004b87" in html


def test_a_broken_override_stops_the_message_with_its_reason(
    cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    own = tmp_path / "own" / "email"
    own.mkdir(parents=True)
    (own / "admin-test-subject.txt").write_text("Test {{ partnership | shout }}\n")
    monkeypatch.setenv("EVALBOT_TEMPLATES_DIR", str(tmp_path / "own"))
    result = cli.invoke(app, ["outbox", "test-email", "coordinator@riverside.example"])
    assert result.exit_code != 0
    assert "admin-test-subject.txt (line 1): No filter named 'shout'" in result.output
    assert not (tmp_path / "mail").exists() or not list((tmp_path / "mail").glob("*.eml"))


async def test_pages_show_the_logo_and_the_app_serves_it(
    tmp_path: Path, database_url: str, engine: object
) -> None:
    logo = tmp_path / "logo.png"
    logo.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 32)
    settings = load_settings(database_url=database_url, logo=logo, brand_colour="#0b0c0c")
    app_ = create_app(settings, engine)  # type: ignore[arg-type]
    transport = httpx.ASGITransport(app=app_)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        served = await client.get("/brand/logo")
        page = await client.get("/s/not-a-real-token")
    assert served.status_code == 200
    assert served.headers["content-type"] == "image/png"
    assert served.content == logo.read_bytes()
    assert '<img src="/brand/logo" alt="">' in page.text
    assert "--accent: #0b0c0c" in page.text


@pytest.mark.parametrize(
    ("colour", "expected"),
    [
        ("#ffdd00", "white text on #ffdd00 has a contrast of 1.35:1"),
        ("#00703c", None),
        ("0b0c0c", None),
        ("teal", "expected a colour like #1d4f91"),
    ],
)
def test_a_brand_colour_white_text_cannot_be_read_on_is_refused(
    colour: str, expected: str | None
) -> None:
    if expected is None:
        assert load_settings(brand_colour=colour).brand_colour == "#" + colour.lstrip("#")
        return
    with pytest.raises(SettingsError) as refused:
        load_settings(brand_colour=colour)
    assert "EVALBOT_BRAND_COLOUR" in str(refused.value)
    assert expected in str(refused.value)


def test_a_logo_that_is_not_an_image_is_refused(tmp_path: Path) -> None:
    notes = tmp_path / "logo.png"
    notes.write_text("Our logo is in the shared drive")
    with pytest.raises(SettingsError) as refused:
        load_settings(logo=notes)
    assert f"EVALBOT_LOGO: {notes} is not a PNG or SVG image" in str(refused.value)


def test_a_value_one_template_sets_does_not_reach_the_next(
    cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The subject, text and HTML of an email render from one shared context: a template's own
    # {% set %} stays in that template.
    own = tmp_path / "own" / "email"
    own.mkdir(parents=True)
    (own / "admin-test-subject.txt").write_text(
        '{% set partnership = "Somewhere Else" %}{{ partnership }}: a test\n'
    )
    (own / "admin-test-body.txt").write_text(
        '{% set recipient_name = "Nobody" %}From {{ partnership }} to {{ recipient_name }}.\n'
    )
    (own / "admin-test-body.html").write_text(
        "<p>From {{ partnership }} to {{ recipient_name }}.</p>\n"
    )
    monkeypatch.setenv("EVALBOT_TEMPLATES_DIR", str(tmp_path / "own"))
    result = cli.invoke(app, ["outbox", "test-email", "coordinator@riverside.example"])
    assert result.exit_code == 0, result.output
    message = sent_mail(tmp_path)
    assert message["Subject"] == "Somewhere Else: a test"
    text_part = message.get_body(("plain",))
    html_part = message.get_body(("html",))
    assert text_part is not None and html_part is not None
    assert "From Riverside Safeguarding Partnership to Nobody." in text_part.get_content()
    html = html_part.get_content()
    assert "From Riverside Safeguarding Partnership to " in html
    assert "Nobody" not in html
