"""A Telegram broadcast through the outbox: 3,000 messages within Telegram's rate limits.

    .venv/bin/python bench/telegram_broadcast.py [--messages 3000] [--chats 600] [--unlimited]

The fake Bot API (``tests/fake_telegram.py``) runs in a child process with Telegram's limits on:
30 messages a second overall and one a second per chat, each answered with 429 and
``retry_after`` when exceeded. This process queues ``--messages`` outbox rows to ``--chats``
people who prefer Telegram, and runs the real dispatcher (``bot.dispatcher``) with the real
Telegram channel and the configured limits (``EVALBOT_TELEGRAM_PER_SECOND=30``,
``EVALBOT_TELEGRAM_PER_CHAT_PER_SECOND=1``) until the outbox is empty.

The rate is messages delivered over the time from the first to the last delivery, as the fake
saw them; the fake also counts every 429 it answered. ``--unlimited`` turns the dispatcher's
limits off, to show that the fake does hold the line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FIRST_CHAT = 8_000_000
NOW = datetime(2026, 3, 17, 10, 0, tzinfo=UTC)


def serve(chats: int) -> None:
    from tests.fake_telegram import Call, FakeTelegram

    fake = FakeTelegram(record=False, rate_limits=True)
    times: list[float] = []

    def on_call(call: Call) -> None:
        if call.method == "sendMessage" and call.status == 200:
            times.append(time.perf_counter())

    fake.on_call = on_call
    fake.start()
    for n in range(chats):
        fake.user(FIRST_CHAT + n, f"Delegate {n}")
    print(json.dumps({"api_url": fake.api_url, "token": fake.token}), flush=True)
    sys.stdin.readline()  # the dispatcher has finished
    first, last = (times[0], times[-1]) if times else (0.0, 0.0)
    print(
        json.dumps(
            {
                "delivered": len(times),
                "seconds": last - first,
                "rate_limited": fake.rate_limited,
                "rate_limited_by": fake.rate_limited_by,
                "calls": fake.counts,
            }
        ),
        flush=True,
    )
    fake.stop()


def build_outbox(database_url: str, messages: int, chats: int) -> None:
    from sqlmodel import Session

    from surveys import db, outbox
    from surveys.models import Channel, MessageKind, Person

    engine = db.make_engine(database_url)
    db.upgrade(engine)
    with Session(engine) as session:
        people = []
        for n in range(chats):
            person = Person(
                name=f"Delegate {n} O'Brien <Health & Care>",
                email=f"d{n}@example.org",
                telegram_chat_id=FIRST_CHAT + n,
                preferred_channel=Channel.TELEGRAM,
            )
            session.add(person)
            people.append(person)
        session.flush()
        for n in range(messages):
            outbox.enqueue(
                session,
                key=f"broadcast:{n}",
                person=people[n % chats],
                template="admin-test",
                context={"sent_by": f"bench message {n}"},
                due_at=NOW,
                kind=MessageKind.NOTICE,
            )
        session.commit()
    engine.dispose()


async def broadcast(messages: int, chats: int, unlimited: bool) -> dict[str, Any]:
    from bot.channels.registry import build_channels
    from bot.dispatcher import Dispatcher
    from bot.settings import load_settings
    from surveys import db

    with tempfile.TemporaryDirectory() as folder:
        database_url = f"sqlite:///{folder}/bench.db"
        build_outbox(database_url, messages, chats)
        child = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(chats)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdin is not None and child.stdout is not None
        where = json.loads(child.stdout.readline())
        limits = {"telegram_per_second": 0, "telegram_per_chat_per_second": 0} if unlimited else {}
        settings = load_settings(
            database_url=database_url,
            secret_key="bench-secret-key-0123456789abcdef",
            telegram_token=where["token"],
            telegram_api_url=where["api_url"],
            telegram_bot_username="evalbot_bench_bot",
            mail_dir=Path(folder) / "mail",
            **limits,
        )
        engine = db.make_engine(database_url)
        channels = build_channels(settings)
        # The broadcast is "now": every row is due; the clock runs for the limits.
        dispatcher = Dispatcher(engine, settings, channels, clock=lambda: datetime.now(UTC))
        _make_due(engine)
        started = time.perf_counter()
        try:
            report = await dispatcher.run(until_idle=True)
        finally:
            for channel in channels.values():
                await channel.close()
            engine.dispose()
        wall = time.perf_counter() - started
        child.stdin.write("done\n")
        child.stdin.flush()
        result: dict[str, Any] = json.loads(child.stdout.readline())
        child.wait(30)
    result.update(report=str(report), wall=wall)
    return result


def _make_due(engine: Any) -> None:
    """Queued for 2026 in the test data; due now for a broadcast measured on the real clock."""
    from sqlalchemy import update
    from sqlmodel import Session

    from surveys.models import OutboxMessage

    with Session(engine) as session:
        past = datetime(2000, 1, 1, tzinfo=UTC)
        session.execute(update(OutboxMessage).values(due_at=past, available_at=past))
        session.commit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--chats", type=int, default=600)
    parser.add_argument("--unlimited", action="store_true")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    watchdog = threading.Timer(900, lambda: sys.exit("the broadcast took over 15 minutes"))
    watchdog.daemon = True
    watchdog.start()
    result = asyncio.run(broadcast(args.messages, args.chats, args.unlimited))
    rate = result["delivered"] / result["seconds"] if result["seconds"] else 0.0
    print(
        f"{result['delivered']} of {args.messages} messages delivered to {args.chats} chats in "
        f"{result['seconds']:.1f} s: {rate:.2f} messages a second; the fake answered 429 "
        f"{result['rate_limited']} times {result['rate_limited_by']} "
        f"({'no limiter' if args.unlimited else 'limiter on'}; "
        f"dispatcher: {result['report']}; {result['wall']:.1f} s in all)"
    )


if __name__ == "__main__":
    main()
