"""`evalbot run` or `evalbot web` as a real process on a loopback port, over a database whose
first emails have been written, so the tests have real personal links to open."""

from __future__ import annotations

import contextlib
import email
import email.policy
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from typer.testing import CliRunner

from bot.cli import app
from tests.loopback import free_port

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "bookings.csv"
SECRET = "test-secret-key-not-for-production"
LINK = re.compile(r"http://127\.0\.0\.1:8000(/[a-z/-]+/[A-Za-z0-9_-]{16,})")


def prepare(folder: Path) -> set[str]:
    """Import the example bookings and write their first emails (in the current folder, which
    the tests' fixture makes ``folder``); the paths of the personal links in them."""
    runner = CliRunner()
    for args in (
        ["db", "upgrade"],
        ["import", "bookings", str(EXAMPLE)],
        ["tick", "--now", "2026-11-24T09:30"],
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
    return links_in_written_mail(folder / "evalbot-mail")


def links_in_written_mail(folder: Path) -> set[str]:
    """The personal links' paths in the written emails (decoded, as a person reads them)."""
    found: set[str] = set()
    for path in folder.glob("*.eml"):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        found |= set(LINK.findall(str(message.get("List-Unsubscribe", ""))))
        for part in message.walk():
            if part.get_content_maintype() == "text":
                found |= set(LINK.findall(part.get_content()))
    return found


@dataclass
class Live:
    port: int
    output: Path
    process: subprocess.Popen[bytes]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> str:
        """Stop it as SIGTERM does and return everything it printed."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=30)
        return self.output.read_text(encoding="utf-8")


@contextlib.contextmanager
def live(command: str, folder: Path, *flags: str) -> Iterator[Live]:
    """``evalbot <command> --port P <flags>`` in ``folder``, until the block ends."""
    port = free_port()
    output = folder / f"{command}-{port}.log"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("EVALBOT_")},
        "EVALBOT_SECRET_KEY": SECRET,
        "EVALBOT_DATABASE_URL": f"sqlite:///{folder / 'evalbot.db'}",
    }
    with output.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "bot", command, "--port", str(port), *flags],
            cwd=folder,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    service = Live(port, output, process)
    try:
        deadline = time.monotonic() + 30
        while True:  # until it listens: a readiness poll, not a wait on the clock of the code
            assert process.poll() is None, output.read_text()
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert time.monotonic() < deadline, output.read_text()
            time.sleep(0.05)
        yield service
    finally:
        service.stop()
