"""The Reports page: a coordinator produces a quarter's report (calendar or financial quarters as
set) with the function ``evalbot report quarterly`` calls, then opens it or downloads it with its
CSVs; a viewer can only read; bad input says what is wrong."""

from __future__ import annotations

import io
import zipfile

import pytest
from sqlmodel import Session, select
from typer.testing import CliRunner

from bot.cli import app as cli
from bot.web.app import create_app
from surveys.models import AuditEntry
from tests.conftest import utc
from tests.console_helpers import Clock, csrf
from tests.console_pages import CARLA, VIC, add_console_staff, signed_in
from tests.timeline import Timeline

NOW = utc("2026-04-20 10:00")


def make_app(world, engine, settings, database_url, tmp_path, **extra):
    world.standard()
    add_console_staff(database_url)
    Timeline(engine, settings).tick("2026-03-02 09:00")
    changed = settings.model_copy(update={"reports_dir": tmp_path / "reports", **extra})
    app = create_app(changed, engine)
    app.state.clock = Clock(NOW)
    return app, changed


@pytest.fixture
def app(world, engine, settings, database_url, tmp_path):
    return make_app(world, engine, settings, database_url, tmp_path)


def test_a_coordinator_produces_opens_and_downloads_a_quarter(
    app, engine, tmp_path, database_url, monkeypatch
):
    app, settings = app
    client = signed_in(app, settings.mail_dir, CARLA)
    page = client.get("/admin/reports")
    assert page.status_code == 200
    assert '<option value="2026Q2">2026 Q2 (April to June 2026)</option>' in page.text
    assert '<option value="2026Q1">2026 Q1 (January to March 2026)</option>' in page.text
    assert "No report has been produced here yet." in page.text

    made = client.post(
        "/admin/reports",
        data={"quarter": "2026Q1", "edition": "full", "csrf_token": csrf(page.text)},
        follow_redirects=False,
    )
    assert made.status_code == 303 and made.headers["location"] == "/admin/reports/2026Q1"
    folder = settings.reports_dir / "2026Q1"
    assert (folder / "report.html").is_file()
    assert [p.name for p in settings.reports_dir.iterdir()] == ["2026Q1"]  # no scratch left

    # The same files as `evalbot report quarterly 2026Q1 --out DIR` writes.
    out = tmp_path / "cli-report"
    monkeypatch.setenv("EVALBOT_DATABASE_URL", database_url)
    ran = CliRunner().invoke(cli, ["report", "quarterly", "2026Q1", "--out", str(out)])
    assert ran.exit_code == 0, ran.output
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in out.iterdir())

    summary = client.get("/admin/reports/2026Q1")
    assert summary.status_code == 200 and "2026 Q1 (January to March 2026)" in summary.text
    report = client.get("/admin/reports/2026Q1/report.html")
    assert report.status_code == 200 and report.headers["content-type"].startswith("text/html")
    assert "Working Together to Safeguard Children" in report.text
    csv_name = next(p.name for p in folder.glob("*.csv"))
    assert f'href="/admin/reports/2026Q1/{csv_name}"' in summary.text
    one = client.get(f"/admin/reports/2026Q1/{csv_name}")
    assert one.status_code == 200 and "attachment" in one.headers["content-disposition"]

    download = client.get("/admin/reports/2026Q1.zip")
    assert download.status_code == 200 and download.headers["content-type"] == "application/zip"
    names = zipfile.ZipFile(io.BytesIO(download.content)).namelist()
    assert "2026Q1/report.html" in names
    assert sorted(n for n in names if n.endswith(".csv")) == sorted(
        f"2026Q1/{p.name}" for p in folder.glob("*.csv")
    )
    listed = client.get("/admin/reports").text
    assert 'href="/admin/reports/2026Q1/report.html"' in listed
    with Session(engine) as session:
        entry = session.exec(select(AuditEntry).where(AuditEntry.action == "report.produced")).one()
    assert entry.actor == f"staff:{CARLA}" and entry.detail["quarter"] == "2026Q1"


def test_bad_input_and_viewers_change_nothing(app):
    app, settings = app
    client = signed_in(app, settings.mail_dir, CARLA)
    token = csrf(client.get("/admin/reports").text)
    bad = client.post("/admin/reports", data={"quarter": "2026Q5", "csrf_token": token})
    assert bad.status_code == 422 and "There is a problem" in bad.text and "Quarter:" in bad.text
    stale = client.post("/admin/reports", data={"quarter": "2026Q1", "csrf_token": "old"})
    assert stale.status_code == 400
    viewer = signed_in(app, settings.mail_dir, VIC)
    page = viewer.get("/admin/reports")
    assert "Produce the report" not in page.text and "You are a viewer" in page.text
    refused = viewer.post(
        "/admin/reports", data={"quarter": "2026Q1", "csrf_token": csrf(page.text)}
    )
    assert refused.status_code == 403
    assert not settings.reports_dir.exists() or not any(settings.reports_dir.iterdir())
    for path in ("/admin/reports/2026Q1", "/admin/reports/..%2F..%2Fetc", "/admin/reports/x.zip"):
        assert client.get(path).status_code == 404


def test_financial_quarters_as_set(world, engine, settings, database_url, tmp_path):
    app, changed = make_app(world, engine, settings, database_url, tmp_path, quarters="financial")
    client = signed_in(app, changed.mail_dir, CARLA)
    page = client.get("/admin/reports")
    # 20 April 2026 is in the first quarter of the financial year 2026/27.
    assert '<option value="2026Q1">2026/27 Q1 (April to June 2026)</option>' in page.text
    assert '<option value="2025Q4">2025/26 Q4 (January to March 2026)</option>' in page.text
    made = client.post(
        "/admin/reports",
        data={"quarter": "2025Q4", "edition": "anonymous", "csrf_token": csrf(page.text)},
        follow_redirects=False,
    )
    assert made.headers["location"] == "/admin/reports/2025Q4-anonymous"
    summary = client.get(made.headers["location"]).text
    assert "2025/26 Q4 (January to March 2026), anonymous" in summary
