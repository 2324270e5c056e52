"""The outbox dispatcher: claims due messages, sends them, and records what happened.

How a row travels:

1. **Claim.** Due rows (pending or failed with ``available_at <= now``, or claimed rows whose
   lease ran out because their worker died) are taken in batches under a lease, so that several
   dispatchers never take the same row (``bot.outbox_store``). Rate limits decide how many may
   be claimed; held-back rows stay pending.
2. **Triage**, in the claiming transaction: a reminder or campaign message to someone who opted
   out of that channel is withdrawn; a message for a channel that cannot reach the person (an
   address marked undeliverable, no linked chat, a channel not configured) switches to the other
   channel where that one works, or is dead with the reason.
3. **Send**, with at most ``concurrency`` messages in flight per channel (the SMTP pool size).
4. **Record**: sent; or failed with the next try after exponential backoff with jitter; or dead
   after ``EVALBOT_OUTBOX_MAX_ATTEMPTS``; or, on a refusal of the recipient, the person's address
   is marked undeliverable and the *same row* switches to the other channel (it keeps its key
   and history) or is dead. Later messages skip that address until an admin clears it
   (``evalbot outbox clear-address``). A fault of the channel itself (a refused sender, login
   or message, or the same refusal for several recipients in a row) pauses the channel instead
   (``bot.pauses``): its rows wait, in every worker, until it resumes.

Delivery is at least once: a dispatcher killed between the relay accepting a message and the
outcome being written sends that message again when the lease runs out, with the same
Message-ID. At most the rows in hand (about two batches) can be repeated that way.

Up to two batches are in hand at once: one being sent while the next is claimed. Outcomes are
written a batch at a time too, so the database costs a small part of what a message does.

Nothing here reads the clock: ``clock`` is given by the caller (the runner and the CLI pass the
real one; tests pass one they move).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import random
import secrets
import socket
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy.engine import Engine

from bot.channels.base import Channel as ChannelProtocol
from bot.channels.base import ChannelError
from bot.logtext import mask_address
from bot.outbox_store import Claimed, ClaimResult, DispatchReport, OutboxStore, Outcome
from bot.rendering import RenderError, render
from bot.settings import Settings
from surveys.models import Channel

__all__ = ["DispatchReport", "Dispatcher", "deliver_due"]

log = logging.getLogger("evalbot.dispatcher")

T = TypeVar("T")
RECORD_DELAY = 0.2  # seconds an outcome may wait to be written with others
UNTIL_IDLE_POLL = 0.2  # seconds between looks at other workers' rows, running until idle


class Dispatcher:
    """Delivers the outbox through ``channels`` (see the module's account)."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        channels: Mapping[Channel, ChannelProtocol],
        *,
        clock: Callable[[], datetime],
        worker_id: str | None = None,
        rng: random.Random | None = None,
        database_thread: bool = True,
    ):
        """``database_thread`` runs the database work on a thread of its own, so that a wait
        for it (a busy SQLite lock, a PostgreSQL round trip) never holds up an event loop
        shared with the web app and Telegram. A worker with a loop of its own (``evalbot
        outbox deliver``) is faster without it: the thread and the loop then hand the GIL
        back and forth for every row fetched."""
        self.settings = settings
        self.channels = dict(channels)
        self.clock = clock
        self.worker_id = worker_id or (
            f"{socket.gethostname()[:60]}:{os.getpid()}:{secrets.token_hex(3)}"
        )
        self.store = OutboxStore(
            engine,
            settings,
            worker_id=self.worker_id,
            channels=set(self.channels),
            rng=rng or random.Random(),
        )
        self.database_thread = database_thread
        self._stopping = False
        self._woken = False
        self._wake: asyncio.Event | None = None
        self._wake_at_results = 1  # senders wake the loop once this many outcomes wait

    # --- running --------------------------------------------------------------------------

    def stop(self) -> None:
        """Finish the messages in hand, then return from ``run`` (call it on SIGTERM)."""
        self._stopping = True
        if self._wake is not None:
            self._wake.set()

    def wake(self) -> None:
        """Look for due messages now rather than at the next poll (after a tick queued some)."""
        self._woken = True
        self.store.forget_drained()
        if self._wake is not None:
            self._wake.set()

    async def run(self, *, until_idle: bool = False) -> DispatchReport:
        """Deliver until ``stop()``; with ``until_idle``, until nothing is due or in flight.

        Messages held back only by a daily limit do not keep an ``until_idle`` run going.
        """
        return await self._pipeline(fixed_now=None, until_idle=until_idle)

    async def run_once(self, now: datetime) -> DispatchReport:
        """Deliver what is due at ``now`` and what the rate limits allow at ``now``; no waiting."""
        return await self._pipeline(fixed_now=now, until_idle=True)

    async def _pipeline(self, *, fixed_now: datetime | None, until_idle: bool) -> DispatchReport:
        clock = self.clock if fixed_now is None else _stopped_clock(fixed_now)
        self.store.forget_drained()  # a new pass looks at everything once
        report = DispatchReport()
        self._wake = asyncio.Event()
        results: list[Outcome] = []
        queues: dict[Channel, asyncio.Queue[Claimed | None]] = {}
        senders: dict[Channel, list[asyncio.Task[None]]] = {}
        for name, channel in self.channels.items():
            queue: asyncio.Queue[Claimed | None] = asyncio.Queue()
            queues[name] = queue
            # The channel's own concurrency (the SMTP pool size) bounds what is in flight.
            senders[name] = [
                asyncio.create_task(self._sender(channel, queue, results, clock))
                for _ in range(max(1, int(getattr(channel, "concurrency", 4))))
            ]
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox-db")
        loop = asyncio.get_running_loop()

        async def db(function: Callable[..., T], *args: Any) -> T:
            if not self.database_thread:
                return function(*args)
            return await loop.run_in_executor(executor, functools.partial(function, *args))

        batch = self.settings.outbox_batch_size
        record_at = max(1, batch // 2)
        lease = timedelta(seconds=self.settings.outbox_lease_seconds)
        in_hand = 0  # claimed and not yet recorded; at most about two batches
        oldest: float | None = None  # when the oldest unrecorded outcome came in
        poll = self.settings.outbox_poll_seconds
        quiet_until = expired_check_at = 0.0
        renewed_at = clock()
        try:
            while True:
                now = clock()
                if fixed_now is None and in_hand and now - renewed_at >= lease / 3:
                    await db(self.store.renew_leases, now)
                    renewed_at = now
                if results and oldest is None:
                    oldest = loop.time()
                # Outcomes are written in batches (a write per message would cost more than
                # sending it), but never held back for long.
                if results and (
                    len(results) >= min(record_at, in_hand)
                    or self._stopping
                    or loop.time() - (oldest or 0) >= RECORD_DELAY
                ):
                    done, results[:] = list(results), []
                    oldest = None
                    await db(self.store.record, done, clock(), report)
                    in_hand -= len(done)
                claim = ClaimResult()
                if self._woken:
                    self._woken, quiet_until = False, 0.0
                if (
                    not self._stopping
                    and in_hand <= batch
                    and (in_hand == 0 or loop.time() >= quiet_until)
                ):
                    # Leases run out only when a worker dies: look for them now and then.
                    expired = fixed_now is not None or loop.time() >= expired_check_at
                    if expired:
                        expired_check_at = loop.time() + lease.total_seconds() / 4
                    claim = await db(self.store.claim, clock(), batch, report, expired)
                    in_hand += len(claim.to_send)
                    for row in claim.to_send:
                        queues[row.channel].put_nowait(row)
                    # Fewer than asked for: the outbox has no more due now, so do not ask
                    # again until what is in hand is done (or a poll interval has passed).
                    quiet_until = loop.time() + poll if claim.claimed < batch else 0.0
                if claim.claimed:
                    continue
                if in_hand == 0:
                    if self._stopping or fixed_now is not None:
                        break
                    if until_idle and not await db(self.store.anything_due, clock(), claim):
                        break
                    # Running until idle, what is left is often another worker's rows in
                    # flight: look again soon, rather than a poll interval later, to see them
                    # sent (or their lease run out).
                    await self._sleep(
                        clock(), claim.wake_at, UNTIL_IDLE_POLL if until_idle else None
                    )
                    continue
                # Wait until there are enough outcomes to write (or room to claim more), or
                # until the oldest outcome or the leases are due for attention.
                self._wake_at_results = max(1, min(record_at, in_hand))
                # Senders that finished while the claim was running woke nobody if they reached
                # the threshold of before: look at what they left before waiting for more.
                if len(results) >= self._wake_at_results:
                    continue
                if results and oldest is None:
                    oldest = loop.time()
                timeout = lease.total_seconds() / 3
                if oldest is not None:
                    timeout = max(0.0, min(timeout, oldest + RECORD_DELAY - loop.time()))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout)
                self._wake.clear()
        finally:
            for name, queue in queues.items():
                for _ in senders[name]:
                    queue.put_nowait(None)
            await asyncio.gather(
                *(t for ts in senders.values() for t in ts), return_exceptions=True
            )
            if results:
                await db(self.store.record, list(results), clock(), report)
            if fixed_now is not None:
                report.held_back += await db(self.store.count_due, fixed_now)
                report.paused += await db(
                    functools.partial(self.store.count_due, fixed_now, paused=True)
                )
            executor.shutdown(wait=True)
            self._wake = None
        return report

    async def _sleep(
        self, now: datetime, wake_at: datetime | None, longest: float | None = None
    ) -> None:
        assert self._wake is not None
        timeout = self.settings.outbox_poll_seconds
        if longest is not None:
            timeout = min(timeout, longest)
        if wake_at is not None:
            timeout = min(timeout, max(0.01, (wake_at - now).total_seconds()))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)
        self._wake.clear()

    async def _sender(
        self,
        channel: ChannelProtocol,
        queue: asyncio.Queue[Claimed | None],
        results: list[Outcome],
        clock: Callable[[], datetime],
    ) -> None:
        while (row := await queue.get()) is not None:
            results.append(await self._send_one(channel, row, clock()))
            if len(results) >= self._wake_at_results and self._wake is not None:
                self._wake.set()

    async def _send_one(self, channel: ChannelProtocol, row: Claimed, now: datetime) -> Outcome:
        if row.channel in self.store.paused:
            # The channel paused since this row was claimed: it waits with the others.
            return Outcome(row, held=f"waiting: the {row.channel} channel is paused")
        try:
            outgoing = render(
                self.settings,
                row,
                channel=row.channel,
                recipient=row.recipient,
                recipient_name=row.recipient_name,
                now=now,
            )
        except RenderError as exc:
            log.error("outbox %s cannot be rendered: %s", row.id, exc)
            return Outcome(row, render_error=str(exc))
        try:
            delivered = await channel.send(outgoing)
            if log.isEnabledFor(logging.INFO):
                log.info(
                    "sent %s to %s (outbox %s)", row.template, mask_address(row.recipient), row.id
                )
            return Outcome(row, outgoing, delivered=delivered)
        except ChannelError as exc:
            if exc.channel_fault:
                # The rows still in this worker's hands wait rather than fail the same way.
                self.store.note_channel_fault(row.channel)
            return Outcome(row, outgoing, error=exc)
        except Exception as exc:  # a bug in a channel must not stop delivery
            log.exception("outbox %s: the %s channel failed unexpectedly", row.id, row.channel)
            return Outcome(row, outgoing, error=ChannelError(f"unexpected error: {exc!r}"))


def _stopped_clock(at: datetime) -> Callable[[], datetime]:
    return lambda: at


async def deliver_due(
    engine: Engine,
    settings: Settings,
    channels: Mapping[Channel, ChannelProtocol],
    *,
    now: datetime,
) -> DispatchReport:
    """One pass at ``now`` (for ``evalbot tick --now`` and tests): send what is due and allowed.

    Meant for a loop of its own (a command, a test), so the database work stays on it."""
    dispatcher = Dispatcher(
        engine, settings, channels, clock=_stopped_clock(now), database_thread=False
    )
    return await dispatcher.run_once(now)
