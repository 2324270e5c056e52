"""Admin campaigns: a push to those with a survey to finish, last-minute places, refreshers.

Three kinds, each choosing its audience from a scope:

- ``remind``: everyone in scope whose survey invitation is open (opened, not closed, before the
  message could go out) and unfinished. Scope: ``stage``, ``session`` (ref), ``course`` (title),
  ``agency`` (the booking's delegate's agency), ``date_from``/``date_to`` (the session's local
  date). One message per person: someone with two open surveys is reminded of the one that
  closes first. The message is the ``survey-reminder`` the tick sends, with the survey link.
- ``places``: the free places of one ``session`` (its maximum places less the bookings that hold a
  place: booked, attended, partly attended, no-show), offered to the people of the partner
  agencies who have no booking on it. Scope: ``session`` (required), ``agency``, ``sector``.
- ``refresher``: people whose last attended session of a course ended longer ago than the
  course's refresher interval (``policy.refresher_years``) and who have not booked it again.
  Scope: ``course``, ``agency``, ``sector``. One message lists every course a person is due for.

A campaign is its kind and scope: running the same one again (same kind, same scope) reaches
only the people it has not reached, because every message's idempotency key is
``campaign:<scope_key>:person:<id>``. Each run is recorded as a ``Campaign`` row (who, when,
the scope, the counts) and in the audit log. Messages are queued in the outbox (kind
``campaign``, due at the next opening of the sending window), which applies the rate limits and
withdraws any message to someone who opts out before it goes. Opt-outs and unusable addresses
are counted here and skipped: a person who opted out of email but has a working Telegram chat is
reached there, and the other way round.

The code lives in one module per idea, and every public name is re-exported here:
``schedules.campaign_scope`` (kinds, ``Scope``, the scope key), ``schedules.campaign_audience``
(who each kind chooses), ``schedules.campaign_refreshers`` (who is due to refresh a course),
``schedules.campaign_run`` (how each person is reached, ``preview`` and ``run``) and
``schedules.campaign_results`` (delivery and responses).
"""

from __future__ import annotations

from schedules.campaign_audience import HOLDING as HOLDING
from schedules.campaign_audience import Audience as Audience
from schedules.campaign_audience import Recipient as Recipient
from schedules.campaign_audience import people_by_id as people_by_id
from schedules.campaign_refreshers import DueRefresher as DueRefresher
from schedules.campaign_refreshers import add_years as add_years
from schedules.campaign_refreshers import due_refreshers as due_refreshers
from schedules.campaign_refreshers import refresher_context as refresher_context
from schedules.campaign_results import RESPONSE_DAYS as RESPONSE_DAYS
from schedules.campaign_results import UNSENT_OR_CLAIMED as UNSENT_OR_CLAIMED
from schedules.campaign_results import CampaignResult as CampaignResult
from schedules.campaign_results import results as results
from schedules.campaign_run import CAMPAIGN_CHANNELS as CAMPAIGN_CHANNELS
from schedules.campaign_run import DEFAULT_ZONE as DEFAULT_ZONE
from schedules.campaign_run import FIRST_NAMES as FIRST_NAMES
from schedules.campaign_run import LABELS as LABELS
from schedules.campaign_run import TEMPLATES as TEMPLATES
from schedules.campaign_run import CampaignPreview as CampaignPreview
from schedules.campaign_run import describe as describe
from schedules.campaign_run import describe_counts as describe_counts
from schedules.campaign_run import preview as preview
from schedules.campaign_run import reach as reach
from schedules.campaign_run import run as run
from schedules.campaign_scope import KINDS as KINDS
from schedules.campaign_scope import CampaignError as CampaignError
from schedules.campaign_scope import CampaignKind as CampaignKind
from schedules.campaign_scope import Scope as Scope
from schedules.campaign_scope import UnknownScope as UnknownScope
from schedules.campaign_scope import message_key as message_key
from schedules.campaign_scope import scope_key as scope_key

__all__ = [
    "KINDS",
    "CampaignError",
    "CampaignPreview",
    "CampaignResult",
    "DueRefresher",
    "Scope",
    "add_years",
    "describe",
    "due_refreshers",
    "preview",
    "reach",
    "results",
    "run",
    "scope_key",
]
