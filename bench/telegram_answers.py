"""Survey answers in Telegram, end to end: update in, answer stored, next question out.

    .venv/bin/python bench/telegram_answers.py [--people 60] [--rounds 3] [--threads] [--in-turn]
        [--webhook] [--against BASELINE_CHECKOUT]

Two processes, as on a real server the Bot API is elsewhere:

- this one runs the bot exactly as ``evalbot run`` does (``TelegramService``, polling, the
  python-telegram-bot client, SQLite), without any rate limiter;
- a child runs the fake Bot API (``tests/fake_telegram.py``) with a driver playing ``--people``
  delegates, each with an open end-of-course evaluation. A delegate taps the answer on the
  question in front of them as soon as the bot has shown it (a scale's 4, "Yes, fully"), types
  an answer to a free-text question, skips the optional one and taps "Send my answers": 13
  updates a survey, 12 of them answers. All delegates answer at once, as after a training day.

The rate is answers stored (counted in the database afterwards) over the time from the first
update the driver queued to the bot's reply to the last. Rounds start from a fresh database; the
best is kept, as other work on the machine only ever slows a round down. ``--threads`` runs the
handlers' database work on a worker thread, as the service does by default. The bot handles
different chats' updates side by side and each chat's in order (``bot.telegram.app.ChatOrder``,
as ``evalbot run`` does); ``--in-turn`` handles every update in turn instead, for comparison.
``--webhook`` serves the web app on a loopback port and has the fake POST the updates to its
hook. ``--against DIR`` runs rounds of this checkout and of the one in ``DIR`` (a ``git
worktree`` of the baseline) in turn, each a fresh process, and prints both medians and ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# ``--code DIR`` runs the bot from another checkout (a ``git worktree`` of the baseline), with
# this script and its fake: ``--against DIR`` does so in interleaved rounds.
if "--code" in sys.argv:
    ROOT = Path(sys.argv[sys.argv.index("--code") + 1]).resolve()
sys.path.insert(0, str(ROOT))

NOW = datetime(2026, 3, 16, 17, 0, tzinfo=UTC)
FIRST_CHAT = 6_000_000


# -- the child: fake Bot API and the delegates' driver ------------------------------------------


def serve(people: int) -> None:
    from tests.fake_telegram import Call, FakeTelegram

    fake = FakeTelegram(record=False)
    finished = threading.Event()
    guard = threading.Lock()  # between the driver's thread and the fake's
    waiting: dict[int, str] = {}  # chat -> the query id, or "say", whose outcome is awaited
    by_query: dict[str, int] = {}
    done: set[int] = set()
    answers = [0]
    updates = [0]  # every tap and typed message the delegates send
    ready: list[int] = []
    wake = threading.Condition()

    def act(chat: int) -> None:
        """Do what a delegate would with the message in front of them."""
        _, text, buttons = fake.last_message(chat)
        labels = [label for label, _ in buttons]
        if "Your answers have been sent" in text:
            done.add(chat)
            if len(done) == people:
                finished.set()
            return
        with guard:
            for wanted in ("Send my answers", "4", "Yes, fully", "Skip"):
                if wanted in labels:
                    answers[0] += wanted != "Send my answers"
                    query = fake.tap(chat, wanted)
                    updates[0] += 1
                    waiting[chat], by_query[query] = query, chat
                    return
            if "Type your answer" in text:
                answers[0] += 1
                waiting[chat] = "say"
                updates[0] += 1
                fake.say(chat, "Share concerns sooner & record them <clearly>.")
                return
            for label in labels:
                if label.startswith("Start:"):
                    query = fake.tap(chat, label)
                    updates[0] += 1
                    waiting[chat], by_query[query] = query, chat
                    return
        raise RuntimeError(f"the driver is stuck in chat {chat}: {text!r} {labels}")

    def on_call(call: Call) -> None:
        """The bot's reply ends a delegate's wait once its last call is made."""
        with guard:
            if call.method == "answerCallbackQuery":
                chat = by_query.pop(str(call.params.get("callback_query_id")), None)
            elif call.method == "sendMessage" and waiting.get(call.chat_id or 0) == "say":
                chat = call.chat_id
            else:
                return
            if chat is None:
                return
            del waiting[chat]
        with wake:
            ready.append(chat)
            wake.notify()

    def driver() -> None:
        while not finished.is_set():
            with wake:
                while not ready and not finished.is_set():
                    wake.wait(0.5)
                batch, ready[:] = list(ready), []
            for chat in batch:
                act(chat)

    fake.on_call = on_call
    fake.start()
    for n in range(people):
        fake.user(FIRST_CHAT + n, f"Delegate {n}")
    print(json.dumps({"api_url": fake.api_url, "token": fake.token}), flush=True)
    sys.stdin.readline()  # "go"
    threading.Thread(target=driver, daemon=True).start()
    started = time.perf_counter()
    cpu = time.process_time()
    for n in range(people):
        with guard:
            waiting[FIRST_CHAT + n] = "say"
            updates[0] += 1
            fake.say(FIRST_CHAT + n, "/surveys")
    finished.wait(600)
    elapsed = time.perf_counter() - started
    used = time.process_time() - cpu
    print(
        json.dumps(
            {
                "seconds": elapsed,
                "answers": answers[0],
                "updates": updates[0],
                "calls": fake.counts,
                "fake_cpu": used,
            }
        ),
        flush=True,
    )
    sys.stdin.readline()  # the bot has stopped
    fake.stop()


# -- this process: the bot -------------------------------------------------------------------


def build_world(database_url: str, people: int) -> None:
    from sqlmodel import Session

    from surveys import db
    from surveys.models import (
        Booking,
        Course,
        CourseSession,
        InvitationStatus,
        Person,
        Stage,
        SurveyInvitation,
    )

    engine = db.make_engine(database_url)
    db.upgrade(engine)
    with Session(engine) as session:
        course = Course(
            title="Working Together to Safeguard Children",
            learning_outcomes=[
                "recognise the signs of neglect",
                "share information under the multi-agency procedures",
                "make a referral to children's social care",
            ],
        )
        session.add(course)
        session.flush()
        course_session = CourseSession(
            ref="WT-1",
            course_id=course.id,  # type: ignore[arg-type]
            starts_at=NOW - timedelta(hours=8),
            ends_at=NOW - timedelta(hours=1),
        )
        session.add(course_session)
        session.flush()
        for n in range(people):
            person = Person(
                name=f"Delegate {n} O'Brien <Health & Care>",
                email=f"d{n}@example.org",
                telegram_chat_id=FIRST_CHAT + n,
            )
            session.add(person)
            session.flush()
            booking = Booking(
                ref=f"BK-{n}",
                session_id=course_session.id,  # type: ignore[arg-type]
                delegate_id=person.id,  # type: ignore[arg-type]
            )
            session.add(booking)
            session.flush()
            session.add(
                SurveyInvitation(
                    booking_id=booking.id,  # type: ignore[arg-type]
                    person_id=person.id,  # type: ignore[arg-type]
                    stage=Stage.END,
                    opens_at=NOW - timedelta(hours=1),
                    closes_at=NOW + timedelta(days=14),
                    status=InvitationStatus.OPEN,
                )
            )
        session.commit()
    engine.dispose()


def count_answers(database_url: str) -> tuple[int, int]:
    from sqlalchemy import func
    from sqlmodel import Session, select

    from surveys import db
    from surveys.models import Answer, InvitationStatus, SurveyInvitation

    engine = db.make_engine(database_url)
    with Session(engine) as session:
        answers = session.exec(select(func.count()).select_from(Answer)).one()
        finished = session.exec(
            select(func.count()).where(SurveyInvitation.status == InvitationStatus.FINISHED)
        ).one()
    engine.dispose()
    return int(answers), int(finished)


async def one_round(people: int, threads: bool, in_turn: bool, webhook: bool) -> dict[str, Any]:
    import socket

    import uvicorn

    from bot.settings import load_settings
    from bot.telegram.app import build_application
    from bot.telegram.runtime import TelegramService
    from surveys import db
    from surveys.definitions import load_definitions

    with tempfile.TemporaryDirectory() as folder:
        database_url = f"sqlite:///{folder}/bench.db"
        build_world(database_url, people)
        child = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(people)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdin is not None and child.stdout is not None
        where = json.loads(child.stdout.readline())
        listening = socket.socket()
        listening.bind(("127.0.0.1", 0))
        port = listening.getsockname()[1]
        settings = load_settings(
            database_url=database_url,
            secret_key="bench-secret-key-0123456789abcdef",
            telegram_token=where["token"],
            telegram_api_url=where["api_url"],
            telegram_bot_username="evalbot_bench_bot",
            telegram_mode="webhook" if webhook else "polling",
            public_url=f"http://127.0.0.1:{port}",
        )
        engine = db.make_engine(database_url)
        server: uvicorn.Server | None = None
        serving: asyncio.Task[None] | None = None
        web_app = None
        if webhook:
            from bot.web.app import create_app

            # The web app as `evalbot run` serves it: uvicorn, httptools, the bot's event loop.
            web_app = create_app(settings, engine)
            server = uvicorn.Server(
                uvicorn.Config(web_app, log_level="warning", lifespan="off", http="httptools")
            )
            serving = asyncio.create_task(server.serve(sockets=[listening]))
            while not server.started:
                await asyncio.sleep(0.01)
        service = TelegramService(settings, engine, app=web_app, clock=lambda: NOW)
        if in_turn:
            service.application = build_application(
                settings, engine, clock=lambda: NOW, concurrent_updates=False
            )
        service.application.bot_data["evalbot"].in_thread = threads
        await service.start()
        # The survey definitions are read and checked once a process, as the service's first
        # tick has done long before a burst of answers: not inside the measured time.
        load_definitions(settings.survey_definitions_dir)
        try:
            cpu = time.process_time()
            child.stdin.write("go\n")
            child.stdin.flush()
            line = await asyncio.to_thread(child.stdout.readline)
            result: dict[str, Any] = json.loads(line)
            result["bot_cpu"] = time.process_time() - cpu
            svc = service.application.bot_data["evalbot"]
            result["batches"] = getattr(svc, "batches", None)
        finally:
            await service.stop()
            if server is not None and serving is not None:
                server.should_exit = True
                await serving
            listening.close()
            engine.dispose()
            child.stdin.write("bye\n")
            child.stdin.flush()
            child.wait(30)
        stored, finished = count_answers(database_url)
    result.update(stored=stored, finished=finished, rate=stored / result["seconds"])
    return result


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def compare(args: argparse.Namespace) -> None:
    """Rounds of this checkout and of ``--against`` in turn, each a fresh process."""
    flags = ["--people", str(args.people), "--rounds", "1", "--json"]
    flags += ["--threads"] * args.threads + ["--in-turn"] * args.in_turn
    flags += ["--webhook"] * args.webhook
    runs: dict[str, list[dict[str, Any]]] = {"baseline": [], "this": []}
    for number in range(1, args.rounds + 1):
        for name in ("baseline", "this"):
            code = ["--code", args.against] if name == "baseline" else []
            out = subprocess.run(
                [sys.executable, __file__, *flags, *code],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            result = json.loads(out.strip().splitlines()[-1])
            runs[name].append(result)
            print(f"round {number}, {name}: {describe(result)}", flush=True)
    medians = {
        name: {
            key: statistics.median(r[key] for r in results)
            for key in ("rate", "cpu_per_update", "calls_per_poll")
        }
        for name, results in runs.items()
    }
    for name, median in medians.items():
        print(
            f"median, {name}: {median['rate']:.0f} answers/s, "
            f"{median['cpu_per_update'] * 1000:.2f} ms of the bot's CPU an update"
            + ("" if args.webhook else f", {median['calls_per_poll']:.1f} updates a getUpdates")
        )
    this, base = medians["this"], medians["baseline"]
    print(
        f"ratio this/baseline: rate {this['rate'] / base['rate']:.2f}, "
        f"CPU an update {this['cpu_per_update'] / base['cpu_per_update']:.2f} "
        f"(load average now {load_average()})"
    )


def describe(result: dict[str, Any]) -> str:
    return (
        f"{result['stored']} answers stored, {result['finished']} surveys sent, in "
        f"{result['seconds']:.2f} s: {result['rate']:.0f} answers/s (CPU: the bot "
        f"{result['bot_cpu']:.2f} s, {result['cpu_per_update'] * 1000:.2f} ms an update over "
        f"{result['updates']} updates; {result['calls'].get('getUpdates', 0)} getUpdates; "
        f"{result['batches']} database hand-overs; the fake and its driver "
        f"{result['fake_cpu']:.2f} s; load average {result['load']})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", action="store_true")
    parser.add_argument("--in-turn", action="store_true")
    parser.add_argument("--webhook", action="store_true", help="Telegram posts to the web app")
    parser.add_argument("--against", metavar="DIR", help="a baseline checkout, rounds in turn")
    parser.add_argument("--code", metavar="DIR", help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    if args.against:
        compare(args)
        return
    best: dict[str, Any] | None = None
    for number in range(1, args.rounds + 1):
        result = asyncio.run(one_round(args.people, args.threads, args.in_turn, args.webhook))
        result["cpu_per_update"] = result["bot_cpu"] / result["updates"]
        result["calls_per_poll"] = result["updates"] / max(1, result["calls"].get("getUpdates", 0))
        result["load"] = load_average()
        if args.json:
            print(json.dumps(result), flush=True)
            continue
        print(f"round {number}: {describe(result)}", flush=True)
        if best is None or result["rate"] > best["rate"]:
            best = result
    if best is None:
        return
    calls = best["calls"]
    print(
        f"best: {best['rate']:.0f} answers a second end to end "
        f"({args.people} delegates at once; "
        f"{'by webhook' if args.webhook else 'polling'}; database work "
        f"{'on a worker thread' if args.threads else 'in the event loop'}; updates "
        f"{'in turn' if args.in_turn else 'of different chats side by side'}); Bot API calls: "
        + ", ".join(f"{name} {count}" for name, count in sorted(calls.items()))
    )


if __name__ == "__main__":
    main()
