"""Personal link tokens.

A token is an HMAC of its purpose and subject under the secret key, so the same link can be
rendered again (a reminder carries the invitation's link) without the token ever being stored:
the database keeps only its SHA-256, and a lookup hashes what the visitor brought. 24 bytes of
MAC give 192 bits, well past the 128 the design asks for.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import datetime

from sqlmodel import Session, select

from surveys.models import Link, LinkPurpose


def make_token(secret: bytes, purpose: LinkPurpose, subject: str) -> str:
    # hmac.digest: the same MAC as hmac.new(...).digest(), without building an object.
    mac = hmac.digest(secret, f"{purpose.value}:{subject}".encode(), "sha256")
    return base64.urlsafe_b64encode(mac[:24]).decode().rstrip("=")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue(
    session: Session,
    secret: bytes,
    purpose: LinkPurpose,
    *,
    subject: str,
    person_id: int | None = None,
    booking_id: int | None = None,
    invitation_id: int | None = None,
    expires_at: datetime | None = None,
) -> str:
    """The token for ``purpose`` and ``subject``, recording its hash the first time.

    ``subject`` names what the link is about (for example ``"invitation:42"``); issuing the same
    purpose and subject again returns the same token and refreshes the expiry.
    """
    token = make_token(secret, purpose, subject)
    digest = token_hash(token)
    link = session.exec(select(Link).where(Link.token_hash == digest)).first()
    if link is None:
        link = Link(
            purpose=purpose,
            token_hash=digest,
            person_id=person_id,
            booking_id=booking_id,
            invitation_id=invitation_id,
        )
    link.expires_at = expires_at
    session.add(link)
    return token


def resolve(session: Session, purpose: LinkPurpose, token: str, now: datetime) -> Link | None:
    """The live link for a token, or None for unknown, expired or used-up tokens alike."""
    if not token or len(token) > 100:
        return None
    link = session.exec(select(Link).where(Link.token_hash == token_hash(token))).first()
    if link is None or link.purpose != purpose:
        return None
    if link.expires_at is not None and link.expires_at <= now:
        return None
    if link.used_at is not None:
        return None
    return link
