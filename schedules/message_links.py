"""The links a message carries (survey, cancel, Telegram deep link) and the ``link`` rows that
record their hashes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session

from schedules.bulk_insert import _bulk_insert
from schedules.message_facts import (
    BookingFacts,
    InvitationFacts,
    PersonFacts,
)
from schedules.plan_constants import (
    LINK_TABLE,
)
from surveys import tokens
from surveys.models import (
    LinkPurpose,
    Person,
    utcnow,
)


def person_links(person: PersonFacts, telegram: bool = True) -> dict[str, list[str]]:
    """The Telegram deep link, for someone who has not linked a chat yet (if there is a bot)."""
    if not telegram or person.telegram_chat_id is not None:
        return {}
    subject = f"person:{person.id}:{person.telegram_link_generation}"
    return {"telegram": [LinkPurpose.TELEGRAM.value, subject]}


def offer_telegram(session: Session, secret: bytes, person: Person) -> dict[str, list[str]]:
    """The Telegram deep link for a notice to someone who has not linked a chat, its hash
    recorded. It is queued whether or not there is a bot: without one, the message is rendered
    without it (``bot.links``)."""
    links = person_links(person)
    rows = [
        {
            "purpose": purpose,
            "token_hash": tokens.token_hash(
                tokens.make_token(secret, LinkPurpose(purpose), subject)
            ),
            "created_at": utcnow(),
            "person_id": person.id,
            "booking_id": None,
            "invitation_id": None,
            "expires_at": None,
        }
        for purpose, subject in links.values()
    ]
    if rows:  # as ``issue_links``: two processes may record the same link at once
        _bulk_insert(session, LINK_TABLE, rows, "token_hash", ["expires_at"])
    return links


def link_fields(
    purpose: LinkPurpose,
    *,
    person: PersonFacts,
    booking: BookingFacts,
    invitation: InvitationFacts | None,
    starts_at: datetime,
) -> dict[str, Any]:
    """What a link is recorded with: a survey link ends when the survey closes, a cancel link
    at the start of the session; a Telegram deep link does not end."""
    fields: dict[str, Any] = {
        "person_id": person.id,
        "booking_id": None,
        "invitation_id": None,
        "expires_at": None,
    }
    if purpose is LinkPurpose.SURVEY and invitation is not None:
        fields.update(
            booking_id=booking.id, invitation_id=invitation.id, expires_at=invitation.closes_at
        )
    elif purpose is LinkPurpose.CANCEL:
        fields.update(booking_id=booking.id, expires_at=starts_at)
    return fields


def link_rows(
    secret: bytes,
    links: dict[str, list[str]],
    *,
    person: PersonFacts,
    booking: BookingFacts,
    invitation: InvitationFacts | None,
    starts_at: datetime,
    created_at: datetime,
) -> list[dict[str, Any]]:
    """The ``link`` rows for the links a message carries: each token's hash, never the token."""
    rows = []
    for purpose_text, subject in links.values():
        purpose = LinkPurpose(purpose_text)
        digest = tokens.token_hash(tokens.make_token(secret, purpose, subject))
        fields = link_fields(
            purpose, person=person, booking=booking, invitation=invitation, starts_at=starts_at
        )
        rows.append(
            {"purpose": purpose.value, "token_hash": digest, "created_at": created_at, **fields}
        )
    return rows


def issue_links(
    session: Session,
    secret: bytes,
    links: dict[str, list[str]],
    *,
    person: PersonFacts,
    booking: BookingFacts,
    invitation: InvitationFacts | None,
    starts_at: datetime,
) -> None:
    """Record the hash of each link a message carries, as ``surveys.tokens.issue`` does, but
    with ``INSERT ... ON CONFLICT`` so ticks in two processes can issue the same link at once."""
    rows = link_rows(
        secret,
        links,
        person=person,
        booking=booking,
        invitation=invitation,
        starts_at=starts_at,
        created_at=utcnow(),
    )
    if rows:
        _bulk_insert(session, LINK_TABLE, rows, "token_hash", ["expires_at"])
