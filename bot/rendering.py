"""Turning an outbox row into a message ready for its channel.

Every message named ``<name>`` has four templates: ``email/<name>-subject.txt``,
``email/<name>-body.txt``, ``email/<name>-body.html`` and ``telegram/<name>.html``; those the
policy lets go by text message (``sms_messages``) have ``sms/<name>.txt`` too. Each is
rendered with the row's own context plus what every message may use:

- ``partnership``, ``public_url``, ``timezone``, ``recipient_name``, ``kind``;
- ``links``: the row's ``{"name": [purpose, subject]}`` turned into personal URLs;
- ``unsubscribe_url``: only on reminders and campaign messages, the kinds a person may opt out
  of. The email base templates (``email/_base.html``, ``email/_base.txt``) show it, or say that
  the message is not subject to opt-out when it is absent.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from datetime import datetime
from email.utils import format_datetime, formataddr, parseaddr
from functools import cache, lru_cache
from typing import Any, Protocol

from jinja2 import Environment, Template, TemplateError, TemplateNotFound
from sqlmodel import Session

from bot import calendar_invite
from bot.channels.base import Attachment, Outgoing
from bot.links import render_links, url_for
from bot.settings import Settings
from bot.sms_text import TooLong, fit
from bot.templating import TEMPLATES, environment
from surveys.models import Channel, LinkPurpose, MessageKind
from surveys.tokens import issue

OPT_OUT_KINDS = frozenset({MessageKind.REMINDER, MessageKind.CAMPAIGN})


class RenderError(Exception):
    """A message's templates are missing or fail; the message names the template."""


class MessageRow(Protocol):
    """What rendering reads of an outbox row (an ``OutboxMessage`` has all of it)."""

    @property
    def id(self) -> int | None: ...
    @property
    def idempotency_key(self) -> str: ...
    @property
    def template(self) -> str: ...
    @property
    def context(self) -> dict[str, Any]: ...
    @property
    def kind(self) -> MessageKind | str: ...
    @property
    def person_id(self) -> int | None: ...
    @property
    def message_id(self) -> str | None: ...


def opt_out_applies(kind: MessageKind | str) -> bool:
    """Reminders and campaign messages may be refused; notices about a booking may not."""
    return MessageKind(kind) in OPT_OUT_KINDS


def unsubscribe_subject(person_id: int) -> str:
    return f"person:{person_id}"


def issue_unsubscribe_link(session: Session, settings: Settings, person_id: int) -> None:
    """Record the hash of a person's unsubscribe link, so the link resolves when followed."""
    issue(
        session,
        settings.secret,
        LinkPurpose.UNSUBSCRIBE,
        subject=unsubscribe_subject(person_id),
        person_id=person_id,
    )


def stable_message_id(settings: Settings, outbox_id: int, key: str) -> str:
    """A Message-ID that is the same every time a row is rendered, so a retry keeps it."""
    digest = hmac.new(settings.secret, f"message-id:{key}".encode(), hashlib.sha256).hexdigest()
    return f"<{outbox_id}.{digest[:20]}@{mail_domain(settings)}>"


def mail_domain(settings: Settings) -> str:
    return _domain(settings.mail_from)


def _date_header(now: datetime) -> str:
    """``now`` as an email's Date header: the same for every message of one second, so it is
    formatted once a second rather than for every message."""
    return _formatted_date(now.replace(microsecond=0))


@lru_cache(maxsize=4)
def _formatted_date(second: datetime) -> str:
    return format_datetime(second)


@cache
def _domain(mail_from: str) -> str:
    return parseaddr(mail_from)[1].rpartition("@")[2] or "localhost"


def template_context(
    settings: Settings, message: MessageRow, *, recipient_name: str, now: datetime
) -> dict[str, Any]:
    """The row's context with what the renderer provides for every message (``sent_at``: the
    moment it is rendered for sending, so a message can say what is true when it arrives)."""
    context: dict[str, Any] = {
        "sent_at": now.isoformat(),
        "partnership": settings.partnership_name,
        "public_url": settings.public_url,
        "timezone": settings.timezone,
        "recipient_name": recipient_name,
        **message.context,
        "kind": MessageKind(message.kind).value,
        "links": render_links(settings, message.context.get("links") or {}),
    }
    if opt_out_applies(message.kind) and message.person_id is not None:
        context["unsubscribe_url"] = url_for(
            settings, LinkPurpose.UNSUBSCRIBE, unsubscribe_subject(message.person_id)
        )
    return context


def render_email(
    settings: Settings,
    message: MessageRow,
    *,
    recipient: str,
    recipient_name: str,
    now: datetime,
) -> Outgoing:
    """The subject, text and HTML of one email, with its headers and stable Message-ID."""
    context = template_context(settings, message, recipient_name=recipient_name, now=now)
    # One context for the three templates: the globals and the row's values are merged once.
    shared = _shared(context)
    subject = " ".join(_render(f"email/{message.template}-subject.txt", shared).split())
    text = _render(f"email/{message.template}-body.txt", shared)
    html = _render(f"email/{message.template}-body.html", shared)
    outbox_id = message.id or 0
    headers = {
        "To": formataddr((recipient_name, recipient), charset="utf-8"),
        "Date": _date_header(now),
    }
    invite = calendar_invite.invitation(
        message.template,
        context,
        mail_from=settings.mail_from,
        recipient=recipient,
        recipient_name=recipient_name,
        now=now,
    )
    if "unsubscribe_url" in context:
        # RFC 8058: a mail client may offer one-click unsubscribe, POSTing to this URL.
        headers["List-Unsubscribe"] = f"<{context['unsubscribe_url']}>"
        headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    return Outgoing(
        outbox_id=outbox_id,
        recipient=recipient,
        subject=subject,
        text=text,
        html=html,
        message_id=message.message_id
        or stable_message_id(settings, outbox_id, message.idempotency_key),
        reference=message.idempotency_key,
        headers=headers,
        attachments=tuple(
            found
            for found in (invite, _certificate(settings, message.template, context))
            if found is not None
        ),
    )


def _certificate(
    settings: Settings, template: str, context: Mapping[str, Any]
) -> Attachment | None:
    """The certificate PDF for the "certificate ready" email (WeasyPrint is loaded only then)."""
    if template != "certificate-ready":
        return None
    from bot.certificate_pdf import certificate_attachment

    return certificate_attachment(
        template, context, partnership=settings.partnership_name, zone=settings.timezone
    )


def render_telegram(
    settings: Settings,
    message: MessageRow,
    *,
    recipient: str,
    recipient_name: str,
    now: datetime,
) -> Outgoing:
    """One Telegram message (HTML parse mode) from ``telegram/<name>.html``."""
    context = template_context(settings, message, recipient_name=recipient_name, now=now)
    body = _render(f"telegram/{message.template}.html", context).strip()
    outbox_id = message.id or 0
    return Outgoing(
        outbox_id=outbox_id,
        recipient=recipient,
        subject="",
        text=body,
        html=body,
        message_id=message.message_id
        or stable_message_id(settings, outbox_id, message.idempotency_key),
        buttons=link_buttons(message.context.get("buttons") or [], context["links"]),
        reference=message.idempotency_key,
    )


# What may be cut to keep a text message within two fragments, in turn and to how short; links
# never are.
SMS_SHORTENABLE = (
    ("course_title", 16),
    ("agency_name", 12),
    ("delegate_name", 12),
    ("recipient_name", 12),
    ("partnership", 16),
)


def render_sms(
    settings: Settings,
    message: MessageRow,
    *,
    recipient: str,
    recipient_name: str,
    now: datetime,
) -> Outgoing:
    """One text message from ``sms/<name>.txt``, made plain and kept within two fragments
    (``bot.sms_text``) with its personal link whole."""
    context = template_context(settings, message, recipient_name=recipient_name, now=now)
    name = f"sms/{message.template}.txt"
    try:
        body = fit(lambda values: _render(name, values), context, SMS_SHORTENABLE)
    except TooLong as exc:
        raise RenderError(f"template {name}: {exc}") from exc
    outbox_id = message.id or 0
    return Outgoing(
        outbox_id=outbox_id,
        recipient=recipient,
        subject="",
        text=body,
        html="",
        message_id=message.message_id
        or stable_message_id(settings, outbox_id, message.idempotency_key),
        reference=message.idempotency_key,
    )


def link_buttons(rows: list[list[list[str]]], links: dict[str, str]) -> list[list[tuple[str, str]]]:
    """A context's ``buttons`` (rows of ``[label, link name]``) as Telegram URL buttons."""
    return [[(label, links[name]) for label, name in row if name in links] for row in rows]


def render(
    settings: Settings,
    message: MessageRow,
    *,
    channel: Channel,
    recipient: str,
    recipient_name: str,
    now: datetime,
) -> Outgoing:
    renderer = {Channel.TELEGRAM: render_telegram, Channel.SMS: render_sms}.get(
        channel, render_email
    )
    return renderer(settings, message, recipient=recipient, recipient_name=recipient_name, now=now)


class _Shared(dict[str, Any]):
    """A template context already merged with the environment's globals (``_shared``), which
    every template of one message renders from without copying it again."""


def _shared(context: Mapping[str, Any]) -> _Shared:
    shared = _Shared(environment().globals)
    shared.update(context)
    return shared


def _render(name: str, context: Mapping[str, Any]) -> str:
    env = environment()
    try:
        template = _template(env, name)
        if not isinstance(context, _Shared):
            return template.render(context)
        # What ``Template.render`` does, without merging the globals into a copy of the context
        # for each template (the templates only read it; ``{% set %}`` writes to its own scope).
        try:
            return env.concat(template.root_render_func(template.new_context(context, shared=True)))
        except Exception:
            env.handle_exception()
    except TemplateNotFound as exc:
        raise RenderError(f"template {name} does not exist in {TEMPLATES}") from exc
    except TemplateError as exc:
        line = getattr(exc, "lineno", None)
        where = f" (line {line})" if line else ""
        problem = exc.message or type(exc).__name__
        source = getattr(exc, "filename", None) or name
        raise RenderError(f"template {source}{where}: {problem}") from exc
    except (ValueError, TypeError, KeyError) as exc:
        raise RenderError(f"template {name}: {type(exc).__name__}: {exc}") from exc


@cache
def _template(env: Environment, name: str) -> Template:
    # Looked up once per environment: the dispatcher renders thousands of messages a minute,
    # and each lookup would otherwise check the file on disk.
    return env.get_template(name)
