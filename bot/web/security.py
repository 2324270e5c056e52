"""Protection for the personal-link pages: form tokens, headers, and slowing down guessed links.

- A form token is an HMAC of the page's scope (``"survey:42"``) under the secret key, carried in a
  hidden field: a POST without the right one is refused, so no other site can submit answers on
  a person's behalf. It needs no cookie and no stored state.
- Personal pages are never cached and send a Referer only to this site, so the token in their
  URL does not leak to another one.
- ``BadTokenLimiter`` throttles what is guessed, not who guesses: a valid link always works,
  whoever asks; unknown or expired tokens are counted per client address, and past the budget
  (``BAD_TOKENS_PER_MINUTE``) that address gets 429 for each further unknown token until the
  minute has passed. An office behind one NAT address keeps working while someone in it
  mistypes links; the tokens carry 192 bits, so the budget slows noise, not a real attack.
- The client's address is the connection's, unless it comes from a proxy named in
  ``EVALBOT_FORWARDED_ALLOW_IPS`` (or ``--forwarded-allow-ips``): only then is its
  ``X-Forwarded-For`` believed (by uvicorn's proxy headers handling). Nothing is trusted by
  default, so a client cannot choose the address it is counted under.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from collections import deque
from datetime import datetime, timedelta
from typing import Any
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
    return bool(given) and hmac.compare_digest(
        form_token(secret, scope).encode(), (given or "").encode()
    )


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


BAD_TOKENS_PER_MINUTE = 30


def proxy_options(forwarded_allow_ips: str) -> dict[str, Any]:
    """uvicorn's settings for ``forwarded_allow_ips``: X-Forwarded-For believed only from the
    proxies named (addresses, networks, or ``*``), and from none when it is empty."""
    trusted = [part.strip() for part in forwarded_allow_ips.split(",") if part.strip()]
    if not trusted:
        return {"proxy_headers": False, "forwarded_allow_ips": []}
    return {"proxy_headers": True, "forwarded_allow_ips": trusted}


def client_address(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


class BadTokenLimiter:
    """At most ``limit`` bad tokens a ``window`` per address; in memory, per process."""

    def __init__(
        self,
        limit: int = BAD_TOKENS_PER_MINUTE,
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

    def unknown(self, address: str, now: datetime) -> int:
        """An unknown token from ``address``: 0 while within the budget (it is counted), else
        the seconds until it may try another."""
        wait = self.retry_after(address, now)
        if not wait:
            self.record(address, now)
        return wait

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
