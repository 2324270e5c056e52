"""``evalbot templates check``: render every template, overridden or not, with sample data.

A partnership's own templates (``EVALBOT_TEMPLATES_DIR``) are checked before a message would
fail at sending. Each template is compiled and rendered with sample values for whatever it asks
for, so a syntax error, an unknown filter, a missing ``{% include %}`` or an expression that
cannot be worked out is reported with the file and line where it stands. A variable that no
message provides is not found here (the sample stands in for anything); at sending, such a
message fails with the template's name and line instead of going out with a gap.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import ChainableUndefined, Environment, TemplateSyntaxError, Undefined

from bot.templating import TEMPLATES, Look, build_environment, local_time

SAMPLE_TEXT = "Sample"
SAMPLE_TIME = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
SUFFIXES = (".html", ".txt")


class Sample(ChainableUndefined):
    """Stands in for any value a template asks for: text, a number, an empty list, a link.

    Jinja types these methods of ``Undefined`` as never returning (they raise there); here they
    answer, hence the ``override`` ignores.
    """

    __slots__ = ()

    def __str__(self) -> str:
        return SAMPLE_TEXT

    def __html__(self) -> str:
        return SAMPLE_TEXT

    def __call__(self, *args: Any, **kwargs: Any) -> Sample:  # type: ignore[override]
        return self

    def __int__(self) -> int:  # type: ignore[override]
        return 1

    def __float__(self) -> float:  # type: ignore[override]
        return 1.0

    def __lt__(self, other: Any) -> bool:  # type: ignore[override]
        return False

    __le__ = __gt__ = __ge__ = __lt__  # type: ignore[assignment]

    def __add__(self, other: Any) -> Any:
        return other if isinstance(other, str) else self

    __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = __truediv__ = __mod__ = __add__


def _sample_time(value: Any, *args: Any) -> str:
    return local_time(SAMPLE_TIME if isinstance(value, Undefined) else value, *args)


@dataclass(frozen=True)
class Problem:
    file: Path
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f", line {self.line}" if self.line else ""
        return f"{self.file}{where}: {self.message}"


@dataclass
class CheckResult:
    checked: list[str]
    overridden: list[str]
    unknown: list[Path]  # override files with no shipped template of that name
    problems: list[Problem]


def template_names(folder: Path) -> set[str]:
    return {
        path.relative_to(folder).as_posix()
        for path in folder.rglob("*")
        if path.is_file() and path.suffix in SUFFIXES
    }


def check_templates(overrides: Path | None) -> CheckResult:
    env = build_environment(Look(overrides=overrides), undefined=Sample)
    env.filters["local_time"] = _sample_time
    shipped = template_names(TEMPLATES)
    mine = template_names(overrides) if overrides else set()
    result = CheckResult(
        checked=sorted(shipped | mine),
        overridden=sorted(shipped & mine),
        unknown=[overrides / name for name in sorted(mine - shipped)] if overrides else [],
        problems=[],
    )
    for name in result.checked:
        problem = _render(env, name, overrides if name in mine else TEMPLATES)
        if problem:
            result.problems.append(problem)
    return result


def _render(env: Environment, name: str, folder: Path | None) -> Problem | None:
    path = (folder or TEMPLATES) / name
    try:
        env.get_template(name).render(_sample_context())
    except TemplateSyntaxError as exc:
        return Problem(Path(exc.filename or path), exc.lineno, exc.message or "syntax error")
    except Exception as exc:  # any failure of a template is a problem to report, not a crash
        file, line = _template_frame(exc, path)
        message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        return Problem(file, line, f"{type(exc).__name__}: {message}")
    return None


def _template_frame(exc: BaseException, fallback: Path) -> tuple[Path, int | None]:
    """The innermost template file and line in the exception's traceback."""
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if frame.filename.endswith(SUFFIXES):
            return Path(frame.filename), frame.lineno
    return fallback, None


def _sample_context() -> dict[str, Any]:
    return {
        "partnership": "Sample Safeguarding Children Partnership",
        "public_url": "https://evalbot.example.org",
        "timezone": "Europe/London",
        "recipient_name": "Alex Sample",
        "kind": "notice",
        "links": _Links(),
    }


class _Links(dict[str, str]):
    """Every personal link a template may name, as a sample URL."""

    def __missing__(self, key: str) -> str:
        return f"https://evalbot.example.org/{key}/sample-token"

    def __getattr__(self, key: str) -> str:
        return self[key]
