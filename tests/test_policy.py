"""The policy: its defaults, partnership and course overrides, refusals naming the key, and the
calendar it is applied through (the sending window, bank holidays, the cancellation cut-off)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from typer.testing import CliRunner

from bot.cli import app
from schedules.calendar import cancellation_cutoff, in_window, next_send_time
from schedules.policy import PolicyError, default_policy, load_policy, parse_duration
from surveys.models import Stage
from tests.conftest import utc

LONDON = ZoneInfo("Europe/London")


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=LONDON)


def test_defaults_follow_one_bookings_life():
    policy = default_policy()
    pre, end, impact = (policy.stages[s] for s in (Stage.PRE, Stage.END, Stage.IMPACT))
    assert (pre.anchor, pre.opens_after, pre.closes_after) == (
        "start",
        timedelta(days=-7),
        timedelta(days=7),
    )
    # The pre-course reminder comes two days before the start: 5 days after opening.
    assert pre.opens_after + pre.reminders[0] == timedelta(days=-2)
    assert (end.anchor, end.opens_after, end.reminders, end.closes_after) == (
        "end",
        timedelta(0),
        [timedelta(days=2), timedelta(days=5)],
        timedelta(days=14),
    )
    assert impact.opens_after == timedelta(days=91)
    assert impact.reminders == [timedelta(days=7), timedelta(days=14)]
    assert impact.closes_after == timedelta(days=28)
    assert policy.stages[Stage.MANAGER] == impact
    assert policy.manager_survey is False
    assert (policy.window_start, policy.window_end) == (time(8), time(18))
    assert policy.window_days == {0, 1, 2, 3, 4}
    assert policy.bank_holidays is True
    assert (policy.cutoff_working_days, policy.cutoff_hours) == (2, None)
    assert (policy.charge_full_day_pence, policy.charge_half_day_pence) == (0, 0)
    assert policy.register_opens_before == timedelta(minutes=15)
    assert policy.register_reminder_after == timedelta(hours=24)
    assert policy.refresher_years == 2


def test_partnership_overrides_change_only_what_they_name():
    policy = load_policy(
        {
            "manager_survey": True,
            "window_start": "09:00",
            "window_days": ["Mon", "wed", "Friday"],
            "cutoff_hours": 48,
            "charge_full_day_pence": 7500,
            "stages": {"impact": {"opens_after": "8w", "reminders": ["1w"]}},
        }
    )
    assert policy.manager_survey is True
    assert policy.window_start == time(9) and policy.window_end == time(18)
    assert policy.window_days == {0, 2, 4}
    assert policy.cutoff_hours == 48
    assert policy.charge_full_day_pence == 7500
    impact = policy.stages[Stage.IMPACT]
    assert impact.opens_after == timedelta(weeks=8)
    assert impact.reminders == [timedelta(weeks=1)] and impact.reminder_cap == 1
    assert impact.closes_after == timedelta(days=28)  # untouched
    assert policy.stages[Stage.END] == default_policy().stages[Stage.END]


def test_a_course_overrides_the_partnership_and_is_found_by_title():
    policy = load_policy(
        {
            "charge_full_day_pence": 5000,
            "courses": {
                "Neglect:  Early Help": {
                    "stages": {"impact": {"opens_after": "6w"}},
                    "refresher_years": 3,
                }
            },
        }
    )
    course = policy.for_course("neglect: early help")
    assert course.stages[Stage.IMPACT].opens_after == timedelta(weeks=6)
    assert course.refresher_years == 3
    assert course.charge_full_day_pence == 5000  # inherited from the partnership
    assert policy.for_course("Another course") is policy
    assert policy.stages[Stage.IMPACT].opens_after == timedelta(days=91)


def test_the_reminder_cap_limits_the_offsets():
    policy = load_policy({"stages": {"end": {"reminders": ["2d", "5d", "9d"], "reminder_cap": 2}}})
    assert policy.stages[Stage.END].reminder_offsets() == [timedelta(days=2), timedelta(days=5)]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            {"stages": {"impact": {"closes_after": 28}}},
            'policy.stages.impact.closes_after: expected a duration like "28d", "36h" or "3mo"',
        ),
        (
            {"stages": {"impact": {"closes_after": "four weeks"}}},
            'policy.stages.impact.closes_after: expected a duration like "28d", "36h" or "3mo"',
        ),
        ({"windw_start": "08:00"}, "policy.windw_start: not a policy setting"),
        ({"stages": {"impakt": {}}}, "policy.stages.impakt: not a policy setting"),
        ({"stages": {"end": {"opens": "1d"}}}, "policy.stages.end.opens: not a policy setting"),
        ({"window_start": "8am"}, 'policy.window_start: expected a time of day like "08:00"'),
        ({"window_start": "19:00"}, "policy.window_end: must be later than window_start"),
        ({"window_days": ["mon", "funday"]}, "policy.window_days: 'funday' is not a day"),
        ({"manager_survey": "yes"}, "policy.manager_survey: expected true or false"),
        ({"cutoff_working_days": -1}, "policy.cutoff_working_days: expected a whole number"),
        ({"charge_full_day_pence": 12.5}, "policy.charge_full_day_pence: expected a whole number"),
        ({"no_show_alert_rate": 15}, "policy.no_show_alert_rate: expected a fraction"),
        ({"bank_holiday_region": "FR"}, "policy.bank_holiday_region: expected one of ENG"),
        ({"stages": {"pre": {"anchor": "middle"}}}, 'policy.stages.pre.anchor: expected "start"'),
        (
            {"stages": {"end": {"reminders": ["2d", "14d"]}}},
            "policy.stages.end.reminders: '14d' comes at or after the closing",
        ),
        ({"stages": {"end": {"closes_after": "0d"}}}, "policy.stages.end.closes_after: must be"),
        (
            {"courses": {"Neglect": {"stages": {"end": {"reminder_cap": "two"}}}}},
            'policy.courses."Neglect".stages.end.reminder_cap: expected a whole number',
        ),
        ({"courses": {"Neglect": {"courses": {}}}}, 'policy.courses."Neglect".courses'),
    ],
)
def test_a_bad_policy_is_refused_naming_the_key(raw, message):
    with pytest.raises(PolicyError) as caught:
        load_policy(raw)
    assert str(caught.value).startswith(message), str(caught.value)


def test_durations():
    assert parse_duration("28d", "k") == timedelta(days=28)
    assert parse_duration("36h", "k") == timedelta(hours=36)
    assert parse_duration("-7d", "k") == timedelta(days=-7)
    assert parse_duration("1d 12h", "k") == timedelta(days=1, hours=12)
    assert parse_duration("15m", "k") == timedelta(minutes=15)
    assert parse_duration("2w", "k") == timedelta(weeks=2)


def test_a_bad_policy_in_evalbot_toml_stops_every_command(tmp_path: Path, database_url, engine):
    (tmp_path / "evalbot.toml").write_text(
        f'database_url = "{database_url}"\n[policy.stages.impact]\ncloses_after = 28\n'
    )
    result = CliRunner().invoke(app, ["tick", "--now", "2026-03-02T09:00", "--dry-run"])
    assert result.exit_code == 2
    assert "policy.stages.impact.closes_after" in result.output
    assert 'expected a duration like "28d", "36h" or "3mo"' in result.output


# --- the calendar --------------------------------------------------------------------------


def test_inside_the_window_a_message_goes_at_once():
    policy = default_policy()
    at = local("2026-03-03 10:15")
    assert next_send_time(at, policy, LONDON) == at
    assert in_window(at, policy, LONDON)


def test_evening_and_weekend_wait_for_the_next_working_morning():
    policy = default_policy()
    assert next_send_time(local("2026-03-03 18:00"), policy, LONDON) == local("2026-03-04 08:00")
    assert next_send_time(local("2026-03-06 19:30"), policy, LONDON) == local("2026-03-09 08:00")
    assert next_send_time(local("2026-03-07 12:00"), policy, LONDON) == local("2026-03-09 08:00")
    assert next_send_time(local("2026-03-09 06:59"), policy, LONDON) == local("2026-03-09 08:00")


def test_bank_holidays_are_skipped():
    policy = default_policy()
    # Good Friday and Easter Monday 2026: from Thursday evening to Tuesday morning.
    assert next_send_time(local("2026-04-02 18:30"), policy, LONDON) == local("2026-04-07 08:00")
    assert next_send_time(local("2026-04-06 10:00"), policy, LONDON) == local("2026-04-07 08:00")
    # Christmas Day (Friday) and Boxing Day observed on Monday 28 December.
    assert next_send_time(local("2026-12-24 18:00"), policy, LONDON) == local("2026-12-29 08:00")
    no_holidays = load_policy({"bank_holidays": False})
    assert next_send_time(local("2026-04-06 10:00"), no_holidays, LONDON) == local(
        "2026-04-06 10:00"
    )


def test_the_window_is_local_time_across_the_clock_changes():
    policy = default_policy()
    # Saturday 28 March 2026 (GMT) waits for Monday 30 March 08:00 BST, which is 07:00 UTC.
    assert next_send_time(utc("2026-03-28 12:00"), policy, LONDON) == utc("2026-03-30 07:00")
    assert next_send_time(utc("2026-03-27 07:30"), policy, LONDON) == utc("2026-03-27 08:00")
    # Saturday 24 October (BST) waits for Monday 26 October 08:00 GMT, which is 08:00 UTC.
    assert next_send_time(utc("2026-10-24 12:00"), policy, LONDON) == utc("2026-10-26 08:00")
    assert next_send_time(utc("2026-10-23 06:30"), policy, LONDON) == utc("2026-10-23 07:00")


def test_a_window_on_other_weekdays_is_followed():
    policy = load_policy({"window_days": ["sat"], "bank_holidays": True})
    assert next_send_time(local("2026-03-02 09:00"), policy, LONDON) == local("2026-03-07 08:00")


def test_cancellation_cutoff_counts_working_days():
    policy = default_policy()
    # A Monday session: in time until the end of Thursday.
    assert cancellation_cutoff(local("2026-03-16 09:30"), policy, LONDON) == local(
        "2026-03-13 00:00"
    )
    # Tuesday 7 April 2026 after Easter: Monday and Good Friday are not working days.
    assert cancellation_cutoff(local("2026-04-07 09:30"), policy, LONDON) == local(
        "2026-04-02 00:00"
    )
    by_hours = load_policy({"cutoff_hours": 48})
    assert cancellation_cutoff(utc("2026-03-16 09:30"), by_hours, LONDON) == utc("2026-03-14 09:30")
    none = load_policy({"cutoff_working_days": 0})
    assert cancellation_cutoff(utc("2026-03-16 09:30"), none, LONDON) == utc("2026-03-16 09:30")


def test_next_send_time_refuses_a_naive_time():
    with pytest.raises(ValueError, match="naive"):
        next_send_time(datetime(2026, 3, 2, 9), default_policy(), LONDON)


def test_times_come_back_in_utc():
    result = next_send_time(local("2026-07-04 10:00"), default_policy(), LONDON)
    assert result.tzinfo == UTC
    assert result == utc("2026-07-06 07:00")


def test_months_are_calendar_months_ending_on_the_last_day_when_short():
    from schedules.calendar import shift
    from schedules.policy import Span, parse_duration

    assert parse_duration("3mo", "k") == Span(months=3)
    assert parse_duration("1mo2w", "k") == Span(months=1, delta=timedelta(weeks=2))
    assert parse_duration("-1mo", "k") == Span(months=-1)
    assert parse_duration("15m", "k") == timedelta(minutes=15)  # m alone is still minutes
    assert shift(local("2026-11-30 10:00"), parse_duration("3mo", "k"), LONDON) == local(
        "2027-02-28 10:00"
    )
    assert shift(local("2027-11-30 10:00"), parse_duration("3mo", "k"), LONDON) == local(
        "2028-02-29 10:00"
    )
    assert shift(local("2026-01-15 09:30"), parse_duration("6mo", "k"), LONDON) == local(
        "2026-07-15 09:30"
    )
    assert str(parse_duration("3mo", "k")) == "3 months"
    policy = load_policy({"stages": {"impact": {"opens_after": "3mo"}}})
    assert policy.stages[Stage.IMPACT].opens_after == Span(months=3)


def test_a_month_reminder_after_a_shorter_closing_is_refused():
    with pytest.raises(PolicyError, match="'1mo' comes at or after the closing"):
        load_policy({"stages": {"impact": {"reminders": ["1mo"], "closes_after": "28d"}}})
