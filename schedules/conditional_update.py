"""A conditional ``UPDATE``: how two processes agree on which of them changes a row.

The statement's ``WHERE`` names the state the caller read (an offer still open, a booking still
waiting); whichever process runs it first changes the row, and the other learns that it changed
nothing and leaves the row to the first.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session


def changed_one(session: Session, statement: Any) -> bool:
    """Run the ``UPDATE`` (ORM objects in the session are not touched); True if it changed
    exactly one row."""
    result = session.execute(statement.execution_options(synchronize_session=False))
    return int(result.rowcount) == 1  # type: ignore[attr-defined]
