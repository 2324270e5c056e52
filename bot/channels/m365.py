"""Access tokens for Microsoft 365's SMTP relay, without a password (``EVALBOT_SMTP_AUTH=oauth2``).

Microsoft 365 turns off password login for SMTP; an app registered in Entra ID instead gets an
access token by the client-credentials grant (MSAL for Python) and the relay takes it by XOAUTH2
(aiosmtplib's ``oauth_token_generator``). ``M365Tokens``:

- asks Entra ID at ``EVALBOT_M365_AUTHORITY``/``EVALBOT_M365_TENANT_ID`` for a token for
  ``https://outlook.office365.com/.default`` with ``EVALBOT_M365_CLIENT_ID`` and
  ``EVALBOT_M365_CLIENT_SECRET``;
- keeps it, and renews it five minutes before it expires by the clock it is given (MSAL's own
  cache, which reads the real clock, is emptied first, so the decision is this module's);
- renews at once when told the relay refused it (``renew``): ``SmtpChannel`` does that once, and
  a second refusal pauses the channel.

MSAL is synchronous (``requests``), so each request runs on a thread, one at a time.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import msal
import requests
import requests.adapters

from bot.settings import Settings

SCOPE = "https://outlook.office365.com/.default"
RENEW_BEFORE = timedelta(minutes=5)


def system_clock() -> datetime:
    """The real time, for a channel built without a clock of the caller's."""
    return datetime.now(UTC)


class TokenError(Exception):
    """No token: ``refused`` when Entra ID said no (a wrong secret, tenant or client), so that
    trying again cannot help until the settings are mended; else a passing fault."""

    def __init__(self, message: str, *, refused: bool):
        super().__init__(message)
        self.refused = refused


class M365Tokens:
    def __init__(self, settings: Settings, *, clock: Callable[[], datetime] = system_clock):
        if not (
            settings.m365_tenant_id and settings.m365_client_id and settings.m365_client_secret
        ):
            raise ValueError("oauth2 needs EVALBOT_M365_TENANT_ID, _CLIENT_ID and _CLIENT_SECRET")
        self.tenant = settings.m365_tenant_id
        self.client_id = settings.m365_client_id
        self._secret = settings.m365_client_secret.get_secret_value()
        self.authority = f"{settings.m365_authority.rstrip('/')}/{self.tenant}"
        self.verify: bool | str = str(settings.m365_ca_file) if settings.m365_ca_file else True
        self.timeout = settings.smtp_timeout
        self.clock = clock
        self.fetched = 0  # tokens obtained, for the log and the tests
        self._app: msal.ConfidentialClientApplication | None = None
        self._token: str | None = None
        self._expires_at = datetime.min.replace(tzinfo=UTC)
        self._lock: asyncio.Lock | None = None

    @property
    def expires_at(self) -> datetime | None:
        return self._expires_at if self._token is not None else None

    async def token(self) -> str:
        """A token valid for at least five more minutes, fetched only when needed."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            now = self.clock()
            if self._token is not None and now < self._expires_at - RENEW_BEFORE:
                return self._token
            return await self._fetch(now)

    def renew(self) -> None:
        """The relay refused the token: the next ``token()`` fetches another."""
        self._token = None

    async def _fetch(self, now: datetime) -> str:
        result = await asyncio.to_thread(self._acquire)
        token = result.get("access_token")
        if not isinstance(token, str) or not token:
            error = result.get("error", "no access token")
            description = str(result.get("error_description", "")).splitlines()
            first = description[0] if description else ""
            raise TokenError(
                f"Entra ID gave no token to app {self.client_id} in tenant {self.tenant}: "
                f"{error}: {first}; check EVALBOT_M365_TENANT_ID, EVALBOT_M365_CLIENT_ID and "
                "EVALBOT_M365_CLIENT_SECRET (a secret expires: see the app's Certificates & "
                "secrets)",
                refused=True,
            )
        self.fetched += 1
        self._token = token
        self._expires_at = now + timedelta(seconds=int(result.get("expires_in", 3600)))
        return token

    def _http_client(self) -> requests.Session:
        """A session that passes ``verify`` and the timeout with every request: set on the
        session alone, ``verify`` loses to ``REQUESTS_CA_BUNDLE`` in the environment."""
        session = requests.Session()
        session.mount("https://", requests.adapters.HTTPAdapter(max_retries=1))
        session.request = functools.partial(  # type: ignore[method-assign]
            session.request, timeout=self.timeout, verify=self.verify
        )
        return session

    def _acquire(self) -> dict[str, Any]:
        try:
            if self._app is None:
                self._app = msal.ConfidentialClientApplication(
                    self.client_id,
                    client_credential=self._secret,
                    authority=self.authority,
                    # The authority is Entra ID's own (or a test's): nothing to discover.
                    instance_discovery=False,
                    http_client=self._http_client(),
                )
            self._app.remove_tokens_for_client()
            result = self._app.acquire_token_for_client(scopes=[SCOPE])
        except ValueError as exc:  # MSAL: the tenant's OpenID configuration was refused
            raise TokenError(
                f"Entra ID does not know tenant {self.tenant!r} at {self.authority}: "
                f"{str(exc)[:300]}; check EVALBOT_M365_TENANT_ID",
                refused=True,
            ) from exc
        except requests.RequestException as exc:
            raise TokenError(
                f"cannot reach Entra ID at {self.authority} for a token: {exc}", refused=False
            ) from exc
        return dict(result or {})
