"""A fake GOV.UK Notify API on loopback, reached by the real ``notifications-python-client``.

It checks what Notify checks and answers as Notify documents
(https://docs.notifications.service.gov.uk/rest-api.html):

- the ``Authorization: Bearer`` JWT: HS256, signed with the key's secret, ``iss`` the service id,
  ``iat`` within 30 seconds; otherwise ``403 AuthError`` (``Invalid token: ...``);
- ``POST /v2/notifications/email`` and ``/sms``: the template exists and is of that kind, every
  ``((placeholder))`` it holds is in ``personalisation``, the address or UK mobile number is valid,
  a text is at most 918 characters; otherwise ``400 BadRequestError`` / ``ValidationError``;
- 3,000 requests a minute per key (``429 RateLimitError``) and a daily limit per kind
  (``429 TooManyRequestsError``);
- a ``201`` with a new notification id on success.

``fail_next`` scripts a reply (a 500, a 429...) for the next requests.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import jwt

from tests.loopback import JsonHandler, LoopbackServer

SERVICE_ID = "26785a09-ab16-4eb0-8407-a37497a57506"
SECRET = "3d844edf-8d35-48ac-975b-e847b4f122b0"
API_KEY = f"evalbot_live-{SERVICE_ID}-{SECRET}"
EMAIL_TEMPLATE = "f33517ff-2a88-4f6e-b855-c550268ce08a"
SMS_TEMPLATE = "0f4b7d58-4f3c-4d4e-9c1c-7b8c0a4e2f11"
GSM_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass
class Notification:
    id: str
    kind: str  # "email" or "sms"
    to: str
    template_id: str
    personalisation: dict[str, Any]
    reference: str | None
    unsubscribe_url: str | None = None


@dataclass
class FakeNotifyState:
    templates: dict[str, tuple[str, list[str]]] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)  # service id -> secret
    sent: list[Notification] = field(default_factory=list)
    scripted: list[tuple[int, str, str]] = field(default_factory=list)
    refusals: list[tuple[int, str]] = field(default_factory=list)  # every non-2xx answered
    per_minute: int = 3000
    per_day: dict[str, int] = field(default_factory=dict)  # kind -> limit
    window: list[float] = field(default_factory=list)


class FakeNotify:
    def __init__(self) -> None:
        self.state = FakeNotifyState(
            templates={
                EMAIL_TEMPLATE: ("email", ["subject", "body"]),
                SMS_TEMPLATE: ("sms", ["body"]),
            },
            keys={SERVICE_ID: SECRET},
        )
        self._lock = threading.Lock()
        fake = self

        class Handler(JsonHandler):
            def do_POST(self) -> None:
                authorization = self.headers.get("Authorization", "")
                self.send_json(*fake._answer(self.path, authorization, self.read_body()))

        self._server = LoopbackServer(Handler)
        self.port, self.url = self._server.port, self._server.url

    def __enter__(self) -> FakeNotify:
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop()

    @property
    def sent(self) -> list[Notification]:
        return self.state.sent

    @property
    def refusals(self) -> list[tuple[int, str]]:
        return self.state.refusals

    def fail_next(self, status: int, error: str, message: str, times: int = 1) -> None:
        with self._lock:
            self.state.scripted.extend([(status, error, message)] * times)

    # --- answering ------------------------------------------------------------------------

    def _answer(self, path: str, authorization: str, raw: bytes) -> tuple[int, dict[str, Any]]:
        with self._lock:
            status, body = self._decide(path, authorization, raw)
            if status >= 300:
                first = body["errors"][0]
                self.state.refusals.append((status, f"{first['error']}: {first['message']}"))
            return status, body

    def _decide(self, path: str, authorization: str, raw: bytes) -> tuple[int, dict[str, Any]]:
        denied = self._check_token(authorization)
        if denied is not None:
            return _error(403, "AuthError", denied)
        if self.state.scripted:
            status, error, message = self.state.scripted.pop(0)
            return _error(status, error, message)
        now = time.monotonic()
        self.state.window = [t for t in self.state.window if now - t < 60]
        if len(self.state.window) >= self.state.per_minute:
            return _error(
                429,
                "RateLimitError",
                f"Exceeded rate limit for key type LIVE of {self.state.per_minute} requests per "
                "60 seconds",
            )
        self.state.window.append(now)
        kind = {"/v2/notifications/email": "email", "/v2/notifications/sms": "sms"}.get(path)
        if kind is None:
            return _error(404, "BadRequestError", "Not found")
        try:
            payload = json.loads(raw)
        except ValueError:
            return _error(400, "BadRequestError", "Invalid JSON")
        limit = self.state.per_day.get(kind)
        if limit is not None and sum(n.kind == kind for n in self.state.sent) >= limit:
            return _error(429, "TooManyRequestsError", f"Exceeded send limits ({limit}) for today")
        template = self.state.templates.get(str(payload.get("template_id")))
        if template is None or template[0] != kind:
            return _error(400, "BadRequestError", "Template not found")
        personalisation = payload.get("personalisation") or {}
        missing = [name for name in template[1] if name not in personalisation]
        if missing:
            return _error(400, "BadRequestError", f"Missing personalisation: {', '.join(missing)}")
        if kind == "email":
            to = str(payload.get("email_address", ""))
            if not GSM_EMAIL.match(to):
                return _error(400, "ValidationError", "email_address Not a valid email address")
        else:
            to = str(payload.get("phone_number", ""))
            digits = re.sub(r"[\s()+-]", "", to)
            if not re.fullmatch(r"(44|0)7\d{9}", digits):
                return _error(400, "ValidationError", "phone_number Not a UK mobile number")
            text = str(personalisation.get("body", ""))
            if len(text) > 918:
                return _error(
                    400,
                    "BadRequestError",
                    f"Text messages cannot be longer than 918 characters. Your message is "
                    f"{len(text)} characters",
                )
        notification = Notification(
            id=str(uuid.uuid4()),
            kind=kind,
            to=to,
            template_id=str(payload["template_id"]),
            personalisation=dict(personalisation),
            reference=payload.get("reference"),
            unsubscribe_url=payload.get("one_click_unsubscribe_url"),
        )
        self.state.sent.append(notification)
        return 201, {
            "id": notification.id,
            "reference": notification.reference,
            "content": {"body": personalisation.get("body", "")},
            "uri": f"{self.url}/v2/notifications/{notification.id}",
            "template": {"id": notification.template_id, "version": 1, "uri": ""},
        }

    def _check_token(self, authorization: str) -> str | None:
        """None when the JWT is good, else Notify's reason."""
        if not authorization.startswith("Bearer "):
            return "Unauthorized: authentication token must be provided"
        token = authorization.removeprefix("Bearer ")
        try:
            header = jwt.get_unverified_header(token)
            claims = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            return "Invalid token: signature, api token not found"
        if header.get("alg") != "HS256":
            return "Invalid token: algorithm used is not HS256"
        issuer = claims.get("iss")
        if not issuer:
            return "Invalid token: iss field not provided"
        secret = self.state.keys.get(str(issuer))
        if secret is None:
            return "Invalid token: service not found"
        try:
            jwt.decode(token, secret, algorithms=["HS256"])
        except jwt.PyJWTError:
            return "Invalid token: API key not found"
        issued = claims.get("iat")
        if not isinstance(issued, int) or abs(time.time() - issued) > 30:
            return "Error: Your system clock must be accurate to within 30 seconds"
        return None


def _error(status: int, error: str, message: str) -> tuple[int, dict[str, Any]]:
    return status, {"status_code": status, "errors": [{"error": error, "message": message}]}
