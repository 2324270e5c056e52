"""Running a report's queries two at a time, each on a connection of its own.

SQLite lets go of Python while it runs a query, so two queries on two connections use both
cores of a small server. The parts are handed out longest first, each to whichever of the two
workers is free, so that neither waits long for the other at the end. Each part reads committed
data on its own connection; a write landing between two parts could show in one and not the
other, as in any report run while the service works.

On a session bound to a single connection (a test's transaction, say) the parts run one after
another on that connection.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

WORKERS = 2

Part = Callable[[Connection], Any]


def run_parts(session: Session, parts: Sequence[Part], *, prefix: str = "report") -> list[Any]:
    """Each part's result, in the order of ``parts``; put the longest parts first."""
    bind = session.get_bind()
    if not isinstance(bind, Engine):
        connection = session.connection()
        return [part(connection) for part in parts]
    engine = bind

    def on_own(part: Part) -> Any:
        with engine.connect() as connection:
            return part(connection)

    with ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix=prefix) as pool:
        return list(pool.map(on_own, parts))
