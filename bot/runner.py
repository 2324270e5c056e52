"""``evalbot run``: the web app, the outbox dispatcher, Telegram and the tick, in one event loop.

- uvicorn serves the FastAPI app (``bot.web.app.create_app``);
- an APScheduler 3 ``AsyncIOScheduler`` runs the tick every minute (``max_instances=1`` and
  ``coalesce``, so a slow tick is never run twice at once nor caught up minute by minute); the
  tick's database work runs on a worker thread, then wakes the dispatcher;
- the dispatcher (``bot.dispatcher``) delivers due messages continuously, within the rate limits;
- further services (Telegram, when a token is set) start and stop with the rest: anything with
  async ``start()`` and ``stop()`` (see ``Service``).

The schedule itself is data in the database and the job store is never shared, so a process
started after downtime catches up on its first tick: survey messages that fell due meanwhile go
out while their survey is still open; a survey that closed meanwhile is closed, its unsent
messages withdrawn. SIGINT and SIGTERM stop everything cleanly: the web server finishes its
requests, the tick the pass in progress, the dispatcher the messages in hand.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Protocol

import uvicorn
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from fastapi import FastAPI
from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot import log_redaction
from bot.mail_erasure import finish_erasure
from bot.settings import Settings
from bot.web.app import create_app
from bot.web.security import proxy_options
from schedules.policy import Policy
from schedules.tick import TickReport, tick
from schedules.waiting import holding
from surveys.db import make_engine

log = logging.getLogger(__name__)

TICK_JOB = "tick"


class Service(Protocol):
    """Something that runs alongside the web app for the life of the process."""

    name: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


def real_clock() -> datetime:
    return datetime.now(UTC)


class DispatcherService:
    """The outbox dispatcher, delivering until stopped; the tick wakes it."""

    name = "dispatcher"

    def __init__(self, engine: Engine, settings: Settings, clock: Callable[[], datetime]):
        from bot.channels.registry import build_channels
        from bot.dispatcher import Dispatcher

        self.channels = build_channels(settings)
        self.dispatcher = Dispatcher(engine, settings, self.channels, clock=clock)
        self._task: asyncio.Task[object] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self.dispatcher.run(), name="dispatcher")

    def wake(self) -> None:
        self.dispatcher.wake()

    async def stop(self) -> None:
        self.dispatcher.stop()
        if self._task is not None:
            await self._task
        for channel in self.channels.values():
            await channel.close()


def telegram_services(
    settings: Settings, engine: Engine, app: FastAPI, clock: Callable[[], datetime] = real_clock
) -> list[Service]:
    """Telegram, when a token is set (``bot.telegram.runtime``); without one, say so once."""
    if settings.telegram_token is None:
        log.warning("Telegram is off: EVALBOT_TELEGRAM_TOKEN is not set, so messages go by email.")
        return []
    from bot.telegram.runtime import telegram_service

    service: Service = telegram_service(settings, engine, app, clock)
    return [service]


def warn_without_contact(settings: Settings) -> None:
    """Once, at start-up: with no Reply-To and no admin address, replies and questions are lost."""
    if not settings.reply_to and not settings.admin_email:
        log.warning(
            "Neither EVALBOT_REPLY_TO nor EVALBOT_ADMIN_EMAIL is set: replies to Evalbot's "
            "messages go to %s, and the web pages name no one to contact. Set one of them.",
            settings.mail_from,
        )


class _QuietServer(uvicorn.Server):
    """uvicorn without its own signal handling: the runner owns SIGINT and SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class Runner:
    def __init__(
        self,
        settings: Settings,
        policy: Policy,
        *,
        host: str | None = None,
        port: int | None = None,
        forwarded_allow_ips: str | None = None,
        engine: Engine | None = None,
        clock: Callable[[], datetime] = real_clock,
        tick_seconds: float = 60.0,
    ):
        self.settings = settings
        self.policy = policy
        self.host = host or settings.web_host
        self.port = port or settings.web_port
        self.engine = engine or make_engine(settings.database_url)
        self.clock = clock
        self.tick_seconds = tick_seconds
        self.app = create_app(settings, self.engine)
        self.app.state.clock = clock  # the web app keeps the service's time
        self.dispatcher = DispatcherService(self.engine, settings, clock)
        # The console's sign-in emails go at once: the dispatcher is woken, not waited for.
        self.app.state.wake_dispatcher = self.dispatcher.wake
        # Telegram first: it learns the bot's @username (getMe), which the deep links in the
        # dispatcher's first emails need when EVALBOT_TELEGRAM_BOT_USERNAME is not set.
        self.services: list[Service] = [
            *telegram_services(settings, self.engine, self.app, clock),
            self.dispatcher,
        ]
        proxies = (
            forwarded_allow_ips if forwarded_allow_ips is not None else settings.forwarded_allow_ips
        )
        self.server = _QuietServer(
            uvicorn.Config(
                self.app,
                host=self.host,
                port=self.port,
                log_level="info",
                server_header=False,
                **proxy_options(proxies),
            )
        )
        self.scheduler = AsyncIOScheduler(timezone=UTC)
        self.ticks = 0
        self.last_report: TickReport | None = None
        self._tick_task: asyncio.Task[object] | None = None
        self._last_holding = ""
        self.stopping = asyncio.Event()

    async def tick_once(self) -> TickReport | None:
        """One tick at the clock's time, then wake the dispatcher; errors are logged, not raised."""
        now = self.clock()
        self._tick_task = asyncio.current_task()
        try:
            report = await asyncio.to_thread(
                tick,
                self.engine,
                now=now,
                policy=self.policy,
                zone=self.settings.zone,
                secret=self.settings.secret,
                definitions_dir=self.settings.survey_definitions_dir,
                telegram=self.settings.telegram_token is not None,
                retention_years=self.settings.retention_years,
                admin_email=self.settings.admin_email,
            )
            if report.erasure is not None:
                await asyncio.to_thread(
                    finish_erasure, self.engine, self.settings.mail_dir, report.erasure.traces
                )
        except Exception:
            log.exception("the tick at %s failed; the next one tries again", now.isoformat())
            return None
        self.ticks += 1
        self.last_report = report
        if report.erased:
            log.info("Tick: erased %d people past the retention period", report.erased)
        if report.queued or report.due:
            queued = ", ".join(f"{name} {count}" for name, count in sorted(report.queued.items()))
            log.info("Tick: queued %s; %d messages due now", queued or "nothing", report.due)
        await asyncio.to_thread(self._say_what_waits, now)
        self.dispatcher.wake()
        return report

    def _say_what_waits(self, now: datetime) -> None:
        """Log what the outbox holds and until when, whenever that changes."""
        with Session(self.engine) as session:
            text = holding(session, now, self.policy, self.settings.zone)
        if text != self._last_holding:
            self._last_holding = text
            log.info("Outbox: %s", text)

    async def _tick_finished(self) -> None:
        task = self._tick_task
        if task is not None and not task.done() and task is not asyncio.current_task():
            await asyncio.wait({task})

    def stop(self) -> None:
        """Begin a clean shutdown (what SIGINT and SIGTERM do)."""
        self.server.should_exit = True
        self.stopping.set()

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.stop)
        started: list[Service] = []
        warn_without_contact(self.settings)
        try:
            for service in self.services:
                await service.start()
                started.append(service)
            self.scheduler.add_job(
                self.tick_once,
                "interval",
                seconds=self.tick_seconds,
                id=TICK_JOB,
                next_run_time=datetime.now(UTC),  # catch up at once after downtime
                max_instances=1,
                coalesce=True,
                misfire_grace_time=int(self.tick_seconds),
            )
            self.scheduler.start()
            log.info("Evalbot is running on http://%s:%s", self.host, self.port)
            await self.server.serve()
        finally:
            if self.scheduler.running:
                # A tick in progress finishes first: its database work runs on a thread that
                # cannot be interrupted, and shutting the scheduler down would cancel its task.
                self.scheduler.pause()
                await self._tick_finished()
                self.scheduler.shutdown(wait=False)
            for service in reversed(started):
                try:
                    await service.stop()
                except Exception:
                    log.exception("stopping %s failed", service.name)
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.remove_signal_handler(sig)
            self.engine.dispose()


def run(
    settings: Settings,
    policy: Policy,
    *,
    host: str | None,
    port: int | None,
    forwarded_allow_ips: str | None = None,
) -> None:
    """Run the service until SIGINT or SIGTERM."""
    log_redaction.install()  # the access log stays on, without the tokens
    for name in (
        "bot",
        "schedules",
        "surveys",
        "evalbot",
    ):  # say what the service does, not just errors
        logging.getLogger(name).setLevel(logging.INFO)
    runner = Runner(settings, policy, host=host, port=port, forwarded_allow_ips=forwarded_allow_ips)
    asyncio.run(runner.serve())
