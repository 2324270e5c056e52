"""The outbox and the worker processes of ``bench/dispatch.py``: filling an outbox, one message
as the dispatcher builds it, the bare aiosmtplib loop and the dispatcher, each run in a process
of its own by the conductor (``bench/dispatch.py``), which it tells "go" on stdin and to which it
reports its figures as a line of JSON on stdout."""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

SECRET = "bench-secret-key-0123456789abcdef"
MAIL_FROM = "Evalbot <evalbot@partnership.example>"
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def settings_for(database_url: str, port: int, connections: int) -> Any:
    from bot.settings import load_settings

    return load_settings(
        database_url=database_url,
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_security="none",
        smtp_connections=connections,
        secret_key=SECRET,
        mail_from=MAIL_FROM,
        public_url="https://evalbot.partnership.example",
        partnership_name="Riverside Safeguarding Children Partnership",
    )


# --- the outbox -----------------------------------------------------------------------------


def fill(database_url: str, messages: int) -> None:
    """A migrated database with ``messages`` due rows, each to a person of its own."""
    from sqlalchemy import text

    from surveys import db
    from surveys.models import OutboxMessage, Person

    engine = db.make_engine(database_url)
    db.upgrade(engine)
    people = Person.__table__  # type: ignore[attr-defined]
    outbox = OutboxMessage.__table__  # type: ignore[attr-defined]
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM outbox"))
        connection.execute(text("DELETE FROM person"))
        for start in range(0, messages, 20_000):
            chunk = range(start, min(messages, start + 20_000))
            connection.execute(
                people.insert(),
                [
                    {
                        "id": n + 1,
                        "name": f"Delegate {n}",
                        "email": f"delegate{n}@agency.example",
                        "telegram_link_generation": 0,
                        "preferred_channel": "email",
                        "email_status": "ok",
                        "telegram_status": "ok",
                        "email_opt_out": False,
                        "telegram_opt_out": False,
                        "created_at": NOW,
                        "updated_at": NOW,
                    }
                    for n in chunk
                ],
            )
            connection.execute(
                outbox.insert(),
                [
                    {
                        "idempotency_key": f"bench:{n}",
                        "person_id": n + 1,
                        "channel": "email",
                        "recipient": f"delegate{n}@agency.example",
                        "template": "admin-test",
                        "context": {
                            "sent_by": "the benchmark",
                            "links": {"survey": ["survey", f"invitation:{n}"]},
                        },
                        "kind": "invitation",
                        "due_at": NOW,
                        "available_at": NOW,
                        "state": "pending",
                        "attempts": 0,
                        "created_at": NOW,
                    }
                    for n in chunk
                ],
            )
    engine.dispose()


def sample_message(database_url: str, port: int) -> bytes:
    """One message as the dispatcher renders and builds it, for the bare loop to send."""
    from bot.channels.email import build_message
    from bot.rendering import render_email
    from surveys.models import Channel, MessageKind, OutboxMessage

    settings = settings_for(database_url, port, 1)
    row = OutboxMessage(
        id=1,
        idempotency_key="bench:1",
        person_id=1,
        channel=Channel.EMAIL,
        recipient="delegate1@agency.example",
        template="admin-test",
        context={"sent_by": "the benchmark", "links": {"survey": ["survey", "invitation:1"]}},
        kind=MessageKind.INVITATION,
        due_at=NOW,
        available_at=NOW,
    )
    outgoing = render_email(
        settings, row, recipient=row.recipient, recipient_name="Delegate 1", now=NOW
    )
    return build_message(outgoing, mail_from=settings.mail_from, reply_to=None)


# --- workers (each in a process of its own) ------------------------------------------------------


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _ready_then_wait() -> float:
    """Say ready, wait for "go"; returns the process's CPU time at that moment."""
    print("ready", flush=True)
    sys.stdin.readline()
    return _cpu()


def _peak_memory_mb() -> float:
    """This process's own peak resident memory (``VmHWM``), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def _finish(sent: int, started: float, cpu_at_start: float) -> None:
    print(
        json.dumps(
            {
                "sent": sent,
                "started": started,
                "ended": time.time(),
                "cpu": _cpu() - cpu_at_start,
                "peak_mb": _peak_memory_mb(),
            }
        ),
        flush=True,
    )


def bare_worker(port: int, messages: int, connections: int, message_file: Path) -> None:
    import aiosmtplib

    data = message_file.read_bytes()

    async def run() -> int:
        clients = [
            aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False, timeout=30)
            for _ in range(connections)
        ]
        for client in clients:
            await client.connect()
        cpu = _ready_then_wait()
        started = time.time()
        counter = iter(range(messages))

        async def loop(client: aiosmtplib.SMTP) -> int:
            sent = 0
            for n in counter:
                await client.sendmail("evalbot@partnership.example", [f"d{n}@agency.example"], data)
                sent += 1
            return sent

        totals = await asyncio.gather(*(loop(c) for c in clients))
        _finish(sum(totals), started, cpu)
        for client in clients:
            await client.quit()
        return sum(totals)

    asyncio.run(run())


def dispatcher_worker(database_url: str, port: int, connections: int) -> None:
    from bot.channels.registry import build_channels
    from bot.dispatcher import Dispatcher
    from surveys.db import make_engine

    settings = settings_for(database_url, port, connections)
    engine = make_engine(database_url)
    with engine.connect():
        pass

    async def run() -> None:
        channels = build_channels(settings)
        dispatcher = Dispatcher(
            engine,
            settings,
            channels,
            clock=lambda: datetime.now(UTC),
            database_thread=engine.dialect.name == "postgresql",  # as `outbox deliver` does
        )
        cpu = _ready_then_wait()
        started = time.time()
        report = await dispatcher.run(until_idle=True)
        _finish(report.sent, started, cpu)
        for channel in channels.values():
            await channel.close()

    asyncio.run(run())
