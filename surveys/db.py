"""Engines, sessions and the schema check shared by every command."""

from __future__ import annotations

import ast
import re
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import event, inspect
from sqlalchemy.engine import Engine, make_url
from sqlmodel import Session, create_engine

from surveys.files import create_private

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


class SchemaOutOfDate(RuntimeError):
    """The database is behind the code; ``evalbot db upgrade`` mends it."""


# Every engine made, so that a command can close their connections as it ends (``close_all``).
_ENGINES: weakref.WeakSet[Engine] = weakref.WeakSet()


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine with the settings Evalbot relies on for each kind of database."""
    engine = _engine(url, **kwargs)
    _ENGINES.add(engine)
    return engine


def close_all() -> None:
    """Close the pooled connections of every engine made: PostgreSQL sees each session end,
    and SQLite moves its write-ahead log into the database file as the last one closes."""
    for engine in list(_ENGINES):
        engine.dispose()


def _engine(url: str, **kwargs: Any) -> Engine:
    if url.startswith("sqlite"):
        if ":memory:" not in url and url not in ("sqlite://", "sqlite:///"):
            # The web app answers from a pool of threads; with too few connections each burst
            # opens and closes new ones.
            kwargs.setdefault("pool_size", 20)
            kwargs.setdefault("max_overflow", 20)
        _create_private_database(url)
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return create_engine(url, pool_pre_ping=True, **kwargs)


def _create_private_database(url: str) -> None:
    """Create a SQLite database file readable by its owner alone, before SQLite creates it with
    the umask's mode; its -wal and -shm files take the database file's mode."""
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database)
    if path.parent.is_dir():
        create_private(path)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # Pages of 8 KiB rather than SQLite's 4: fewer, fuller pages for a big import to write into
    # its tables, indexes and log. Only a new, empty database takes it (before WAL mode writes
    # the file's header); one made before keeps its own.
    cursor.execute("PRAGMA page_size=8192")
    # WAL lets the web form read while a tick writes; the busy timeout waits out short locks.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    # Read the file through memory mapping rather than a copy of each page: a report reading
    # millions of answers spends a third less time (SQLite keeps it to its own maximum, 2 GB).
    cursor.execute(f"PRAGMA mmap_size={2**31}")
    cursor.close()


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session that commits when the block ends normally and rolls back when it raises."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def alembic_config(url: str) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine) -> tuple[str | None, str | None]:
    """Bring the database to the newest schema; returns the revisions before and after."""
    from alembic import command

    before = current_revision(engine)
    migrate(engine, command.upgrade, "head")
    return before, current_revision(engine)


class ForeignKeysBroken(RuntimeError):
    """A migration left rows pointing to rows that do not exist; nothing of it was kept."""


def migrate(engine: Engine, step: Callable[[Config, str], None], revision: str) -> None:
    """Run alembic's ``step`` (``command.upgrade`` or ``command.downgrade``) to ``revision`` in
    one transaction on one of Evalbot's connections.

    On SQLite a migration that changes a column rebuilds its table (copy, drop, rename). With
    foreign keys enforced, dropping a table that other rows point to fails, so they are turned
    off for the migration, as SQLite's own procedure for altering a table says, and every
    reference is checked before the transaction commits. SQLite reads the setting only outside
    a transaction, hence before ``begin``. A step that fails leaves the database as it was.
    """
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.commit()
        try:
            with connection.begin():
                if sqlite:
                    # Python's sqlite3 opens a transaction only before a data change; the
                    # migration's first CREATE TABLE would be kept if a later step failed.
                    # IMMEDIATE takes the write lock at once, so a tick or the web app writing
                    # meanwhile makes the upgrade wait (the busy timeout), not fail.
                    connection.exec_driver_sql("BEGIN IMMEDIATE")
                config = alembic_config(engine.url.render_as_string(hide_password=False))
                config.attributes["connection"] = connection
                step(config, revision)
                if sqlite:
                    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        table, row, parent = broken[0][0], broken[0][1], broken[0][2]
                        raise ForeignKeysBroken(
                            f"the migration to {revision} would leave {len(broken)} rows "
                            f"pointing nowhere (the first: {table} row {row}, to {parent}); "
                            "nothing was changed"
                        )
        finally:
            if sqlite:
                connection.exec_driver_sql("PRAGMA foreign_keys=ON")
                connection.commit()


def ensure_current(engine: Engine) -> None:
    """Refuse to work on a database whose schema is not the code's."""
    current, head = stored_revision(engine), newest_revision()
    if current != head:
        found = "is empty" if current is None else f"is at schema revision {current}"
        raise SchemaOutOfDate(
            f"The database {found}, but this Evalbot needs revision {head}. "
            "Run `evalbot db upgrade` first."
        )


# Every command checks the schema first. Alembic, loaded whole, costs a short command such as
# an import a good part of its start-up; the check needs only the revision the database has
# and the newest in the migration files, which these read directly (alembic's answer is used
# for anything but a single line of history).
_ASSIGNED = re.compile(r"^(revision|down_revision)\s*(?::[^=]*)?=\s*(.+)$", re.MULTILINE)


def newest_revision() -> str | None:
    """``head_revision()``, read from the migration files' ``revision``/``down_revision``."""
    follows: dict[str, tuple[str, ...]] = {}
    for path in (MIGRATIONS / "versions").glob("*.py"):
        found = dict(_ASSIGNED.findall(path.read_text(encoding="utf-8")))
        try:
            revision, before = (ast.literal_eval(found[k]) for k in _KEYS)
        except (KeyError, ValueError, SyntaxError):
            return head_revision()
        if not isinstance(revision, str):
            return head_revision()
        follows[revision] = (before,) if isinstance(before, str) else tuple(before or ())
    earlier = {name for names in follows.values() for name in names}
    heads = [name for name in follows if name not in earlier]
    return heads[0] if len(heads) == 1 else head_revision()


_KEYS = ("revision", "down_revision")


def stored_revision(engine: Engine) -> str | None:
    """``current_revision(engine)``, read with one query (None for a database without one)."""
    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return None
        stored = connection.exec_driver_sql("SELECT version_num FROM alembic_version").all()
    if len(stored) > 1:
        return current_revision(engine)  # alembic says what is wrong with more than one
    return stored[0][0] if stored else None


def compact(engine: Engine) -> None:
    """After an erasure: make deleted content really gone from a SQLite file.

    A SQLite built without secure_delete keeps deleted content in free pages until they are
    reused: rebuild the file, and empty the write-ahead log. PostgreSQL's own VACUUM reclaims
    dead rows in time; nothing is done there.
    """
    if engine.dialect.name == "sqlite":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as db:
            db.exec_driver_sql("VACUUM")
            db.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
