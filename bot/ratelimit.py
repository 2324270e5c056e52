"""Rate limits per channel: per second, per rolling 24 hours, and per recipient.

A message held back by a limit is simply not claimed (or is handed back) and waits in the outbox:
it is neither lost nor counted as a failed attempt.

- Per second: a token bucket in each dispatcher process. With several processes, give each its
  share (``EVALBOT_EMAIL_PER_SECOND`` divided by the number of workers).
- Per day: counted from the outbox itself (rows sent in the last 24 hours plus rows claimed now),
  so it holds across processes and restarts.
- Per recipient (Telegram's one message a second to a chat): spacing kept in the process.
- GOV.UK Notify (email and text messages alike): one bucket of ``EVALBOT_NOTIFY_PER_SECOND``
  (Notify allows 3,000 a minute per service), which also keeps any 60 seconds two seconds'
  worth below a minute's (``MinuteCapped``), and each kind's daily limit.

Every method takes ``now``; nothing here reads the clock.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bot.settings import Settings
from surveys.models import Channel

DAY = timedelta(hours=24)


class TokenBucket:
    """``rate`` tokens a second, holding at most ``max(1, rate)``; a rate of 0 is no limit."""

    def __init__(self, rate: float):
        self.rate = rate
        self.capacity = max(1.0, rate)
        self.tokens = self.capacity
        self.updated: datetime | None = None

    @property
    def unlimited(self) -> bool:
        return self.rate <= 0

    def _refill(self, now: datetime) -> None:
        if self.updated is not None and now > self.updated:
            elapsed = (now - self.updated).total_seconds()
            self.tokens = min(self.capacity, self.tokens + elapsed * self.rate)
        if self.updated is None or now > self.updated:
            self.updated = now

    def take(self, wanted: int, now: datetime) -> int:
        """Take up to ``wanted`` whole tokens; returns how many were granted."""
        if self.unlimited:
            return wanted
        self._refill(now)
        granted = min(wanted, int(self.tokens))
        self.tokens -= granted
        return granted

    def give_back(self, count: int) -> None:
        if not self.unlimited:
            self.tokens = min(self.capacity, self.tokens + count)

    def next_token_at(self, now: datetime) -> datetime:
        """When at least one whole token is there (``now`` when one is already)."""
        if self.unlimited:
            return now
        self._refill(now)
        missing = 1.0 - self.tokens
        return now if missing <= 0 else now + timedelta(seconds=missing / self.rate)


class MinuteCapped(TokenBucket):
    """A token bucket that also grants at most ``58 * rate`` in any 60 seconds.

    GOV.UK Notify counts its 3,000 requests a minute over the last 60 seconds. A bucket of 50 a
    second alone lets 3,050 through in a minute (a full bucket, then a minute's refill), and
    requests granted apart may reach Notify closer together (a busy process sends a backlog at
    once): with one second held back, a run on a loaded machine reached exactly 3,000 in 60
    seconds, so two are. Sustained, that is 48.3 a second of Notify's 50."""

    WINDOW = timedelta(seconds=60)

    def __init__(self, rate: float):
        super().__init__(rate)
        self.per_window = int(58 * rate)
        self.grants: deque[tuple[datetime, int]] = deque()
        self.in_window = 0

    def _forget(self, now: datetime) -> None:
        while self.grants and self.grants[0][0] <= now - self.WINDOW:
            self.in_window -= self.grants.popleft()[1]

    def take(self, wanted: int, now: datetime) -> int:
        if self.unlimited:
            return wanted
        self._forget(now)
        granted = super().take(min(wanted, max(0, self.per_window - self.in_window)), now)
        if granted:
            self.grants.append((now, granted))
            self.in_window += granted
        return granted

    def give_back(self, count: int) -> None:
        super().give_back(count)
        while count > 0 and self.grants:
            at, granted = self.grants.pop()
            back = min(granted, count)
            count -= back
            self.in_window -= back
            if granted > back:
                self.grants.append((at, granted - back))

    def next_token_at(self, now: datetime) -> datetime:
        at = super().next_token_at(now)
        self._forget(now)
        if self.grants and self.in_window >= self.per_window:
            at = max(at, self.grants[0][0] + self.WINDOW)  # when the oldest grant leaves
        return at


@dataclass
class RecipientSpacing:
    """At most ``rate`` messages a second to any one recipient; a rate of 0 is no limit."""

    rate: float
    last: dict[str, datetime] = field(default_factory=dict)

    def reserve(self, recipient: str, now: datetime) -> datetime | None:
        """None when a message may go to ``recipient`` now (and books it), else when it may."""
        if self.rate <= 0:
            return None
        gap = timedelta(seconds=1 / self.rate)
        previous = self.last.get(recipient)
        if previous is not None and now < previous + gap:
            return previous + gap
        self.last[recipient] = now
        if len(self.last) > 10_000:
            self.last = {k: v for k, v in self.last.items() if now < v + gap}
        return None


@dataclass
class ChannelLimits:
    per_second: TokenBucket
    per_day: int  # 0: no limit
    per_recipient: RecipientSpacing

    def day_budget(self, used: int) -> int | None:
        """Messages still allowed in the rolling 24 hours (None: no limit)."""
        if self.per_day <= 0:
            return None
        return max(0, self.per_day - used)


def channel_limits(settings: Settings) -> dict[Channel, ChannelLimits]:
    """Each channel's limits. Email and text messages by GOV.UK Notify share one bucket: its
    3,000 a minute is per service, whatever the kind; each kind has its own daily limit."""
    limits = {channel: limits_for(settings, channel) for channel in Channel}
    notify = MinuteCapped(settings.notify_per_second)
    for channel, per_day, used in (
        (Channel.EMAIL, settings.notify_email_per_day, settings.notify_email),
        (Channel.SMS, settings.notify_sms_per_day, settings.notify_sms),
    ):
        if used:
            limits[channel] = ChannelLimits(notify, per_day, RecipientSpacing(0))
    return limits


def limits_for(settings: Settings, channel: Channel) -> ChannelLimits:
    if channel == Channel.TELEGRAM:
        return ChannelLimits(
            TokenBucket(settings.telegram_per_second),
            settings.telegram_per_day,
            RecipientSpacing(settings.telegram_per_chat_per_second),
        )
    return ChannelLimits(
        TokenBucket(settings.email_per_second), settings.email_per_day, RecipientSpacing(0)
    )
