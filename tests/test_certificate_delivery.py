"""Certificates reach people as PDFs: attached to the "certificate ready" email a delegate gets
when the tick sees the certificate earned, and downloadable by the training team from the
console, a session's or an agency's in one file.

The bookings are the hand-counted quarter of tests/report_world.py: Alice (B1) attended the
whole Working Together session and finished her evaluation, so she has a certificate; Jo (B8)
attended part of it, so she has none.
"""

from __future__ import annotations

import email
import email.policy
import io
from pathlib import Path

from pypdf import PdfReader
from sqlmodel import Session, select
from typer.testing import CliRunner

from bot.cli import app as cli
from bot.web.app import create_app
from surveys.models import Agency
from tests.conftest import utc
from tests.console_helpers import Clock
from tests.console_pages import CARLA, add_console_staff, signed_in
from tests.report_world import QuarterWorld
from tests.report_world import quarter_world as quarter_world

NOW = utc("2026-04-20 10:00")


def pdf_text(data: bytes) -> list[str]:
    assert data.startswith(b"%PDF")
    return [" ".join(page.extract_text().split()) for page in PdfReader(io.BytesIO(data)).pages]


def test_the_certificate_email_carries_the_certificate_as_a_pdf(
    session: Session, quarter_world: QuarterWorld, database_url: str, tmp_path: Path
) -> None:
    env = {
        "EVALBOT_DATABASE_URL": database_url,
        "EVALBOT_MAIL_DIR": str(tmp_path / "mail"),
        "EVALBOT_PARTNERSHIP_NAME": "Riverside Safeguarding Partnership",
    }
    result = CliRunner().invoke(cli, ["tick", "--now", "2026-04-20T10:00"], env=env)
    assert result.exit_code == 0, result.output
    messages = [
        email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        for path in (tmp_path / "mail").glob("*.eml")
    ]
    ready = [m for m in messages if "certificate" in str(m["Subject"]).lower()]
    to_alice = [m for m in ready if "alice@example.org" in str(m["To"])]
    attachments = {
        part.get_filename(): part
        for message in to_alice
        for part in message.iter_attachments()  # type: ignore[attr-defined]
    }
    attachment = attachments["certificate-B1.pdf"]  # one per certificate email
    assert len(attachments) == len(to_alice)
    assert attachment.get_content_type() == "application/pdf"
    (page,) = pdf_text(attachment.get_content())
    for words in ("Certificate of attendance", "Alice Okafor", "Riverside Safeguarding Partnership",
                  "Booking B1"):  # fmt: skip
        assert words in page, words
    # Jo attended part of the course: no certificate email at all.
    assert not [m for m in ready if "jo@example.org" in str(m["To"])]


def test_the_console_downloads_a_sessions_and_an_agencys_certificates(
    session: Session,
    quarter_world: QuarterWorld,
    engine: object,
    settings: object,
    database_url: str,
    tmp_path: Path,
) -> None:
    add_console_staff(database_url)
    app = create_app(settings, engine)  # type: ignore[arg-type]
    app.state.clock = Clock(NOW)
    client = signed_in(app, tmp_path / "mail", CARLA)
    alice = quarter_world.bookings["B1"]

    page = client.get(f"/admin/sessions/{alice.session_id}")
    link = f"/admin/sessions/{alice.session_id}/certificates.pdf"
    assert f'href="{link}"' in page.text
    download = client.get(link)
    assert download.status_code == 200
    assert download.headers["content-type"] == "application/pdf"
    assert "attachment" in download.headers["content-disposition"]
    pages = pdf_text(download.content)
    assert any("Alice Okafor" in text for text in pages)
    assert not any("Jo " in text for text in pages)  # part attendance earns none

    riverside = session.exec(select(Agency).where(Agency.name.startswith("Riverside"))).first()  # type: ignore[attr-defined]
    assert riverside is not None
    form = client.get("/admin/certificates")
    assert f'<option value="{riverside.id}">' in form.text
    agency = client.get(f"/admin/certificates.pdf?agency={riverside.id}")
    assert agency.status_code == 200
    assert any("Alice Okafor" in text for text in pdf_text(agency.content))
    before = client.get(f"/admin/certificates.pdf?agency={riverside.id}&from=2027-01-01")
    assert before.status_code == 404
    assert "No certificates to download" in before.text
    assert "None of these bookings has a certificate of attendance yet." in before.text
    backwards = client.get(
        f"/admin/certificates.pdf?agency={riverside.id}&from=2026-03-01&to=2026-01-01"
    )
    assert backwards.status_code == 404 and "The first date is after the last" in backwards.text


def test_signed_out_browsers_get_no_certificates(
    session: Session, quarter_world: QuarterWorld, engine: object, settings: object
) -> None:
    from fastapi.testclient import TestClient

    app = create_app(settings, engine)  # type: ignore[arg-type]
    client = TestClient(app)
    alice = quarter_world.bookings["B1"]
    for path in (f"/admin/sessions/{alice.session_id}/certificates.pdf", "/admin/certificates"):
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"] == "/admin/sign-in"


def test_bad_choices_get_a_page_not_an_error(
    session: Session,
    quarter_world: QuarterWorld,
    engine: object,
    settings: object,
    database_url: str,
    tmp_path: Path,
) -> None:
    add_console_staff(database_url)
    app = create_app(settings, engine)  # type: ignore[arg-type]
    app.state.clock = Clock(NOW)
    client = signed_in(app, tmp_path / "mail", CARLA)
    for query, says in (
        ("agency=999999", "There is no such agency."),
        ("agency=abc", "There is no such agency."),
        ("agency=1&from=30/02/2026", "A date is not a real date"),
        ("agency=1&from=2026-02-30", "A date is not a real date"),
    ):
        response = client.get(f"/admin/certificates.pdf?{query}")
        assert response.status_code == 404 and says in response.text, query
    assert client.get("/admin/sessions/999999/certificates.pdf").status_code == 404
