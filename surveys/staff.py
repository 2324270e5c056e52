"""Staff of the console: who may sign in, their one-time sign-in links and their sessions.

- A staff member is a coordinator (may change things) or a viewer (sees everything, changes
  nothing), known by email address (stored lower-case).
- A sign-in link carries a token of 192 bits: an HMAC under the secret key of a subject holding
  128 random bits from ``secrets`` (``surveys.tokens.make_token``), so the outbox can render it
  at send time as it does every personal link, without the token itself being stored anywhere.
  The table keeps its SHA-256 only. A link works once, for ``SIGN_IN_VALID``.
- A session is a random cookie value whose SHA-256 is stored; it ends after ``IDLE`` without a
  request, ``MAX_AGE`` after sign-in, or at sign-out.

Every function takes ``now``; nothing here reads the clock.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import String, delete, update
from sqlmodel import Field, Session, SQLModel, col, select

from surveys import audit
from surveys.models import LinkPurpose, UTCDateTime
from surveys.tokens import make_token, token_hash

SIGN_IN_VALID = timedelta(minutes=15)
IDLE = timedelta(minutes=30)
MAX_AGE = timedelta(hours=12)
# A session's last-seen time is written at most this often, not on every page.
TOUCH_EVERY = timedelta(minutes=1)


class StaffRole(StrEnum):
    COORDINATOR = "coordinator"
    VIEWER = "viewer"


class StaffMember(SQLModel, table=True):
    __tablename__ = "staff_member"

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(sa_type=String(254), unique=True, index=True)  # lower-case
    name: str = Field(sa_type=String(200))
    role: StaffRole = Field(default=StaffRole.COORDINATOR, sa_type=String(20))
    created_at: datetime = Field(sa_type=UTCDateTime, nullable=False)

    @property
    def actor(self) -> str:
        """How the audit log names this member: ``staff:<email>``."""
        return f"staff:{self.email}"

    @property
    def can_change(self) -> bool:
        return self.role == StaffRole.COORDINATOR


class StaffSignIn(SQLModel, table=True):
    """One emailed sign-in link, by the hash of its token."""

    __tablename__ = "staff_sign_in"

    id: int | None = Field(default=None, primary_key=True)
    staff_id: int = Field(foreign_key="staff_member.id", index=True)
    token_hash: str = Field(sa_type=String(64), unique=True)
    created_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    expires_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    used_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)


class StaffSession(SQLModel, table=True):
    """A signed-in browser, by the hash of its cookie."""

    __tablename__ = "staff_session"

    id: int | None = Field(default=None, primary_key=True)
    staff_id: int = Field(foreign_key="staff_member.id", index=True)
    token_hash: str = Field(sa_type=String(64), unique=True)
    created_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    last_seen_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    ended_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)


class StaffError(Exception):
    """A staff command that cannot be done; the message says why."""


def normalise_email(email: str) -> str:
    return email.strip().lower()


def find_staff(session: Session, email: str) -> StaffMember | None:
    return session.exec(
        select(StaffMember).where(StaffMember.email == normalise_email(email))
    ).first()


def list_staff(session: Session) -> list[StaffMember]:
    return list(session.exec(select(StaffMember).order_by(col(StaffMember.email))).all())


def add_staff(
    session: Session,
    *,
    email: str,
    name: str | None,
    role: StaffRole,
    now: datetime,
    actor: str,
) -> tuple[StaffMember, bool]:
    """Add a member, or change the name and role of one already there; True when added."""
    address = normalise_email(email)
    if "@" not in address or address.startswith("@") or address.endswith("@"):
        raise StaffError(f"{email!r} is not an email address (expected name@example.org)")
    member = find_staff(session, address)
    added = member is None
    if member is None:
        member = StaffMember(
            email=address, name=name or address.split("@")[0], role=role, created_at=now
        )
    else:
        member.role = role
        if name:
            member.name = name
    session.add(member)
    session.flush()
    audit.record(
        session,
        at=now,
        actor=actor,
        action="staff added" if added else "staff changed",
        entity="staff",
        entity_id=member.id,
        email=member.email,
        role=str(member.role),
    )
    return member, added


def remove_staff(session: Session, *, email: str, now: datetime, actor: str) -> StaffMember:
    """Remove a member: their links and sessions end at once."""
    member = find_staff(session, email)
    if member is None:
        raise StaffError(f"{normalise_email(email)} is not a member of staff")
    session.execute(delete(StaffSignIn).where(col(StaffSignIn.staff_id) == member.id))
    session.execute(delete(StaffSession).where(col(StaffSession.staff_id) == member.id))
    session.delete(member)
    audit.record(
        session,
        at=now,
        actor=actor,
        action="staff removed",
        entity="staff",
        entity_id=member.id,
        email=member.email,
    )
    return member


# --- sign-in links --------------------------------------------------------------------------


def sign_in_subject(member: StaffMember) -> str:
    """A fresh subject for a member's sign-in link: 128 random bits make each link new."""
    return f"staff:{member.id}:{secrets.token_urlsafe(16)}"


def issue_sign_in(
    session: Session, secret: bytes, member: StaffMember, *, subject: str, now: datetime
) -> StaffSignIn:
    """Record the hash of the sign-in link for ``subject`` (see ``sign_in_subject``)."""
    token = make_token(secret, LinkPurpose.STAFF_SIGN_IN, subject)
    assert member.id is not None
    link = StaffSignIn(
        staff_id=member.id,
        token_hash=token_hash(token),
        created_at=now,
        expires_at=now + SIGN_IN_VALID,
    )
    session.add(link)
    return link


class LinkProblem(StrEnum):
    UNKNOWN = "unknown"
    EXPIRED = "expired"
    USED = "used"


@dataclass
class LinkCheck:
    member: StaffMember | None
    problem: LinkProblem | None
    link: StaffSignIn | None = None


def check_sign_in(session: Session, token: str, now: datetime) -> LinkCheck:
    """What a sign-in link is worth now, changing nothing (a GET may look)."""
    if not token or len(token) > 100:
        return LinkCheck(None, LinkProblem.UNKNOWN)
    link = session.exec(
        select(StaffSignIn).where(StaffSignIn.token_hash == token_hash(token))
    ).first()
    member = session.get(StaffMember, link.staff_id) if link is not None else None
    if link is None or member is None:
        return LinkCheck(None, LinkProblem.UNKNOWN)
    if link.used_at is not None:
        return LinkCheck(member, LinkProblem.USED, link)
    if link.expires_at <= now:
        return LinkCheck(member, LinkProblem.EXPIRED, link)
    return LinkCheck(member, None, link)


def use_sign_in(session: Session, token: str, now: datetime) -> tuple[LinkCheck, str | None]:
    """Spend a sign-in link and start a session: the check, and the new cookie value (None
    when the link does not work). Two browsers racing for one link: only one wins."""
    check = check_sign_in(session, token, now)
    if check.problem is not None or check.link is None or check.member is None:
        return check, None
    won = session.execute(
        update(StaffSignIn)
        .where(col(StaffSignIn.id) == check.link.id, col(StaffSignIn.used_at).is_(None))
        .values(used_at=now)
    )
    if won.rowcount != 1:  # type: ignore[attr-defined]
        return LinkCheck(check.member, LinkProblem.USED, check.link), None
    cookie = secrets.token_urlsafe(32)
    assert check.member.id is not None
    session.add(
        StaffSession(
            staff_id=check.member.id,
            token_hash=_cookie_hash(cookie),
            created_at=now,
            last_seen_at=now,
        )
    )
    audit.record(
        session,
        at=now,
        actor=check.member.actor,
        action="staff signed in",
        entity="staff",
        entity_id=check.member.id,
    )
    return check, cookie


# --- sessions -------------------------------------------------------------------------------


def _cookie_hash(cookie: str) -> str:
    return hashlib.sha256(cookie.encode()).hexdigest()


def session_member(session: Session, cookie: str | None, now: datetime) -> StaffMember | None:
    """The member a session cookie belongs to while it lasts; refreshes its idle timer."""
    if not cookie or len(cookie) > 100:
        return None
    found = session.exec(
        select(StaffSession).where(StaffSession.token_hash == _cookie_hash(cookie))
    ).first()
    if found is None or found.ended_at is not None:
        return None
    if now >= found.created_at + MAX_AGE or now >= found.last_seen_at + IDLE:
        return None
    if now - found.last_seen_at >= TOUCH_EVERY:
        found.last_seen_at = now
        session.add(found)
    return session.get(StaffMember, found.staff_id)


def end_session(session: Session, cookie: str | None, now: datetime) -> None:
    """Sign out: the cookie no longer works, even if the browser keeps it."""
    if not cookie:
        return
    found = session.exec(
        select(StaffSession).where(StaffSession.token_hash == _cookie_hash(cookie))
    ).first()
    if found is None or found.ended_at is not None:
        return
    found.ended_at = now
    session.add(found)
    member = session.get(StaffMember, found.staff_id)
    audit.record(
        session,
        at=now,
        actor=member.actor if member is not None else f"staff:{found.staff_id}",
        action="staff signed out",
        entity="staff",
        entity_id=found.staff_id,
    )
