"""Reports as PDF: ``report.pdf`` beside ``report.html``, laid out by WeasyPrint from the same
page (A4, its charts as vector graphics, page numbers in the footer and a contents list with
the page of each section)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any


def html_to_pdf(html: str, base: Path | None = None) -> bytes:
    """The page printed to PDF with its print styles; links resolve against ``base``."""
    document = render(html, base)
    data = document.write_pdf()
    assert isinstance(data, bytes)
    return data


def load_weasyprint() -> None:
    """Import WeasyPrint (half a second), so that it can load while the figures are computed."""
    import logging

    import weasyprint  # noqa: F401

    # WeasyPrint warns of every CSS property it does not know (screen-only ones): not news.
    logging.getLogger("weasyprint").setLevel(logging.ERROR)


def loading_weasyprint() -> threading.Thread:
    """``load_weasyprint`` started on a thread of its own; ``render`` waits for it if need be."""
    thread = threading.Thread(target=load_weasyprint, name="load-weasyprint", daemon=True)
    thread.start()
    return thread


def render(html: str, base: Path | None = None) -> Any:
    """The page laid out on A4 pages (a ``weasyprint.Document``), to write or inspect."""
    load_weasyprint()
    from weasyprint import HTML

    return HTML(string=html, base_url=str(base) if base else None).render()


def write_pdf(html_path: Path) -> Path:
    """``report.pdf`` beside ``report.html``, written whole or not at all."""
    pdf_path = html_path.with_suffix(".pdf")
    data = html_to_pdf(html_path.read_text(encoding="utf-8"), html_path.parent)
    partial = pdf_path.with_suffix(".pdf.partial")
    partial.write_bytes(data)
    partial.replace(pdf_path)
    return pdf_path


def split_across_pages(document: Any) -> list[str]:
    """What WeasyPrint cut over a page edge: every table row on two pages, and every short
    table (``table.short``, kept whole by ``break-inside: avoid``) on more than one. Each is
    named by its first words; none, when the report's print styles hold."""
    pages_of: dict[int, set[int]] = {}
    names: dict[int, str] = {}

    def walk(box: Any, page: int, in_head: bool) -> None:
        element = getattr(box, "element", None)
        kind = type(box).__name__
        # A header row is repeated on each page a table runs over: not a cut.
        in_head = in_head or (element is not None and element.tag == "thead")
        if element is not None and (
            (kind == "TableRowBox" and element.tag == "tr" and not in_head)
            or (kind == "TableBox" and "short" in (element.get("class") or "").split())
        ):
            pages_of.setdefault(id(element), set()).add(page)
            names.setdefault(id(element), " ".join(" ".join(element.itertext()).split())[:60])
        for child in getattr(box, "children", ()):
            walk(child, page, in_head)

    for number, page in enumerate(document.pages):
        walk(page._page_box, number, False)
    return [names[key] for key, pages in pages_of.items() if len(pages) > 1]
