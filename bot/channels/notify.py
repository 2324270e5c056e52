"""GOV.UK Notify: email and text messages through ``notifications-python-client``.

Notify sends with templates held in the service; Evalbot's two templates there hold
``((subject))`` and ``((body))`` (text messages only ``((body))``), filled from Evalbot's own
rendered templates, so the wording stays in one place. Each message carries ``reference`` = its
outbox idempotency key, so a repeat is recognisable in Notify, and Notify's notification id comes
back as ``Delivered.provider_id`` and is kept on the outbox row.

The client is synchronous (``requests``): each request runs on a thread pool of
``EVALBOT_NOTIFY_THREADS`` threads, each with a client of its own, so that the event loop never
waits for Notify. Notify's rate limit (3,000 a minute per service) and daily limits are kept by
the dispatcher's rate limiter (``bot.ratelimit``); what Notify answers is classed as
https://docs.notifications.service.gov.uk/python.html#error-codes describes:

- 429 (``RateLimitError``, ``TooManyRequestsError``) and 5xx (and no answer at all): transient;
- 400 naming the address or number: the recipient is refused;
- 400 saying the message is too long: that message is dead with the reason;
- any other 400 (template not found, missing personalisation, a team or trial key) and 403
  (a key that is wrong, revoked or for another service): the channel's fault, so it pauses.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

from notifications_python_client.errors import APIError
from notifications_python_client.notifications import NotificationsAPIClient

from bot.channels.base import ChannelError, Delivered, Outgoing
from bot.settings import Settings

Kind = Literal["email", "sms"]
RECIPIENT_WORDS = ("email_address", "phone_number", "not a uk mobile", "not a valid")
MESSAGE_WORDS = ("too long", "cannot be longer", "exceeds")
RATE_LIMIT_WAIT = 10.0  # seconds: the limiter keeps under Notify's minute; this is a safety net
DAILY_LIMIT_WAIT = 3600.0


def describe(error: APIError) -> str:
    """Notify's answer in one line: ``400 BadRequestError: Template not found``."""
    message = error.message
    if isinstance(message, list):
        parts = [
            f"{item.get('error', 'Error')}: {item.get('message', '')}"
            if isinstance(item, dict)
            else str(item)
            for item in message
        ]
        return f"{error.status_code} " + "; ".join(parts)
    return f"{error.status_code} {message}"


def classify(error: APIError, *, kind: Kind) -> ChannelError:
    status, text = error.status_code, describe(error)
    lowered = text.lower()
    setting = (
        "EVALBOT_NOTIFY_EMAIL_TEMPLATE_ID" if kind == "email" else "EVALBOT_NOTIFY_SMS_TEMPLATE_ID"
    )
    if status == 429:
        daily = "toomanyrequests" in lowered.replace(" ", "") or "for today" in lowered
        wait = DAILY_LIMIT_WAIT if daily else RATE_LIMIT_WAIT
        return ChannelError(f"GOV.UK Notify is limiting us: {text}", retry_after=wait)
    if status >= 500:
        return ChannelError(f"GOV.UK Notify failed: {text}")
    if status == 400 and any(word in lowered for word in RECIPIENT_WORDS):
        return ChannelError(f"GOV.UK Notify refused the recipient: {text}", permanent=True)
    if status == 400 and any(word in lowered for word in MESSAGE_WORDS):
        return ChannelError(f"GOV.UK Notify refused this message: {text}", message_fault=True)
    if status == 403:
        hint = "check EVALBOT_NOTIFY_API_KEY (a live key of this service, not revoked)"
    elif "template" in lowered or "personalisation" in lowered:
        hint = f"check {setting} and that the template holds ((subject)) and ((body))"
    else:
        hint = "check the Notify service's settings and the kind of API key"
    return ChannelError(f"GOV.UK Notify refused to send: {text}; {hint}", channel_fault=True)


class NotifyChannel:
    """Email (``kind="email"``) or text messages (``kind="sms"``) through GOV.UK Notify."""

    def __init__(
        self, settings: Settings, *, kind: Kind, executor: ThreadPoolExecutor | None = None
    ):
        template = (
            settings.notify_email_template_id
            if kind == "email"
            else settings.notify_sms_template_id
        )
        if settings.notify_api_key is None or template is None:
            raise ValueError(f"Notify {kind} needs EVALBOT_NOTIFY_API_KEY and its template id")
        self.name: str = kind
        self.kind: Kind = kind
        self.template_id = template
        self.base_url = settings.notify_base_url
        self._key = settings.notify_api_key.get_secret_value()
        self.concurrency = settings.notify_threads
        self._own_executor = executor is None
        self._executor = executor or ThreadPoolExecutor(
            max_workers=settings.notify_threads, thread_name_prefix=f"notify-{kind}"
        )
        self._local = threading.local()

    def _client(self) -> NotificationsAPIClient:
        client: NotificationsAPIClient | None = getattr(self._local, "client", None)
        if client is None:
            client = NotificationsAPIClient(  # type: ignore[no-untyped-call]
                self._key, base_url=self.base_url, timeout=30
            )
            self._local.client = client
        return client

    async def send(self, message: Outgoing) -> Delivered:
        loop = asyncio.get_running_loop()
        post = functools.partial(self._post, message)
        try:
            answer = await loop.run_in_executor(self._executor, post)
        except APIError as error:
            raise classify(error, kind=self.kind) from error
        notification_id = str(answer.get("id", "")) if isinstance(answer, dict) else ""
        return Delivered(
            server_reply=f"GOV.UK Notify accepted it as notification {notification_id}",
            provider_id=notification_id or None,
        )

    def _post(self, message: Outgoing) -> Any:
        client = self._client()
        reference = message.reference or None
        if self.kind == "sms":
            return client.send_sms_notification(  # type: ignore[no-untyped-call]
                phone_number=message.recipient,
                template_id=self.template_id,
                personalisation={"body": message.text},
                reference=reference,
            )
        unsubscribe = message.headers.get("List-Unsubscribe", "").strip("<>") or None
        return client.send_email_notification(  # type: ignore[no-untyped-call]
            email_address=message.recipient,
            template_id=self.template_id,
            personalisation={"subject": message.subject, "body": message.text},
            reference=reference,
            one_click_unsubscribe_url=unsubscribe,
        )

    async def close(self) -> None:
        if self._own_executor:
            self._executor.shutdown(wait=False)
