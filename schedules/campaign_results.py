"""A campaign's results: what was delivered, and how many responded within ``RESPONSE_DAYS``
days."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import case, func
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from schedules.campaign_refreshers import _same_course_booking
from schedules.campaign_scope import _same
from surveys.models import (
    Booking,
    BookingStatus,
    Campaign,
    CourseSession,
    OutboxMessage,
    OutboxState,
    SurveyInvitation,
)

RESPONSE_DAYS = 7
UNSENT_OR_CLAIMED = (OutboxState.PENDING, OutboxState.FAILED, OutboxState.CLAIMED)


@dataclass(frozen=True)
class CampaignResult:
    campaign: Campaign
    queued: int  # outbox rows
    delivered: int  # sent
    pending: int  # waiting, or failed and to be tried again
    responded: int  # within RESPONSE_DAYS days: see ``results``


def results(session: Session, *, limit: int = 50) -> list[CampaignResult]:
    """The latest campaigns with what was delivered and how many responded within 7 days.

    Responded means, for a reminder, a survey it reminded about finished within 7 days of the
    campaign; for last-minute places, a booking on the session made within 7 days by someone it
    reached; for a refresher, a booking made within 7 days by someone it reached, on a course
    they had attended before.
    """
    campaigns = session.exec(
        select(Campaign)
        .order_by(col(Campaign.created_at).desc(), col(Campaign.id).desc())
        .limit(limit)
    ).all()
    if not campaigns:
        return []
    ids = [c.id for c in campaigns]
    state = col(OutboxMessage.state)
    delivery = {
        row[0]: row[1:]
        for row in session.exec(
            select(
                col(OutboxMessage.campaign_id),
                func.count(),
                func.sum(case((state == OutboxState.SENT, 1), else_=0)),
                func.sum(case((state.in_(UNSENT_OR_CLAIMED), 1), else_=0)),
            )
            .where(col(OutboxMessage.campaign_id).in_(ids))
            .group_by(col(OutboxMessage.campaign_id))
        ).all()
    }
    found = []
    for campaign in campaigns:
        queued, delivered, pending = delivery.get(campaign.id, (0, 0, 0))
        found.append(
            CampaignResult(
                campaign,
                int(queued or 0),
                int(delivered or 0),
                int(pending or 0),
                _responded(session, campaign),
            )
        )
    return found


def _responded(session: Session, campaign: Campaign) -> int:
    start = campaign.created_at
    end = start + timedelta(days=RESPONSE_DAYS)
    if campaign.kind == "remind":
        query = (
            select(func.count(func.distinct(col(SurveyInvitation.id))))
            .select_from(OutboxMessage)
            .join(SurveyInvitation, col(SurveyInvitation.id) == col(OutboxMessage.invitation_id))
            .where(
                col(OutboxMessage.campaign_id) == campaign.id,
                col(SurveyInvitation.finished_at) >= start,
                col(SurveyInvitation.finished_at) < end,
            )
        )
        return int(session.exec(query).one())
    made = func.coalesce(col(Booking.booked_at), col(Booking.created_at))
    query = (
        select(func.count(func.distinct(col(Booking.id))))
        .select_from(OutboxMessage)
        .join(Booking, col(Booking.delegate_id) == col(OutboxMessage.person_id))
        .join(CourseSession, col(CourseSession.id) == col(Booking.session_id))
        .where(col(OutboxMessage.campaign_id) == campaign.id, made >= start, made < end)
    )
    if campaign.kind == "places":
        ref = str(campaign.scope.get("session", ""))
        return int(session.exec(query.where(_same(CourseSession.ref, ref))).one())
    earlier = aliased(Booking, name="earlier")
    earlier_session = aliased(CourseSession, name="earlier_session")
    attended_before = _same_course_booking(
        earlier,
        earlier_session,
        BookingStatus.ATTENDED,
        col(earlier_session.starts_at) < col(CourseSession.starts_at),
    )
    return int(session.exec(query.where(attended_before)).one())
