"""Dispatcher processes killed, stopped and run side by side (``evalbot outbox deliver``).

These run real processes against a sink process, so they wait on real time: for the sink to
receive messages before a kill, and for a short lease (two seconds) to run out.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.engine import Engine

from surveys import db
from surveys.models import OutboxMessage, OutboxState, Person
from tests.smtp_servers import read_log, start_sink

OUTBOX = OutboxMessage.__table__  # type: ignore[attr-defined]
PEOPLE = Person.__table__  # type: ignore[attr-defined]
DUE = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)  # in the past: everything is due at once


def fill(engine: Engine, count: int) -> None:
    """``count`` due messages, each to a person of its own."""
    with engine.begin() as connection:
        for start in range(0, count, 10_000):
            chunk = range(start, min(count, start + 10_000))
            connection.execute(
                PEOPLE.insert(),
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
                        "created_at": DUE,
                        "updated_at": DUE,
                    }
                    for n in chunk
                ],
            )
            connection.execute(
                OUTBOX.insert(),
                [
                    {
                        "idempotency_key": f"crash:{n}",
                        "person_id": n + 1,
                        "channel": "email",
                        "recipient": f"delegate{n}@agency.example",
                        "template": "admin-test",
                        "context": {"links": {"survey": ["survey", f"invitation:{n}"]}},
                        "kind": "invitation",
                        "due_at": DUE,
                        "available_at": DUE,
                        "state": "pending",
                        "attempts": 0,
                        "created_at": DUE,
                    }
                    for n in chunk
                ],
            )


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    log = tmp_path / "arrived.log"
    process, port = start_sink("sink", log)
    yield port, log
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture
def fast_sink(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    log = tmp_path / "arrived.log"
    process, port = start_sink("fast-sink", log)
    yield port, log
    process.terminate()
    process.wait(timeout=10)


def deliver(database_url: str, port: int, *flags: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "EVALBOT_DATABASE_URL": database_url,
        "EVALBOT_SMTP_HOST": "127.0.0.1",
        "EVALBOT_SMTP_PORT": str(port),
        "EVALBOT_SMTP_SECURITY": "none",
        "EVALBOT_MAIL_FROM": "Evalbot <evalbot@partnership.example>",
        "EVALBOT_OUTBOX_LEASE_SECONDS": "2",
        "EVALBOT_OUTBOX_BATCH_SIZE": "50",
        "EVALBOT_OUTBOX_POLL_SECONDS": "0.2",
        "EVALBOT_SMTP_CONNECTIONS": "4",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "bot", "outbox", "deliver", *flags],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def wait_for_arrivals(log: Path, count: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while len(read_log(log)) < count:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"only {len(read_log(log))} arrived"
        time.sleep(0.02)


def states(engine: Engine) -> Counter[str]:
    with engine.connect() as connection:
        return Counter(
            {
                state: count
                for state, count in connection.execute(
                    select(OUTBOX.c.state, func.count()).group_by(OUTBOX.c.state)
                )
            }
        )


def message_ids(engine: Engine) -> dict[str, str]:
    with engine.connect() as connection:
        found = connection.execute(select(OUTBOX.c.recipient, OUTBOX.c.message_id))
        return {recipient: message_id for recipient, message_id in found}


def test_a_killed_dispatcher_loses_nothing_and_repeats_only_what_was_in_flight(
    engine: Engine, database_url: str, sink: tuple[int, Path]
) -> None:
    port, log = sink
    fill(engine, 2000)
    kill_after = random.Random().randint(300, 1500)

    first = deliver(database_url, port)
    wait_for_arrivals(log, kill_after, first)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    in_flight = states(engine)[OutboxState.CLAIMED.value]
    arrived_before = len(read_log(log))

    second = deliver(database_url, port, "--until-idle")
    _, errors = second.communicate(timeout=60)
    assert second.returncode == 0, errors.decode()

    assert states(engine) == Counter({OutboxState.SENT.value: 2000})
    arrived = read_log(log)
    by_recipient: dict[str, set[str]] = defaultdict(set)
    for message_id, recipient, _subject in arrived:
        by_recipient[recipient].add(message_id)
    repeats = len(arrived) - 2000
    context = f"killed after {kill_after}: {arrived_before} arrived, {in_flight} in flight"
    # Every message arrived; repeats are no more than were in flight; a repeat is the same
    # message (its Message-ID), and that is the one the outbox recorded.
    assert len(by_recipient) == 2000, context
    assert 0 <= repeats <= in_flight, context
    assert by_recipient == {r: {m} for r, m in message_ids(engine).items()}, context
    assert in_flight > 0, context


def test_sigterm_finishes_the_messages_in_hand_and_leaves_the_rest(
    engine: Engine, database_url: str, sink: tuple[int, Path]
) -> None:
    port, log = sink
    fill(engine, 2000)
    worker = deliver(database_url, port)
    wait_for_arrivals(log, 300, worker)
    worker.send_signal(signal.SIGTERM)
    output, errors = worker.communicate(timeout=20)
    assert worker.returncode == 0, errors.decode()

    counts = states(engine)
    arrived = read_log(log)
    assert counts[OutboxState.CLAIMED.value] == 0
    assert counts[OutboxState.SENT.value] == len(arrived)  # each exactly once
    assert len({m for m, _, _ in arrived}) == len(arrived)
    assert counts[OutboxState.PENDING.value] == 2000 - len(arrived) > 0
    with engine.connect() as connection:
        tried = connection.execute(
            select(func.count()).where(OUTBOX.c.state == "pending", OUTBOX.c.attempts > 0)
        ).scalar_one()
    assert tried == 0
    assert f"sent {len(arrived)}".encode() in output


def test_four_dispatchers_on_postgresql_never_send_a_message_twice(
    postgres_url: str, fast_sink: tuple[int, Path]
) -> None:
    port, log = fast_sink
    engine = db.make_engine(postgres_url)
    db.upgrade(engine)
    fill(engine, 20_000)
    with engine.begin() as connection:
        connection.execute(text("SELECT setval('person_id_seq', 20000)"))

    workers = [deliver(postgres_url, port, "--until-idle") for _ in range(4)]
    outputs = [worker.communicate(timeout=120) for worker in workers]
    assert [w.returncode for w in workers] == [0, 0, 0, 0], [e.decode() for _, e in outputs]

    arrived = read_log(log)
    assert states(engine) == Counter({OutboxState.SENT.value: 20_000})
    assert len(arrived) == 20_000
    assert len({m for m, _, _ in arrived}) == 20_000
    assert len({r for _, r, _ in arrived}) == 20_000
    sent_by = [int(o.split(b"sent ")[1].split(b",")[0].split(b".")[0]) for o, _ in outputs]
    assert sum(sent_by) == 20_000
    assert all(n > 0 for n in sent_by), sent_by  # all four took part
    engine.dispose()
