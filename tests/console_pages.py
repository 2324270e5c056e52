"""Shared by the tests of the console's pages: an app with a coordinator and a viewer, a client
signed in as each (through the emailed link), and delegates answering surveys as on the form."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlmodel import Session, col, select

from surveys import engine as survey_engine
from surveys.models import Booking, Stage, SurveyInvitation
from tests.console_helpers import TestClient, add_staff, sign_in

CARLA = "carla.mendes@partnership.example"  # a coordinator
VIC = "victor.osei@partnership.example"  # a viewer


def add_console_staff(database_url: str) -> None:
    add_staff(database_url, CARLA, name="Carla Mendes")
    add_staff(database_url, VIC, name="Victor Osei", role="viewer")


def signed_in(app: Any, mail_dir: Path, address: str) -> TestClient:
    client = TestClient(app)
    sign_in(client, mail_dir, address)
    return client


Answers = Mapping[str, str | Sequence[str]]


def answer(
    db: Any, booking_ref: str, stage: Stage, values: Answers, now: datetime, *, finish: bool = True
) -> None:
    """The delegate answers a survey: ``values`` by question id; a per-outcome question takes a
    list, one per learning outcome. Questions not named get their first option."""
    with Session(db, expire_on_commit=False) as session:
        invitation = session.exec(
            select(SurveyInvitation)
            .join(Booking, col(Booking.id) == col(SurveyInvitation.booking_id))
            .where(Booking.ref == booking_ref, SurveyInvitation.stage == stage)
        ).one()
        while (view := survey_engine.next_question(session, invitation)) is not None:
            given = values.get(view.item)
            value: str | list[str]
            if isinstance(given, str):
                value = given
            elif given is not None:
                value = str(given[view.outcome_index or 0])
            elif view.kind == "text":
                value = "" if view.optional else "An answer."
            else:
                value = view.options[0][0]
            if view.kind == "multiple" and isinstance(value, str):
                value = [value]
            survey_engine.submit_answer(
                session, invitation, view.key, value, now=now, channel="web"
            )
        if finish:
            survey_engine.finish(session, invitation, now=now)
        session.commit()
