"""Reports as PDF: ``report.pdf`` beside ``report.html``, laid out by WeasyPrint from the same
page (A4, its charts as vector graphics, page numbers in the footer and a contents list with
the page of each section)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def html_to_pdf(html: str, base: Path | None = None) -> bytes:
    """The page printed to PDF with its print styles; links resolve against ``base``."""
    document = render(html, base)
    data = document.write_pdf()
    assert isinstance(data, bytes)
    return data


def render(html: str, base: Path | None = None) -> Any:
    """The page laid out on A4 pages (a ``weasyprint.Document``), to write or inspect."""
    import logging

    from weasyprint import HTML

    # WeasyPrint warns of every CSS property it does not know (screen-only ones): not news.
    logging.getLogger("weasyprint").setLevel(logging.ERROR)
    return HTML(string=html, base_url=str(base) if base else None).render()


def write_pdf(html_path: Path) -> Path:
    """``report.pdf`` beside ``report.html``, written whole or not at all."""
    pdf_path = html_path.with_suffix(".pdf")
    data = html_to_pdf(html_path.read_text(encoding="utf-8"), html_path.parent)
    partial = pdf_path.with_suffix(".pdf.partial")
    partial.write_bytes(data)
    partial.replace(pdf_path)
    return pdf_path


def rows_split_across_pages(document: Any) -> list[str]:
    """The text of every table row that WeasyPrint split over two pages (none, when the
    report's ``break-inside: avoid`` holds)."""
    seen: dict[int, tuple[int, str]] = {}
    split: list[str] = []

    def walk(box: Any, page: int) -> None:
        element = getattr(box, "element", None)
        if (
            element is not None
            and getattr(element, "tag", None) == "tr"
            and (type(box).__name__ == "TableRowBox")
        ):
            key = id(element)
            if key in seen and seen[key][0] != page:
                split.append(seen[key][1])
            seen.setdefault(key, (page, " ".join(element.itertext()).strip()))
        for child in getattr(box, "children", ()):
            walk(child, page)

    for number, page in enumerate(document.pages):
        walk(page._page_box, number)
    return split
