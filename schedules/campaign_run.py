"""Previewing and running a campaign: how each person is reached, and queueing the messages.

``preview`` writes nothing; ``run`` queues the messages in the outbox, records the ``Campaign``
row and the audit entry.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from schedules.calendar import next_send_time
from schedules.campaign_audience import (
    Audience,
    Recipient,
    _check_names,
    _places,
    _refresher,
    _remind,
)
from schedules.campaign_scope import (
    KINDS,
    CampaignError,
    CampaignKind,
    Scope,
    message_key,
    scope_key,
)
from schedules.planning import FirstQuestions, link_fields
from schedules.policy import Policy, default_policy
from surveys import audit, outbox, tokens
from surveys.models import (
    Campaign,
    Channel,
    Deliverability,
    LinkPurpose,
    MessageKind,
    OutboxMessage,
    Person,
)

TEMPLATES: dict[str, str] = {
    "remind": "survey-reminder",
    "places": "campaign-places",
    "refresher": "refresher-due",
}
LABELS = {"remind": "Reminder", "places": "Last-minute places", "refresher": "Refresher"}
FIRST_NAMES = 5


DEFAULT_ZONE = ZoneInfo("Europe/London")
# Campaign messages go by email or Telegram; text messages carry only what the policy allows.
CAMPAIGN_CHANNELS = (Channel.EMAIL, Channel.TELEGRAM)


# Reaching people ------------------------------------------------------------------------------


def reach(person: Person) -> tuple[Channel | None, str | None]:
    """The channel a campaign message to ``person`` goes by, or None and why not.

    The preferred channel first, then the other; a channel counts when it works and the person
    has not opted out of it. The reason is ``"opted out"`` when a working channel was refused.
    """
    email_works = person.email_status == Deliverability.OK
    telegram_works = (
        person.telegram_chat_id is not None and person.telegram_status == Deliverability.OK
    )
    usable = {
        Channel.EMAIL: email_works and not person.email_opt_out,
        Channel.TELEGRAM: telegram_works and not person.telegram_opt_out,
    }
    preferred = outbox.choose_channel(person)
    for channel in (preferred, Channel.TELEGRAM if preferred is Channel.EMAIL else Channel.EMAIL):
        if usable[channel]:
            return channel, None
    refused = (email_works and person.email_opt_out) or (telegram_works and person.telegram_opt_out)
    return None, "opted out" if refused else "unreachable"


@dataclass(frozen=True)
class CampaignPreview:
    """What a campaign would do now: nothing is written to find it out."""

    kind: str
    scope: dict[str, str]
    scope_key: str
    channels: dict[str, int]  # people to message, by channel
    opted_out: int
    unreachable: int
    already_messaged: int  # reached by an earlier run of the same campaign
    names: list[str]  # the first few to be messaged
    send_at: datetime
    free_places: int | None = None

    @property
    def to_send(self) -> int:
        return sum(self.channels.values())

    def __str__(self) -> str:
        return describe_counts(
            self.kind,
            self.scope,
            {
                "queued": self.to_send,
                **self.channels,
                "opted_out": self.opted_out,
                "unreachable": self.unreachable,
                "already_messaged": self.already_messaged,
                "free_places": self.free_places,
            },
            names=self.names,
            verb="to message",
        )


def describe_counts(
    kind: str,
    scope: Mapping[str, Any],
    counts: Mapping[str, Any],
    *,
    names: list[str] | None = None,
    verb: str = "queued",
) -> str:
    """A campaign's preview or result in one or two sentences."""
    scope_text = ", ".join(f"{name} {value}" for name, value in scope.items()) or "everyone"
    channels = ", ".join(
        f"{counts.get(c.value, 0)} by {c.value}" for c in Channel if counts.get(c.value)
    )
    parts = [f"{LABELS.get(kind, kind)} campaign ({scope_text}): {counts.get('queued', 0)} {verb}"]
    if channels:
        parts[0] += f" ({channels})"
    for key, label in (
        ("opted_out", "opted out"),
        ("unreachable", "with no usable address"),
        ("already_messaged", "already messaged by this campaign"),
    ):
        if counts.get(key):
            parts.append(f"{counts[key]} {label}")
    if counts.get("free_places") is not None:
        parts.append(f"{counts['free_places']} free places")
    text = "; ".join(parts) + "."
    if names:
        more = counts.get("queued", 0) - len(names)
        text += " First: " + ", ".join(names) + (f" and {more} more." if more > 0 else ".")
    return text


def describe(campaign: Campaign) -> str:
    """A recorded campaign in words (for Telegram and the CLI)."""
    return describe_counts(campaign.kind, campaign.scope, campaign.counts)


@dataclass
class _Plan:
    kind: CampaignKind
    scope: Scope
    key: str
    send_at: datetime
    audience: Audience
    to_send: list[tuple[Recipient, Channel]] = field(default_factory=list)
    opted_out: int = 0
    unreachable: int = 0
    already: int = 0


def _plan(
    session: Session,
    kind: str,
    scope: Mapping[str, Any] | Scope,
    *,
    now: datetime,
    policy: Policy,
    zone: ZoneInfo,
    contact: str | None,
    definitions_dir: Path | None,
    links: bool,
    telegram: bool,
) -> _Plan:
    parsed = scope if isinstance(scope, Scope) else Scope.parse(kind, scope)
    if kind not in KINDS:
        raise CampaignError(f"unknown campaign {kind!r}: use one of {', '.join(KINDS)}")
    _check_names(session, parsed)
    send_at = next_send_time(now, policy, zone)
    if kind == "remind":
        audience = _remind(
            session,
            parsed,
            send_at=send_at,
            zone=zone,
            questions=FirstQuestions(definitions_dir),
            telegram=telegram,
        )
    elif kind == "places":
        audience = _places(
            session, parsed, now=now, contact=contact, links=links, telegram=telegram
        )
    else:
        audience = _refresher(
            session,
            parsed,
            now=now,
            policy=policy,
            zone=zone,
            contact=contact,
            links=links,
            telegram=telegram,
        )
    key = scope_key(kind, parsed)
    plan = _Plan(kind, parsed, key, send_at, audience)
    sent_before = _existing_keys(
        session, [message_key(key, r.person.id or 0) for r in audience.recipients]
    )
    for recipient in audience.recipients:
        if message_key(key, recipient.person.id or 0) in sent_before:
            plan.already += 1
            continue
        channel, reason = reach(recipient.person)
        if channel is None:
            if reason == "opted out":
                plan.opted_out += 1
            else:
                plan.unreachable += 1
            continue
        plan.to_send.append((recipient, channel))
    return plan


def _existing_keys(session: Session, keys: list[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        found.update(
            session.exec(
                select(col(OutboxMessage.idempotency_key)).where(
                    col(OutboxMessage.idempotency_key).in_(chunk)
                )
            ).all()
        )
    return found


def _counts(plan: _Plan) -> dict[str, Any]:
    channels = {c.value: 0 for c in CAMPAIGN_CHANNELS}
    for _, channel in plan.to_send:
        channels[channel.value] += 1
    counts: dict[str, Any] = {
        "audience": len(plan.audience.recipients),
        "queued": len(plan.to_send),
        **channels,
        "opted_out": plan.opted_out,
        "unreachable": plan.unreachable,
        "already_messaged": plan.already,
    }
    if plan.audience.free_places is not None:
        counts["free_places"] = plan.audience.free_places
    return counts


def preview(
    session: Session,
    kind: str,
    scope: Mapping[str, Any] | Scope,
    *,
    now: datetime,
    policy: Policy | None = None,
    zone: ZoneInfo | None = None,
    contact: str | None = None,
    definitions_dir: Path | None = None,
    first: int = FIRST_NAMES,
    telegram: bool = True,
) -> CampaignPreview:
    """Who a campaign would message now, by channel, and who it would skip; writes nothing.

    ``telegram`` says whether Evalbot has a Telegram bot, as for ``schedules.planning``: without
    one, messages carry no link to connect Telegram.
    """
    plan = _plan(
        session,
        kind,
        scope,
        now=now,
        policy=policy or default_policy(),
        zone=zone or DEFAULT_ZONE,
        contact=contact,
        definitions_dir=definitions_dir,
        links=False,
        telegram=telegram,
    )
    counts = _counts(plan)
    return CampaignPreview(
        kind=plan.kind,
        scope=plan.scope.as_dict(),
        scope_key=plan.key,
        channels={c.value: counts[c.value] for c in CAMPAIGN_CHANNELS},
        opted_out=plan.opted_out,
        unreachable=plan.unreachable,
        already_messaged=plan.already,
        names=[recipient.person.name for recipient, _ in plan.to_send[:first]],
        send_at=plan.send_at,
        free_places=plan.audience.free_places,
    )


def run(
    session: Session,
    kind: str,
    scope: Mapping[str, Any] | Scope,
    *,
    now: datetime,
    actor: str,
    policy: Policy | None = None,
    zone: ZoneInfo | None = None,
    secret: bytes | None = None,
    contact: str | None = None,
    definitions_dir: Path | None = None,
    progress: Callable[[int], None] | None = None,
    telegram: bool = True,
) -> Campaign:
    """Queue the campaign's messages and record it; the caller commits.

    ``secret`` records the hashes of the personal links the messages carry (survey links are
    usually recorded already, when the invitation was queued). ``progress`` is called with 1
    after each message is queued. ``telegram``: whether there is a Telegram bot to link to.
    """
    plan = _plan(
        session,
        kind,
        scope,
        now=now,
        policy=policy or default_policy(),
        zone=zone or DEFAULT_ZONE,
        contact=contact,
        definitions_dir=definitions_dir,
        links=secret is not None,
        telegram=telegram,
    )
    campaign = Campaign(
        kind=plan.kind,
        scope=plan.scope.as_dict(),
        scope_key=plan.key,
        created_by=actor,
        created_at=now,
        counts=_counts(plan),
    )
    session.add(campaign)
    session.flush()
    template = TEMPLATES[plan.kind]
    for recipient, channel in plan.to_send:
        person = recipient.person
        assert person.id is not None
        if secret is not None:
            _issue_links(session, secret, recipient)
        outbox.enqueue(
            session,
            key=message_key(plan.key, person.id),
            person=person,
            template=template,
            context=recipient.context,
            due_at=plan.send_at,
            kind=MessageKind.CAMPAIGN,
            channel=channel,
            booking_id=recipient.booking.id if recipient.booking else None,
            invitation_id=recipient.invitation.id if recipient.invitation else None,
            campaign_id=campaign.id,
        )
        if progress is not None:
            progress(1)
    audit.record(
        session,
        at=now,
        actor=actor,
        action="campaign.run",
        entity="campaign",
        entity_id=campaign.id,
        kind=plan.kind,
        scope=campaign.scope,
        counts=campaign.counts,
        send_at=plan.send_at.isoformat(),
    )
    session.flush()
    return campaign


def _issue_links(session: Session, secret: bytes, recipient: Recipient) -> None:
    for purpose_text, subject in recipient.context.get("links", {}).values():
        purpose = LinkPurpose(purpose_text)
        if recipient.booking is not None and recipient.starts_at is not None:
            fields = link_fields(
                purpose,
                person=recipient.person,
                booking=recipient.booking,
                invitation=recipient.invitation,
                starts_at=recipient.starts_at,
            )
        else:
            fields = {"person_id": recipient.person.id}
        tokens.issue(session, secret, purpose, subject=subject, **fields)
