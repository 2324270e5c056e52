"""``evalbot demo [--out DIR]``: a quarter played on a simulated clock, to see Evalbot work."""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

import typer

from bot.cli.common import fail


def demo(
    out: Path | None = typer.Option(
        None,
        "--out",
        help="A new (or empty) folder for the demo's database, mail folder and report; "
        "default: a new temporary folder.",
    ),
) -> None:
    """Play the sample export through a quarter in a scratch database: invitations, reminders,
    answers, a late cancellation and its replacement, a register with a no-show, a campaign,
    impact surveys and the quarterly report. Your own database is never touched."""
    from bot.demo import DemoError, play, steps

    folder = out if out is not None else Path(tempfile.mkdtemp(prefix="evalbot-demo-"))
    started = time.perf_counter()
    try:
        with typer.progressbar(length=steps(), label="Playing the quarter") as bar:
            result = asyncio.run(play(folder, progress=bar.update))
    except DemoError as exc:
        fail(f"--out: {exc}")
    took = time.perf_counter() - started
    for line in result.lines():
        typer.echo(line)
    typer.echo(f"Done in {took:.1f} s. Open the report in a browser, and the .eml files in a mail")
    typer.echo("program or a text editor, to see what each person was sent.")


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
