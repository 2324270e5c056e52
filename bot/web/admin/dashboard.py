"""The dashboard (``/admin/``): what needs a coordinator's attention this week."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
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
            "issues": notable_issues(
                session, quarter, zone=settings.zone, alert_rate=policy.no_show_alert_rate, now=now
            ),
        },
    )


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
    functions (only the figures they rest on are read: attendance and sessions)."""
    connection = session.connection()
    levels = attendance(connection, quarter, zone)
    partial = QuarterlyReport(
        quarter=quarter,
        zone=zone,
        generated_at=now,
        no_show_alert_rate=alert_rate,
        overview=overview(connection, quarter, zone),
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
    )
    return issues(partial, now=now)
