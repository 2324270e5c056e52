"""The partnership's policy: survey timings, the sending window, the cancellation cut-off, charges.

Every number has a default (DESIGN.md, "One booking's life") and can be changed in the
``[policy]`` table of ``evalbot.toml``, for the whole partnership or for one course under
``[policy.courses."Course title"]``. ``load_policy`` checks the table and raises ``PolicyError``
naming the key that is wrong and what it expects, so a bad policy stops start-up.

Survey timings, per stage:

- ``anchor``: ``"start"`` or ``"end"`` of the session;
- ``opens_after``: from the anchor to the opening (negative opens before it: ``"-7d"``);
- ``reminders``: offsets from the opening, ``["2d", "5d"]``;
- ``reminder_cap``: at most this many reminders (defaults to the number of offsets);
- ``closes_after``: from the opening to the closing.

Durations are written like ``"28d"``, ``"36h"``, ``"15m"``, ``"2w"``, ``"3mo"`` or combined
``"1d12h"``. A month (``mo``) is a calendar month: the same day of the month, or the month's last
day when it has no such day (31 January + ``"1mo"`` is 28 or 29 February). ``m`` alone is minutes.
The default impact survey opens 91 days (13 weeks) after the end of the session, so every delegate
of a session gets it on the same day of the week; ``"3mo"`` keeps the day of the month instead.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from surveys.models import Stage

DEFAULT_REGION = "ENG"
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# Messages that have a text-message form (templates/sms/<name>.txt), and those sent as texts by
# default: survey reminders, the late-cancellation notice to the manager, no-show notices.
SMS_CAPABLE = (
    "survey-invitation",
    "survey-reminder",
    "nominate-request",
    "no-show-delegate",
    "no-show-manager",
)
DEFAULT_SMS_MESSAGES = frozenset(
    {"survey-reminder", "nominate-request", "no-show-delegate", "no-show-manager"}
)
_DURATION = re.compile(r"(?P<sign>[-+]?)\s*(?P<parts>(?:\d+\s*(?:mo|[wdhm])\s*)+)$")
_PART = re.compile(r"(\d+)\s*(mo|[wdhm])")
_UNITS = {"w": timedelta(weeks=1), "d": timedelta(days=1), "h": timedelta(hours=1)}
_UNITS["m"] = timedelta(minutes=1)


@dataclass(frozen=True)
class Span:
    """A policy duration: calendar ``months`` and then a fixed ``delta`` (both negative or not).

    Add it to a datetime with ``after``; ``Span(delta=timedelta(days=7)) == timedelta(days=7)``
    holds, so a span without months reads like the timedelta it is.
    """

    months: int = 0
    delta: timedelta = timedelta()

    def after(self, at: datetime) -> datetime:
        """``at`` moved by this span on ``at``'s own clock (months keep the day, or the month's
        last day when it is shorter)."""
        if self.months:
            # Loaded when first needed: most commands never compute a send time.
            from dateutil.relativedelta import relativedelta

            at = at + relativedelta(months=self.months)
        return at + self.delta

    def shortest(self) -> timedelta:
        """The least this span can last (a month counts 28 days): for checks made in advance."""
        per_month = 28 if self.months >= 0 else 31
        return self.delta + timedelta(days=per_month * self.months)

    def longest(self) -> timedelta:
        """The most this span can last (a month counts 31 days)."""
        per_month = 31 if self.months >= 0 else 28
        return self.delta + timedelta(days=per_month * self.months)

    def __add__(self, other: Span | timedelta) -> Span:
        if isinstance(other, timedelta):
            return Span(self.months, self.delta + other)
        return Span(self.months + other.months, self.delta + other.delta)

    def __neg__(self) -> Span:
        return Span(-self.months, -self.delta)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, timedelta):
            return self.months == 0 and self.delta == other
        if isinstance(other, Span):
            return (self.months, self.delta) == (other.months, other.delta)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.delta) if self.months == 0 else hash((self.months, self.delta))

    def __str__(self) -> str:
        """``"3 months"``, ``"2 days"``, ``"1 hour 30 minutes"``, ``"-7 days"``."""
        sign = "-" if self.months < 0 or self.delta < timedelta() else ""
        months, delta = abs(self.months), abs(self.delta)
        minutes = int(delta.total_seconds() // 60)
        days, minutes = divmod(minutes, 24 * 60)
        hours, minutes = divmod(minutes, 60)
        counts = ((months, "month"), (days, "day"), (hours, "hour"), (minutes, "minute"))
        parts = [f"{n} {unit}{'s' if n != 1 else ''}" for n, unit in counts if n]
        return sign + (" ".join(parts) or "0 minutes")


class PolicyError(ValueError):
    """A policy value that cannot be used; the message starts with the key, e.g. ``policy.x``."""


class StagePolicy(BaseModel):
    """When one survey stage opens, is reminded and closes."""

    model_config = ConfigDict(frozen=True)

    anchor: Literal["start", "end"]
    opens_after: Span  # from the anchor; negative is before it
    reminders: list[Span]  # offsets after opening, shortest first
    reminder_cap: int
    closes_after: Span  # from the opening

    def reminder_offsets(self) -> list[Span]:
        """The reminders that will actually be sent, in order, within the cap."""
        return self.reminders[: self.reminder_cap]


class Policy(BaseModel):
    """A partnership's (or one course's) policy. Build one with ``load_policy``."""

    model_config = ConfigDict(frozen=True)

    stages: dict[Stage, StagePolicy]
    manager_survey: bool = False
    trainer_report: bool = True  # ask each session's trainer for a report when it ends
    window_start: time = time(8, 0)
    window_end: time = time(18, 0)
    window_days: set[int] = Field(default_factory=lambda: {0, 1, 2, 3, 4})  # 0 = Monday
    bank_holidays: bool = True  # never send on a bank holiday
    bank_holiday_region: str = DEFAULT_REGION  # England and Wales share their bank holidays
    cutoff_working_days: int = 2
    cutoff_hours: int | None = None  # when set, the cut-off is this many hours before the start
    charge_full_day_pence: int = 0
    charge_half_day_pence: int = 0
    register_opens_before: Span = Span(delta=timedelta(minutes=15))
    register_reminder_after: Span = Span(delta=timedelta(hours=24))
    refresher_years: int = 2
    no_show_alert_rate: float = 0.15  # the quarterly report flags courses above this
    # The partnership's own words in messages (see WORDING_DEFAULTS).
    cancellation_terms: str = ""
    no_show_terms: str = ""
    accessibility_statement: str = ""
    # The waiting list (``schedules.waitlist``): how long a place offer stays open, the working
    # days before the start after which no place is offered, how long a manager has to nominate
    # a colleague after a late cancellation before the place goes to the waiting list, and the
    # working days before the start at which a session under its minimum is reported.
    offer_hours: int = 24
    offer_closes_before: int = 1
    nomination_hours: int = 4
    min_places_check: int = 10
    # The messages that may go by text where a person has a mobile number and no working chat.
    sms_messages: frozenset[str] = Field(default_factory=lambda: DEFAULT_SMS_MESSAGES)
    courses: dict[str, Policy] = Field(default_factory=dict)  # by normalised course title

    def for_course(self, title: str) -> Policy:
        """This policy with the course's own overrides, if it has any."""
        return self.courses.get(course_key(title), self)

    def stage(self, stage: Stage) -> StagePolicy:
        return self.stages[stage]


def course_key(title: str) -> str:
    """Course titles match whatever their case and spacing."""
    return " ".join(title.split()).casefold()


DEFAULT_STAGES: dict[str, dict[str, Any]] = {
    Stage.PRE.value: {
        "anchor": "start",
        "opens_after": "-7d",
        "reminders": ["5d"],  # two days before the start
        "closes_after": "7d",  # at the start
    },
    Stage.END.value: {
        "anchor": "end",
        "opens_after": "0d",
        "reminders": ["2d", "5d"],
        "closes_after": "14d",
    },
    Stage.IMPACT.value: {
        "anchor": "end",
        "opens_after": "91d",
        "reminders": ["7d", "14d"],
        "closes_after": "28d",
    },
}
# The manager's impact survey goes with the delegate's unless its timings are set apart.
DEFAULT_STAGES[Stage.MANAGER.value] = dict(DEFAULT_STAGES[Stage.IMPACT.value])
# The trainer's report on a session (``schedules.trainer_reports``): opens when the session ends,
# with the delegates' evaluation, one reminder two days later, closes after a week.
DEFAULT_STAGES[Stage.TRAINER.value] = {
    "anchor": "end",
    "opens_after": "0d",
    "reminders": ["2d"],
    "closes_after": "7d",
}

STAGE_KEYS = ("anchor", "opens_after", "reminders", "reminder_cap", "closes_after")
TOP_KEYS = (
    "stages",
    "manager_survey",
    "trainer_report",
    "window_start",
    "window_end",
    "window_days",
    "bank_holidays",
    "bank_holiday_region",
    "cutoff_working_days",
    "cutoff_hours",
    "charge_full_day_pence",
    "charge_half_day_pence",
    "register_opens_before",
    "register_reminder_after",
    "refresher_years",
    "no_show_alert_rate",
    "cancellation_terms",
    "no_show_terms",
    "accessibility_statement",
    "offer_hours",
    "offer_closes_before",
    "nomination_hours",
    "min_places_check",
    "sms_messages",
    "courses",
)

# Neutral wording, true of any partnership; a partnership puts its own in ``[policy]``.
WORDING_DEFAULTS: dict[str, str] = {
    "cancellation_terms": (
        "Places are limited, so please tell us as early as you can if you cannot come."
    ),
    "no_show_terms": (
        "When a delegate does not attend and gave no notice, we let them and the line manager "
        "who approved the booking know."
    ),
    "accessibility_statement": (
        "If you need any adjustments to take part, please reply to this message and tell us "
        "what would help."
    ),
}


def parse_duration(value: Any, key: str) -> Span:
    """``"28d"``, ``"36h"``, ``"-7d"``, ``"1d12h"``, ``"15m"``, ``"2w"``, ``"3mo"`` to a Span."""
    expected = 'expected a duration like "28d", "36h" or "3mo"'
    if not isinstance(value, str):
        raise PolicyError(f"{key}: {expected} (given: {value!r})")
    match = _DURATION.match(value.strip().lower())
    if match is None:
        raise PolicyError(f"{key}: {expected} (given: {value!r})")
    months, total = 0, timedelta()
    for number, unit in _PART.findall(match["parts"]):
        if unit == "mo":
            months += int(number)
        else:
            total += int(number) * _UNITS[unit]
    span = Span(months, total)
    return -span if match["sign"] == "-" else span


def _parse_time(value: Any, key: str) -> time:
    if isinstance(value, time):
        return value
    if isinstance(value, str) and re.fullmatch(r"\d{1,2}:\d{2}", value.strip()):
        hours, minutes = (int(part) for part in value.strip().split(":"))
        if hours < 24 and minutes < 60:
            return time(hours, minutes)
    raise PolicyError(f'{key}: expected a time of day like "08:00" (given: {value!r})')


def _parse_days(value: Any, key: str) -> set[int]:
    if not isinstance(value, list) or not value:
        raise PolicyError(f'{key}: expected a list of days like ["mon", "tue"] (given: {value!r})')
    days: set[int] = set()
    for item in value:
        name = str(item).strip().lower()[:3]
        if name not in DAYS:
            raise PolicyError(
                f"{key}: {item!r} is not a day; use mon, tue, wed, thu, fri, sat, sun"
            )
        days.add(DAYS.index(name))
    return days


def _bool(value: Any, key: str) -> bool:
    if not isinstance(value, bool):
        raise PolicyError(f"{key}: expected true or false (given: {value!r})")
    return value


def _whole(minimum: int) -> Callable[[Any, str], int]:
    def convert(value: Any, key: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise PolicyError(
                f"{key}: expected a whole number of at least {minimum} (given: {value!r})"
            )
        return value

    return convert


def _optional_hours(value: Any, key: str) -> int | None:
    if value is None or value is False:
        return None
    return _whole(0)(value, key)


def _rate(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise PolicyError(
            f"{key}: expected a fraction between 0 and 1, like 0.15 (given: {value!r})"
        )
    return float(value)


def _text(value: Any, key: str) -> str:
    if not isinstance(value, str):
        raise PolicyError(f'{key}: expected text in quotes, like "..." (given: {value!r})')
    return " ".join(value.split())


def _sms_messages(value: Any, key: str) -> frozenset[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise PolicyError(f'{key}: expected a list of message names like ["survey-reminder"]')
    for item in value:
        if item not in SMS_CAPABLE:
            raise PolicyError(
                f"{key}: {item!r} has no text-message form; choose from {', '.join(SMS_CAPABLE)}"
            )
    return frozenset(value)


def _region(value: Any, key: str) -> str:
    if value == DEFAULT_REGION:
        return DEFAULT_REGION  # known to ``holidays``: no need to load it to say so
    import holidays  # loaded when first needed: most commands never look up a bank holiday

    known = holidays.list_supported_countries()["GB"]
    if value not in known:
        raise PolicyError(f"{key}: expected one of {', '.join(known)} (given: {value!r})")
    return str(value)


def _positive_duration(value: Any, key: str) -> Span:
    duration = parse_duration(value, key)
    if duration.shortest() <= timedelta():
        raise PolicyError(f"{key}: must be longer than zero (given: {value!r})")
    return duration


def _non_negative_duration(value: Any, key: str) -> Span:
    duration = parse_duration(value, key)
    if duration.shortest() < timedelta():
        raise PolicyError(f"{key}: must not be negative (given: {value!r})")
    return duration


_CONVERTERS: dict[str, Callable[[Any, str], Any]] = {
    "manager_survey": _bool,
    "trainer_report": _bool,
    "window_start": _parse_time,
    "window_end": _parse_time,
    "window_days": _parse_days,
    "bank_holidays": _bool,
    "bank_holiday_region": _region,
    "cutoff_working_days": _whole(0),
    "cutoff_hours": _optional_hours,
    "charge_full_day_pence": _whole(0),
    "charge_half_day_pence": _whole(0),
    "register_opens_before": _non_negative_duration,
    "register_reminder_after": _non_negative_duration,
    "refresher_years": _whole(1),
    "no_show_alert_rate": _rate,
    "cancellation_terms": _text,
    "no_show_terms": _text,
    "accessibility_statement": _text,
    "offer_hours": _whole(1),
    "offer_closes_before": _whole(0),
    "nomination_hours": _whole(0),
    "min_places_check": _whole(0),
    "sms_messages": _sms_messages,
}


def _table(value: Any, key: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise PolicyError(f"{key}: expected a table of settings (given: {value!r})")
    return value


def _check_keys(table: Mapping[str, Any], known: tuple[str, ...], key: str) -> None:
    for name in table:
        if name not in known:
            raise PolicyError(f"{key}.{name}: not a policy setting; known: {', '.join(known)}")


def _stage_policy(raw: Mapping[str, Any], key: str) -> StagePolicy:
    anchor = raw.get("anchor")
    if anchor not in ("start", "end"):
        raise PolicyError(f'{key}.anchor: expected "start" or "end" (given: {anchor!r})')
    opens_after = parse_duration(raw.get("opens_after"), f"{key}.opens_after")
    closes_after = _positive_duration(raw.get("closes_after"), f"{key}.closes_after")
    given = raw.get("reminders", [])
    if not isinstance(given, list):
        raise PolicyError(f'{key}.reminders: expected a list of durations like ["2d", "5d"]')
    reminders = [_positive_duration(item, f"{key}.reminders") for item in given]
    for item, offset in zip(given, reminders, strict=True):
        if offset.shortest() >= closes_after.longest():
            raise PolicyError(
                f"{key}.reminders: {item!r} comes at or after the closing "
                f"({raw.get('closes_after')!r} after opening), so it could never be sent"
            )
    cap = _whole(0)(raw.get("reminder_cap", len(reminders)), f"{key}.reminder_cap")
    return StagePolicy(
        anchor=anchor,
        opens_after=opens_after,
        reminders=sorted(reminders, key=lambda span: (span.shortest(), span.longest())),
        reminder_cap=cap,
        closes_after=closes_after,
    )


def _merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for name, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(name), Mapping):
            merged[name] = _merge(merged[name], value)
        else:
            merged[name] = value
    return merged


def _build(raw: Mapping[str, Any], key: str) -> Policy:
    _check_keys(raw, TOP_KEYS, key)
    values: dict[str, Any] = {}
    for name, convert in _CONVERTERS.items():
        if name in raw:
            values[name] = convert(raw[name], f"{key}.{name}")
    stages_raw = _table(raw.get("stages", {}), f"{key}.stages")
    known_stages = tuple(stage.value for stage in Stage)
    _check_keys(stages_raw, known_stages, f"{key}.stages")
    stages: dict[Stage, StagePolicy] = {}
    for stage in Stage:
        stage_key = f"{key}.stages.{stage.value}"
        override = _table(stages_raw.get(stage.value, {}), stage_key)
        _check_keys(override, STAGE_KEYS, stage_key)
        stages[stage] = _stage_policy(_merge(DEFAULT_STAGES[stage.value], override), stage_key)
    values["stages"] = stages
    for name, text in WORDING_DEFAULTS.items():
        values.setdefault(name, text)
    policy = Policy(**values)
    if policy.window_start >= policy.window_end:
        raise PolicyError(
            f"{key}.window_end: must be later than window_start "
            f"({policy.window_start:%H:%M}); the window cannot span midnight"
        )
    return policy


def load_policy(raw: Mapping[str, Any] | None) -> Policy:
    """The policy from the ``[policy]`` table (``{}`` for the defaults); raises ``PolicyError``.

    A course's table (``[policy.courses."Title"]``) holds the same keys as the partnership's and
    changes only those it names.
    """
    raw = dict(raw or {})
    courses_raw = _table(raw.pop("courses", {}), "policy.courses")
    base_raw = dict(raw)
    policy = _build(base_raw, "policy")
    courses: dict[str, Policy] = {}
    for title, override in courses_raw.items():
        course_key_text = f'policy.courses."{title}"'
        table = _table(override, course_key_text)
        if "courses" in table:
            raise PolicyError(f"{course_key_text}.courses: a course cannot hold courses of its own")
        courses[course_key(title)] = _build(_merge(base_raw, table), course_key_text)
    return policy.model_copy(update={"courses": courses})


def default_policy() -> Policy:
    """The defaults of DESIGN.md, as if ``[policy]`` were empty."""
    return load_policy({})
