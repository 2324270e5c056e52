"""The ``evalbot`` command line (Typer). Each area registers its commands from its own module."""

from __future__ import annotations

import logging

import typer

from bot import log_redaction
from bot.cli import (
    admin,
    attendance,
    campaigns,
    delivery,
    demo,
    forms,
    imports,
    people,
    policy,
    reports,
    service,
    staff,
    templates,
    waitlist,
)
from bot.cli.common import EvalbotGroup

app = typer.Typer(
    name="evalbot",
    help=(
        "Evalbot runs the evaluation and attendance side of safeguarding training: it imports "
        "bookings, sends the pre-course, end-of-course and impact surveys, applies the "
        "cancellation policy and produces the quarterly report."
    ),
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    cls=EvalbotGroup,
)

for module in (
    admin,
    imports,
    forms,
    delivery,
    service,
    attendance,
    campaigns,
    reports,
    people,
    templates,
    staff,
    policy,
    demo,
):
    module.register(app)
waitlist.register(app)


def main() -> None:
    log_redaction.install()
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    app()
