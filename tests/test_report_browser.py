"""The quarterly report as a board sees it: rendered by headless Chromium, on screen and on A4."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from PIL import Image
from sqlmodel import Session
from typer.testing import CliRunner

from bot.cli import app
from tests.report_world import NM, WT, build_quarter

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
# A4 less the page's 13 mm side margins, in CSS pixels (96 per inch).
A4_CONTENT_WIDTH = round((210 - 26) / 25.4 * 96)

# How far the widest table reaches past the right edge of the page's text column.
SPILL = """() => {
  const main = document.querySelector("main");
  const edge = main.getBoundingClientRect().right - parseFloat(getComputedStyle(main).paddingRight);
  return Math.max(...[...document.querySelectorAll("table")].map(t => t.getBoundingClientRect().right - edge));
}"""

pytestmark = pytest.mark.skipif(
    not os.path.exists(CHROMIUM), reason=f"no Chromium at {CHROMIUM} to render the report with"
)


@pytest.fixture
def report_folder(
    session: Session, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    build_quarter(session)
    monkeypatch.setenv("EVALBOT_DATABASE_URL", database_url)
    monkeypatch.setenv("EVALBOT_POLICY", '{"no_show_alert_rate": 0.25}')
    out = tmp_path / "report"
    result = CliRunner().invoke(
        app, ["report", "quarterly", "2026Q1", "--out", str(out), "--now", "2026-04-15T10:00"]
    )
    assert result.exit_code == 0, result.output
    return out


def test_report_renders_in_chromium_and_fits_a4(report_folder: Path, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    page_url = (report_folder / "report.html").as_uri()
    screenshot = tmp_path / "report.png"
    pdf = tmp_path / "report.pdf"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 900, "height": 1200})
            # Nothing may be fetched: the page is one self-contained file.
            fetched: list[str] = []
            page.on("request", lambda request: fetched.append(request.url))
            page.goto(page_url)
            page.screenshot(path=str(screenshot), full_page=True)
            text = page.inner_text("body")
            charts = page.eval_on_selector_all(
                "figure svg", "svgs => svgs.map(s => s.getBoundingClientRect().height)"
            )
            # On screen too, no table runs past the right edge of the white page.
            spill = page.evaluate(SPILL)

            # On paper: the content width of A4, in print styles, must hold every table.
            page.set_viewport_size({"width": A4_CONTENT_WIDTH, "height": 1100})
            page.emulate_media(media="print")
            overflow = page.evaluate(
                "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            page.pdf(path=str(pdf), format="A4", print_background=True)
            keep = os.environ.get("REPORT_PNG_FOR_REVIEW")
            if keep:  # for a person to look at
                page.set_viewport_size({"width": 900, "height": 1200})
                page.emulate_media(media="screen")
                page.screenshot(path=keep, full_page=True)
        finally:
            browser.close()

    assert fetched == [page_url]
    for heading in (
        "Multi-agency safeguarding training: quarterly report",
        "At a glance",
        "1. Sessions in the quarter",
        "2. Attendance",
        "3. Response rates",
        "4. What the evaluation found",
        "5. Reaction: satisfaction",
        "6. Learning: knowledge and confidence",
        "7. Behaviour: impact on practice",
        "8. Results: for children and families",
        "9. Accessibility and comments",
        "10. Notable issues",
        "11. By sector, agency, role and course level",
    ):
        assert heading in text
    assert "2026 Q1" in text and "January to March 2026" in text
    assert "Riverside Children's Services" in text and WT in text and NM in text
    assert "Agency no-show rate: Riverside Children's Services." in text
    assert "+1.40" in text  # Working Together, knowledge, pre to end
    assert "£187.50" in text  # the charges of the quarter
    assert "Workload or lack of time" in text
    # The four charts drew, each with some height.
    assert len(charts) == 4 and all(height > 80 for height in charts)
    assert overflow <= 0, f"the page is {overflow}px wider than A4's printable width"
    assert spill < 1, f"a table runs {spill}px past the page's text on screen"

    image = Image.open(screenshot).convert("RGB")
    width, height = image.size
    assert width == 900 and height > 3000  # a long page, not an empty one
    small = image.resize((width // 4, height // 4))
    colours = small.getcolors(maxcolors=1_000_000) or []
    assert len(colours) > 200  # text, tables and charts, not a blank page
    ink = sum(count for count, colour in colours if sum(colour) < 600)
    assert ink / (small.width * small.height) > 0.03

    data = pdf.read_bytes()
    pages = len(re.findall(rb"/Type\s*/Page(?!s)", data))
    assert data.startswith(b"%PDF") and 3 <= pages <= 12, f"{pages} A4 pages"


def test_anonymous_edition_as_a_board_reads_it(
    session: Session, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from playwright.sync_api import sync_playwright

    build_quarter(session)
    monkeypatch.setenv("EVALBOT_DATABASE_URL", database_url)
    out = tmp_path / "anonymous"
    result = CliRunner().invoke(app, ["report", "quarterly", "2026Q1", "--out", str(out),
                                      "--now", "2026-04-15T10:00", "--anonymous"])  # fmt: skip
    assert result.exit_code == 0, result.output
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 900, "height": 1200})
            page.goto((out / "report.html").as_uri())
            notice = page.inner_text("p.anonymous")
            text = page.inner_text("body")
            headers = page.eval_on_selector_all(
                "section[aria-labelledby=courses] th", "cells => cells.map(c => c.innerText)"
            )
            charts = page.eval_on_selector_all("figure svg", "svgs => svgs.length")
        finally:
            browser.close()
    # The notice at the top says what was left out, and the page bears it out.
    assert notice.startswith("Anonymous edition.")
    assert "fewer than 5 people" in notice and "[name]" in notice
    assert headers[:4] == ["Date", "Course", "Session", "Places"]  # no trainer column
    assert "Tariq" not in text
    assert "+1.40" not in text and "<5" in text  # three delegates: too few to show a change
    assert "too few people to show" in text
    assert "25.0%" in text  # attendance is not an opinion: the no-show rate stays
    # Attendance and response rates still have their charts; change and barriers do not.
    assert charts == 2
