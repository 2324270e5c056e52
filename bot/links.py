"""Personal URLs, rendered at send time from the ``links`` of a message's context.

A message's context names its links as ``{"survey": ["survey", "invitation:42"]}``: a purpose and
a subject. The token is recomputed from the secret key (``surveys.tokens``), so no raw token is
ever stored; whoever queued the message has already recorded the token's hash with
``surveys.tokens.issue``.

A ``telegram`` link (subject ``person:<id>:<telegram_link_generation>``) becomes the bot's deep
link ``https://t.me/<bot>?start=<token>``; it is left out while Evalbot has no Telegram bot, so
a template tests ``{% if links.telegram is defined %}``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from bot.settings import Settings
from surveys.models import LinkPurpose
from surveys.tokens import make_token

PATHS: dict[LinkPurpose, str] = {
    LinkPurpose.SURVEY: "/s/",
    LinkPurpose.CANCEL: "/cancel/",
    LinkPurpose.NOMINATE: "/nominate/",
    LinkPurpose.REASON: "/reason/",
    LinkPurpose.CERTIFICATE: "/certificate/",
    LinkPurpose.UNSUBSCRIBE: "/unsubscribe/",
    LinkPurpose.REGISTER: "/register/",
    LinkPurpose.STAFF_SIGN_IN: "/admin/sign-in/",
    LinkPurpose.OFFER: "/offer/",
}


def url_for(settings: Settings, purpose: LinkPurpose, subject: str) -> str:
    token = make_token(settings.secret, purpose, subject)
    if purpose is LinkPurpose.TELEGRAM:
        return f"https://t.me/{telegram_username(settings)}?start={token}"
    return f"{settings.public_url}{PATHS[purpose]}{token}"


# The bot's username as Telegram reported it at start (getMe), when no setting names it.
_learned_username: list[str] = []


def remember_telegram_username(username: str) -> None:
    """Called once the bot knows its own @username, so deep links can name it."""
    _learned_username[:] = [username.lstrip("@")]


def telegram_username(settings: Settings) -> str | None:
    """The bot's @username (without the @) for ``t.me`` deep links, if known."""
    if settings.telegram_bot_username:
        return settings.telegram_bot_username.lstrip("@")
    if settings.telegram_token is not None and _learned_username:
        return _learned_username[0]
    return None


def telegram_subject(person_id: int, generation: int) -> str:
    """The subject of a person's Telegram deep link; using the link bumps the generation."""
    return f"person:{person_id}:{generation}"


def _renderable(settings: Settings, purpose: LinkPurpose) -> bool:
    if purpose is LinkPurpose.TELEGRAM:
        return telegram_username(settings) is not None
    return purpose in PATHS


def render_links(settings: Settings, links: Mapping[str, Sequence[str]]) -> dict[str, str]:
    """``{"survey": ["survey", "invitation:42"]}`` to ``{"survey": "https://.../s/<token>"}``."""
    return {
        name: url_for(settings, LinkPurpose(purpose), subject)
        for name, (purpose, subject) in links.items()
        if _renderable(settings, LinkPurpose(purpose))
    }
