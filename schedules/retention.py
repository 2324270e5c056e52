"""The retention period: people whose last booking ended longer ago are erased by the tick.

``EVALBOT_RETENTION_YEARS`` (default 6, as is usual for training records) counts from the end of
the person's last session, as delegate, line manager or trainer; someone added without a
booking counts from when they were added. Erasure is ``surveys.people.erase_people``: bookings
and scored answers stay for the figures, pointing to no one.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session

from surveys.people import Erasure, erase_people, inactive_since

ACTOR = "system:retention"
# People erased in one tick at most: each is looked for in every text column of the database,
# so a first run on an old database is spread over ticks rather than holding one for long.
BATCH = 10


def retention_cutoff(now: datetime, years: int) -> datetime:
    """The same day and time ``years`` earlier (29 February becomes the 28th)."""
    try:
        return now.replace(year=now.year - years)
    except ValueError:
        return now.replace(year=now.year - years, day=28)


def erase_expired(session: Session, *, now: datetime, years: int) -> Erasure | None:
    """Erase those the retention period has run out for (at most ``BATCH``); None if no one."""
    if years <= 0:
        return None
    people = inactive_since(session, retention_cutoff(now, years), limit=BATCH)
    if not people:
        return None
    return erase_people(session, people, now=now, actor=ACTOR)
