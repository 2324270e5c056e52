"""The audit log: who did what, and when."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session

from surveys.models import AuditEntry


def record(
    session: Session,
    *,
    at: datetime,
    actor: str,
    action: str,
    entity: str,
    entity_id: int | None = None,
    **detail: Any,
) -> AuditEntry:
    entry = AuditEntry(
        at=at, actor=actor, action=action, entity=entity, entity_id=entity_id, detail=detail
    )
    session.add(entry)
    return entry
