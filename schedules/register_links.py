"""The trainer's personal register link (``/register/<token>``): no account, one link per
session and trainer.

The token is the HMAC of ``session:<id>:trainer:<person id>`` (``surveys.tokens``), and the
``Link`` row records its hash with the trainer as its person. A visitor's token is looked up by
hash, then matched against the trainer's recent sessions, so the link names exactly one session
and stops working when the session gets another trainer. It lasts ``REGISTER_LINK_LIFE`` after
the session ends, long enough for the corrections a trainer makes after closing.
"""

from __future__ import annotations

import hmac
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from surveys import tokens
from surveys.models import CourseSession, LinkPurpose

REGISTER_LINK_LIFE = timedelta(days=30)


def register_subject(course_session: CourseSession) -> str:
    """What a register link is about: the session and its trainer."""
    return f"session:{course_session.id}:trainer:{course_session.trainer_id}"


def register_link(session: Session, secret: bytes, course_session: CourseSession) -> list[str]:
    """Record the session's register link for its trainer; returns the message ``links`` entry
    (``["register", "session:<id>:trainer:<id>"]``). The session must have a trainer."""
    if course_session.trainer_id is None:
        raise ValueError(f"Session {course_session.ref} has no trainer to give a register link to.")
    subject = register_subject(course_session)
    tokens.issue(
        session,
        secret,
        LinkPurpose.REGISTER,
        subject=subject,
        person_id=course_session.trainer_id,
        expires_at=course_session.ends_at + REGISTER_LINK_LIFE,
    )
    return [LinkPurpose.REGISTER.value, subject]


def register_token(session: Session, secret: bytes, course_session: CourseSession) -> str:
    """The raw token of the session's register link (recorded as ``register_link`` does)."""
    register_link(session, secret, course_session)
    return tokens.make_token(secret, LinkPurpose.REGISTER, register_subject(course_session))


def session_for_register_token(
    session: Session, secret: bytes, token: str, now: datetime
) -> CourseSession | None:
    """The session a live register link is for, or None (unknown, expired, or the session has
    another trainer now)."""
    link = tokens.resolve(session, LinkPurpose.REGISTER, token, now)
    if link is None or link.person_id is None:
        return None
    candidates = session.exec(
        select(CourseSession).where(
            col(CourseSession.trainer_id) == link.person_id,
            col(CourseSession.ends_at) >= now - REGISTER_LINK_LIFE,
        )
    ).all()
    for course_session in candidates:
        expected = tokens.make_token(secret, LinkPurpose.REGISTER, register_subject(course_session))
        if hmac.compare_digest(expected.encode(), token.encode()):
            return course_session
    return None
