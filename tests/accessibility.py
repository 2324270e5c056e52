"""axe-core in the browser: ``assert_accessible(page)`` fails with every violation axe finds."""

from __future__ import annotations

from typing import Any

from axe_playwright_python.sync_playwright import Axe

_AXE = Axe()


def assert_accessible(page: Any) -> None:
    """Run axe-core (every rule, WCAG 2.2 AA and best practice) on the page as it is now."""
    results = _AXE.run(page)
    assert results.violations_count == 0, (
        f"axe-core found problems on {page.url}:\n{results.generate_report()}"
    )
