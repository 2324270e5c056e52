"""The calendar: the sending window, bank holidays, working days and the cancellation cut-off.

Times come in and go out as aware UTC datetimes; the window is read in the partnership's zone, so
a message due at 08:00 local goes out at 08:00 local in winter and in summer alike.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo

import holidays

from schedules.policy import Policy, Span

# Further than this without an open window means the policy allows no sending day at all.
_SEARCH_DAYS = 400


@cache
def _bank_holidays(region: str, year: int) -> frozenset[date]:
    return frozenset(holidays.country_holidays("GB", subdiv=region, years=year))


def is_bank_holiday(day: date, policy: Policy) -> bool:
    return day in _bank_holidays(policy.bank_holiday_region, day.year)


def is_sending_day(day: date, policy: Policy) -> bool:
    """A day of the window's weekdays, and not a bank holiday if the policy avoids them."""
    if day.weekday() not in policy.window_days:
        return False
    return not (policy.bank_holidays and is_bank_holiday(day, policy))


def is_working_day(day: date, policy: Policy) -> bool:
    """Monday to Friday and not a bank holiday: the days the cancellation cut-off counts."""
    return day.weekday() < 5 and not is_bank_holiday(day, policy)


def _local(day: date, at: time, zone: ZoneInfo) -> datetime:
    # Through UTC and back, so a wall time that a clock change skips lands on a real instant.
    return datetime.combine(day, at, tzinfo=zone).astimezone(UTC)


def in_window(at: datetime, policy: Policy, zone: ZoneInfo) -> bool:
    """Whether a message may go out at ``at``."""
    local = at.astimezone(zone)
    if not is_sending_day(local.date(), policy):
        return False
    return (
        _local(local.date(), policy.window_start, zone)
        <= at
        < _local(local.date(), policy.window_end, zone)
    )


def next_send_time(at: datetime, policy: Policy, zone: ZoneInfo) -> datetime:
    """``at`` if it falls inside the sending window, else the next opening of the window (UTC)."""
    if at.tzinfo is None:
        raise ValueError(f"naive datetime {at!r} given where UTC is required")
    at = at.astimezone(UTC)
    if in_window(at, policy, zone):
        return at
    day = at.astimezone(zone).date()
    for _ in range(_SEARCH_DAYS):
        opening = _local(day, policy.window_start, zone)
        if opening >= at and is_sending_day(day, policy):
            return opening
        day += timedelta(days=1)
    raise ValueError("the policy's sending window has no day on which a message can be sent")


def shift(at: datetime, delta: Span | timedelta, zone: ZoneInfo) -> datetime:
    """``at`` moved by ``delta`` on the partnership's clock: 7 days before a 09:30 start is
    09:30, whether or not the clocks change in between, and ``"3mo"`` after 30 November is
    28 or 29 February (UTC in, UTC out)."""
    span = delta if isinstance(delta, Span) else Span(delta=delta)
    return span.after(at.astimezone(zone)).astimezone(UTC)


def cancellation_cutoff(starts_at: datetime, policy: Policy, zone: ZoneInfo) -> datetime:
    """The last moment a booking can be cancelled in time (UTC); later is a late cancellation.

    With ``cutoff_hours`` set it is that many hours before the start. Otherwise it is the end of
    the working day that is ``cutoff_working_days`` working days before the session's date: with
    2, a Monday session can be cancelled in time until Thursday ends (midnight, local time).
    """
    if policy.cutoff_hours is not None:
        return starts_at - timedelta(hours=policy.cutoff_hours)
    return working_days_before(starts_at, policy.cutoff_working_days, policy, zone)


def working_days_before(starts_at: datetime, days: int, policy: Policy, zone: ZoneInfo) -> datetime:
    """The end of the working day that is ``days`` working days before the session's date (UTC):
    with 1, a Monday session's is midnight at the end of Friday. With 0, the start itself."""
    if days == 0:
        return starts_at
    day = starts_at.astimezone(zone).date()
    counted = 0
    while counted < days:
        day -= timedelta(days=1)
        if is_working_day(day, policy):
            counted += 1
    return _local(day + timedelta(days=1), time(0, 0), zone)
