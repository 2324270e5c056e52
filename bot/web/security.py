"""Protection for the personal-link pages: form tokens, headers, and slowing down guessed links.

- A form token is an HMAC of the page's scope (``"survey:42"``) under the secret key, carried in a
  hidden field: a POST without the right one is refused, so no other site can submit answers on
  a person's behalf. It needs no cookie and no stored state.
- Personal pages are never cached and send a Referer only to this site, so the token in their
  URL does not leak to another one.
- ``BadTokenLimiter`` counts unknown or expired tokens per client address; past the limit in a
  minute, that address gets 429 for every personal link (good ones too, so that the answer
  cannot tell a guesser which token was right) until the minute has passed. Behind a reverse
  proxy, run uvicorn with ``--forwarded-allow-ips`` so the client's own address is counted.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from collections import deque
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from fastapi import Request

from bot.settings import Settings

PRIVATE_HEADERS = {
    "Cache-Control": "no-store",
    # Same-origin: the token in the URL never reaches another site, and the browser still sends
    # our own Origin with the form (under "no-referrer" it would send "null").
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
}


def form_token(secret: bytes, scope: str) -> str:
    """The hidden-field token for a form about ``scope`` (for example ``"survey:42"``)."""
    return hmac.new(secret, f"form:{scope}".encode(), hashlib.sha256).hexdigest()[:32]


def form_token_valid(secret: bytes, scope: str, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(form_token(secret, scope), given or "")


def same_origin(request: Request, settings: Settings) -> bool:
    """False when the browser says the form was posted from another site.

    Browsers send ``Origin`` with every POST; tools and old browsers may not, and privacy settings
    may make it ``null``: then the form token alone decides.
    """
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return True
    allowed = {_origin(settings.public_url), _origin(str(request.base_url))}
    return _origin(origin) in allowed


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def client_address(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


class BadTokenLimiter:
    """At most ``limit`` bad tokens a ``window`` per address; in memory, per process."""

    def __init__(
        self,
        limit: int = 10,
        window: timedelta = timedelta(minutes=1),
        max_addresses: int = 10_000,
    ):
        self.limit = limit
        self.window = window
        self.max_addresses = max_addresses
        self._seen: dict[str, deque[datetime]] = {}
        self._lock = threading.Lock()

    def retry_after(self, address: str, now: datetime) -> int:
        """Seconds until ``address`` may try again; 0 when it is not blocked."""
        with self._lock:
            times = self._recent(address, now)
            if len(times) < self.limit:
                return 0
            wait = times[-self.limit] + self.window - now
            return max(1, int(wait.total_seconds() + 0.999))

    def blocked(self, address: str, now: datetime) -> bool:
        return self.retry_after(address, now) > 0

    def record(self, address: str, now: datetime) -> None:
        """Count one bad token from ``address``."""
        with self._lock:
            if address not in self._seen and len(self._seen) >= self.max_addresses:
                self._prune(now)
            self._seen.setdefault(address, deque()).append(now)
            times = self._recent(address, now)
            while len(times) > self.limit:
                times.popleft()

    def _recent(self, address: str, now: datetime) -> deque[datetime]:
        times = self._seen.get(address)
        if times is None:
            return deque()
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._seen[address]
        return times

    def _prune(self, now: datetime) -> None:
        for address in list(self._seen):
            self._recent(address, now)
        # Still full of live addresses: forget the quietest half rather than grow without bound.
        if len(self._seen) >= self.max_addresses:
            by_latest = sorted(self._seen, key=lambda a: self._seen[a][-1])
            for address in by_latest[: len(by_latest) // 2]:
                del self._seen[address]


_create_lock = threading.Lock()


def bad_token_limiter(request: Request) -> BadTokenLimiter:
    """The app's one limiter, shared by every personal-link page (created on first use)."""
    state = request.app.state
    limiter: BadTokenLimiter | None = getattr(state, "bad_token_limiter", None)
    if limiter is None:
        with _create_lock:
            limiter = getattr(state, "bad_token_limiter", None)
            if limiter is None:
                limiter = BadTokenLimiter()
                state.bad_token_limiter = limiter
    return limiter
