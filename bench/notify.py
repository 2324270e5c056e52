"""GOV.UK Notify's pace: the dispatcher sending email by Notify to a fake Notify API that answers
at once, kept to Notify's 3,000 requests a minute (50 a second) by its own rate limiter.

    .venv/bin/python bench/notify.py [--messages 3300] [--per-second 50]

The fake (``tests/fake_notify.py``, in this process, on loopback) checks every request's JWT
and payload and answers ``429 RateLimitError`` past 3,000 requests in any 60 seconds, as Notify
does. The dispatcher (``Dispatcher.run(until_idle=True)`` over a SQLite outbox of
``--messages`` emails, a person each) runs in a process of its own, through the real
``notifications-python-client``. The run must last more than a minute for Notify's window to
matter: 3,300 messages at 50 a second take 66 seconds.

Reported: the messages Notify accepted and the 429s it answered (the target: none), the rate
from the first to the last accepted, the most accepted in any 60 seconds (Notify's limit: 3,000)
and in any one second, the dispatcher's CPU a message and its own peak memory (``VmHWM``), and
the load average.
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import resource
import shutil
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

from bench.delivery_workers import fill  # noqa: E402
from tests.fake_notify import API_KEY, EMAIL_TEMPLATE, FakeNotify  # noqa: E402


class TimedNotify(FakeNotify):
    """The fake Notify API, noting when it accepted each request."""

    def __init__(self) -> None:
        super().__init__()
        self.accepted_at: list[float] = []
        self._times = threading.Lock()

    def _answer(self, path: str, authorization: str, raw: bytes) -> tuple[int, dict[str, Any]]:
        status, body = super()._answer(path, authorization, raw)
        if status == 201:
            with self._times:
                self.accepted_at.append(time.monotonic())
        return status, body


def most_within(times: list[float], seconds: float) -> int:
    """The most of ``times`` (sorted) that fall in any window of ``seconds``."""
    return max(
        (bisect.bisect_left(times, start + seconds) - i for i, start in enumerate(times)),
        default=0,
    )


def worker(database_url: str, notify_url: str, per_second: float) -> None:
    """One dispatcher sending the outbox by Notify until it is empty; prints its own figures."""
    import asyncio

    from bot.channels.registry import build_channels
    from bot.dispatcher import Dispatcher
    from bot.settings import load_settings
    from surveys.db import make_engine

    settings = load_settings(
        database_url=database_url,
        notify_api_key=API_KEY,
        notify_email_template_id=EMAIL_TEMPLATE,
        notify_base_url=notify_url,
        notify_per_second=per_second,
        secret_key="bench-secret-key-0123456789abcdef",
        mail_from="Evalbot <evalbot@partnership.example>",
        public_url="https://evalbot.partnership.example",
        partnership_name="Riverside Safeguarding Children Partnership",
    )
    engine = make_engine(database_url)

    async def run() -> int:
        channels = build_channels(settings)
        dispatcher = Dispatcher(
            engine, settings, channels, clock=lambda: datetime.now(UTC), database_thread=False
        )
        report = await dispatcher.run(until_idle=True)
        for channel in channels.values():
            await channel.close()
        return report.sent

    sent = asyncio.run(run())
    usage = resource.getrusage(resource.RUSAGE_SELF)
    peak = next(
        int(line.split()[1]) / 1024
        for line in Path("/proc/self/status").read_text().splitlines()
        if line.startswith("VmHWM:")
    )
    print(json.dumps({"sent": sent, "cpu": usage.ru_utime + usage.ru_stime, "peak_mb": peak}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=3300)
    parser.add_argument(
        "--per-second", type=float, default=50.0, help="EVALBOT_NOTIFY_PER_SECOND (default 50)"
    )
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="evalbot-notify-bench-"))
    url = f"sqlite:///{workdir / 'outbox.db'}"
    try:
        fill(url, args.messages)
        with TimedNotify() as fake:
            started = time.monotonic()
            done = subprocess.run(
                [sys.executable, __file__, "worker", url, fake.url, str(args.per_second)],
                capture_output=True,
                text=True,
                cwd=ROOT,
                check=True,
            )
            wall = time.monotonic() - started
            figures = json.loads(done.stdout.strip().splitlines()[-1])
            times = sorted(fake.accepted_at)
            limited = [reason for status, reason in fake.refusals if status == 429]
            others = [reason for status, reason in fake.refusals if status != 429]
        span = times[-1] - times[0] if len(times) > 1 else 0.0
        print(
            f"{args.messages} emails by GOV.UK Notify (fake, answering at once), limiter at "
            f"{args.per_second:g} a second"
        )
        print(f"  accepted by Notify          {len(fake.sent)} (the dispatcher: {figures['sent']})")
        print(
            f"  429 answers                 {len(limited)}"
            + (f" ({limited[0]})" if limited else "")
        )
        print(
            f"  other refusals              {len(others)}" + (f" ({others[0]})" if others else "")
        )
        print(
            f"  rate, first to last         {(len(times) - 1) / span if span else 0:.1f} a second"
        )
        print(f"  most in any 60 seconds      {most_within(times, 60.0)} (Notify's limit: 3000)")
        print(f"  most in any second          {most_within(times, 1.0)}")
        print(
            f"  dispatcher                  {wall:.1f} s from start to end, CPU "
            f"{figures['cpu'] / max(1, figures['sent']) * 1e6:.0f} us a message (start-up "
            f"included), own peak memory {figures['peak_mb']:.0f} MiB"
        )
        print(f"  load average at the end     {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "worker":
        worker(sys.argv[2], sys.argv[3], float(sys.argv[4]))
    else:
        main()
