"""The ``evalbot`` command line (Typer). Each area registers its commands from its own module.

A command run from the shell imports only the area that defines it: the areas between them
import most of Evalbot (the web service, Telegram, PDF reports, delivery), and loading all of
that before a short command such as ``evalbot import bookings`` cost several times the work.
``app`` (as tests and ``--help`` use it) has every area.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import logging
import os
import sys
import threading
from collections.abc import Sequence
from typing import Any, NoReturn

import typer

from bot import log_redaction
from bot.cli.common import EvalbotGroup
from surveys.db import close_all

# The areas in the order ``--help`` lists their commands, with the commands each registers.
AREAS: dict[str, tuple[str, ...]] = {
    "admin": ("db", "status"),
    "imports": ("import",),
    "forms": ("web", "surveys"),
    "delivery": ("outbox",),
    "service": ("tick", "run"),
    "attendance": ("attendance", "cancel"),
    "campaigns": ("campaign",),
    "reports": ("report", "export"),
    "people": ("person",),
    "templates": ("templates",),
    "staff": ("staff",),
    "policy": ("policy",),
    "demo": ("demo",),
    "waitlist": ("waitlist", "session"),
}
HELP = (
    "Evalbot runs the evaluation and attendance side of safeguarding training: it imports "
    "bookings, sends the pre-course, end-of-course and impact surveys, applies the "
    "cancellation policy and produces the quarterly report."
)


def build(areas: Sequence[str] = tuple(AREAS)) -> typer.Typer:
    """The command line with the commands of ``areas`` (by default all of them)."""
    cli = typer.Typer(
        name="evalbot",
        help=HELP,
        no_args_is_help=True,
        add_completion=False,
        rich_markup_mode=None,
        cls=EvalbotGroup,
    )
    # Always a group of commands, even with one area of a single command ("demo").
    cli.callback()(_group)
    for area in areas:
        importlib.import_module(f"bot.cli.{area}").register(cli)
    return cli


def _group() -> None:
    pass


def area_of(args: Sequence[str]) -> str | None:
    """The area defining the command ``args`` run, or None (help, or a command not known)."""
    if not args or args[0].startswith("-"):
        return None
    return next((area for area, names in AREAS.items() if args[0] in names), None)


def __getattr__(name: str) -> Any:
    if name == "app":
        built = build()
        globals()["app"] = built
        return built
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main() -> None:
    log_redaction.install()
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    area = area_of(sys.argv[1:])
    try:
        build((area,) if area else tuple(AREAS))()
    except SystemExit as done:
        leave(done.code)
    leave(0)


def leave(code: str | int | None) -> NoReturn:
    """End the process as ``sys.exit(code)`` would, without Python's teardown of every module
    loaded: with the database libraries that takes a tenth of a second, more than many
    commands' own work. What that teardown would finish is finished here first: the exit
    functions registered (logging's among them), every database connection, the output.

    While another thread is still running, the interpreter is left to wait for it as usual.
    """
    if any(
        thread.is_alive() and not thread.daemon
        for thread in threading.enumerate()
        if thread is not threading.main_thread()
    ):
        sys.exit(code)
    close_all()
    atexit._run_exitfuncs()
    if isinstance(code, str):
        print(code, file=sys.stderr)
    status = code if isinstance(code, int) else 0 if code is None else 1
    for stream in (sys.stdout, sys.stderr):
        # A reader that has gone (``| head``), or a stream already closed, is not waited for.
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(status)
