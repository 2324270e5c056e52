"""The secret, the SQLite database and the written mail are readable by their owner alone."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli import app

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "bookings.csv"


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The common umask, under which a plain ``open()`` makes a file anyone may read."""
    before = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(before)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_secret_database_and_mail_are_private_from_the_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, open_umask: None
) -> None:
    monkeypatch.delenv("EVALBOT_SECRET_KEY")  # so Evalbot makes its own .evalbot-secret
    runner = CliRunner()
    for args in (
        ["db", "upgrade"],
        ["import", "bookings", str(EXAMPLE)],
        ["tick", "--now", "2026-11-24T09:30"],
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output

    secret = tmp_path / ".evalbot-secret"
    database = tmp_path / "evalbot.db"
    mail = tmp_path / "evalbot-mail"
    assert mode(secret) == 0o600
    assert mode(database) == 0o600
    for path in tmp_path.glob("evalbot.db-*"):  # -wal and -shm, while they exist
        assert mode(path) == 0o600, path
    assert mode(mail) == 0o700
    messages = list(mail.glob("*.eml"))
    assert messages, "the tick wrote the confirmations and questionnaires"
    assert {mode(p) for p in messages} == {0o600}
    # A plain file made in the same process still follows the umask: the modes are chosen, not
    # an accident of the environment.
    (tmp_path / "plain.txt").write_text("x")
    assert mode(tmp_path / "plain.txt") == 0o644


def test_a_rewritten_message_stays_private(tmp_path: Path, open_umask: None) -> None:
    from surveys.files import write_private

    path = tmp_path / "message.eml"
    path.write_bytes(b"old")
    path.chmod(0o644)
    write_private(path, b"new")
    assert path.read_bytes() == b"new" and mode(path) == 0o600


def test_a_secret_left_readable_by_an_older_evalbot_is_made_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, open_umask: None
) -> None:
    from bot.settings import load_settings

    monkeypatch.delenv("EVALBOT_SECRET_KEY")
    secret = tmp_path / ".evalbot-secret"
    secret.write_text("an-old-secret\n")
    secret.chmod(0o644)
    assert load_settings().secret == b"an-old-secret"
    assert mode(secret) == 0o600
