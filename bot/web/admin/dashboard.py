"""The dashboard (``/admin/``): what needs a coordinator's attention this week."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.web.admin.pages import render
from bot.web.deps import NowDep, PolicyDep, SessionDep, SettingsDep
from surveys.console import (
    DELEGATE_STAGES,
    coming_sessions,
    open_registers,
    recent_responses,
    undelivered,
    undelivered_counts,
)
from surveys.models import OutboxState
from surveys.report import IssueRow, Quarter, QuarterlyReport, attendance, issues, overview
from surveys.report import sessions as quarter_sessions
from surveys.report.scrub import NameScrubber
from surveys.report.trainers import trainer_reports

router = APIRouter()

COMING_WEEKS = 6
RECENT_WEEKS = 6


@router.get("/admin/", response_class=HTMLResponse)
def dashboard(
    request: Request, session: SessionDep, settings: SettingsDep, policy: PolicyDep, now: NowDep
) -> HTMLResponse:
    """Coming sessions, open registers, response rates, undelivered messages, notable issues."""
    quarter = quarter_of(now.astimezone(settings.zone).date(), settings.quarters)
    return render(
        request,
        "web/admin/dashboard.html",
        {
            "page_title": "Dashboard",
            "now": now,
            "coming": coming_sessions(session, now, weeks=COMING_WEEKS),
            "coming_weeks": COMING_WEEKS,
            "registers": open_registers(session, now),
            "responses": recent_responses(session, now, weeks=RECENT_WEEKS),
            "recent_weeks": RECENT_WEEKS,
            "stages": [stage.value for stage in DELEGATE_STAGES],
            "undelivered": undelivered_counts(session),
            "dead": undelivered(session, OutboxState.DEAD, limit=5),
            "failed": undelivered(session, OutboxState.FAILED, limit=5),
            "quarter": quarter,
            "issues": issues_cache(request).get(
                request.app.state.engine,
                quarter,
                zone=settings.zone,
                alert_rate=policy.no_show_alert_rate,
                now=now,
            ),
        },
    )


@dataclass
class CachedIssues:
    quarter: Quarter
    issues: list[IssueRow]
    as_of: datetime


class IssuesCache:
    """The notable issues of the quarter, kept for ``FRESH`` and then refreshed in the
    background while the copy in hand is shown: working them out reads every booking of the
    quarter (about half a second with 100,000 bookings), too slow for every dashboard view,
    and a quarter's issues do not change from one minute to the next."""

    FRESH = timedelta(minutes=5)

    def __init__(self) -> None:
        self._found: CachedIssues | None = None
        self._refreshing = False
        self._lock = threading.Lock()
        self.refresher: threading.Thread | None = None  # the latest background refresh

    def get(
        self, engine: Engine, quarter: Quarter, *, zone: ZoneInfo, alert_rate: float, now: datetime
    ) -> CachedIssues:
        def work() -> CachedIssues:
            with Session(engine) as session:
                found = notable_issues(session, quarter, zone=zone, alert_rate=alert_rate, now=now)
            return CachedIssues(quarter, found, now)

        with self._lock:
            found = self._found
            usable = found is not None and found.quarter == quarter and found.as_of <= now
            if usable and found is not None and now - found.as_of < self.FRESH:
                return found
            if usable and found is not None:
                if not self._refreshing:
                    self._refreshing = True
                    self.refresher = threading.Thread(
                        target=self._refresh, args=(work,), daemon=True
                    )
                    self.refresher.start()
                return found
        fresh = work()
        with self._lock:
            self._found = fresh
        return fresh

    def _refresh(self, work: Callable[[], CachedIssues]) -> None:
        try:
            fresh = work()
            with self._lock:
                self._found = fresh
        finally:
            with self._lock:
                self._refreshing = False


_cache_lock = threading.Lock()


def issues_cache(request: Request) -> IssuesCache:
    state = request.app.state
    with _cache_lock:
        if getattr(state, "console_issues", None) is None:
            state.console_issues = IssuesCache()
        cache: IssuesCache = state.console_issues
    return cache


def quarter_of(day: date, scheme: str) -> Quarter:
    """The quarter (calendar or financial, as set) that ``day`` falls in."""
    if scheme == "financial":
        shifted = (day.month - 4) % 12
        year = day.year if day.month >= 4 else day.year - 1
        return Quarter(year, shifted // 3 + 1, "financial")
    return Quarter(day.year, (day.month - 1) // 3 + 1, "calendar")


def notable_issues(
    session: Session, quarter: Quarter, *, zone: ZoneInfo, alert_rate: float, now: datetime
) -> list[IssueRow]:
    """The issues the quarterly report lists for ``quarter`` so far, from the report's own
    functions (only the figures they rest on are read: attendance, sessions, trainers'
    reports)."""
    connection = session.connection()
    levels = attendance(connection, quarter, zone)
    partial = QuarterlyReport(
        quarter=quarter,
        zone=zone,
        generated_at=now,
        no_show_alert_rate=alert_rate,
        overview=overview(connection, quarter, zone, now),
        sessions=quarter_sessions(connection, quarter, zone),
        totals=levels["all"][0],
        by_agency=levels["agency"],
        by_sector=levels["sector"],
        by_course=levels["course"],
        responses=[],
        satisfaction=[],
        change=[],
        change_by_outcome=[],
        applied=[],
        barriers=[],
        barrier_respondents=0,
        examples=[],
        example_count=0,
        manager=[],
        # Only which sessions had a concern is read here: nothing to scrub.
        trainers=trainer_reports(connection, quarter, zone, NameScrubber([])),
    )
    return issues(partial, now=now)
