"""Every route of the web app, fuzzed: whatever a browser, a scanner or an attacker sends, the
answer is a page or a refusal, never a server error.

Hypothesis picks a route and fills it: the path's token is a real personal link of that kind
or any text (NUL, other control characters, long and non-ASCII strings); the form carries the
route's own fields (with the page's real CSRF value or not) and stray ones; the query string
is random. The same run goes against SQLite and PostgreSQL, which refuses a NUL in text.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.settings import Settings, load_settings
from bot.web.app import create_app
from schedules.register_links import register_link
from surveys import tokens
from surveys.models import (
    BookingStatus,
    InvitationStatus,
    LinkPurpose,
    Stage,
    SurveyInvitation,
)
from tests.conftest import World, utc

NOW = utc("2026-03-10 10:00")
PURPOSE_BY_PREFIX = {
    "s": LinkPurpose.SURVEY,
    "cancel": LinkPurpose.CANCEL,
    "nominate": LinkPurpose.NOMINATE,
    "reason": LinkPurpose.REASON,
    "certificate": LinkPurpose.CERTIFICATE,
    "unsubscribe": LinkPurpose.UNSUBSCRIBE,
    "register": LinkPurpose.REGISTER,
    "offer": LinkPurpose.OFFER,
}
HOSTILE_TEXT = st.one_of(
    st.text(max_size=40),
    st.text(max_size=20).map(lambda text: f"{text}\x00{text}"),
    st.text(max_size=20).map(lambda text: f"\x00{text}\x1b"),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=300),
    st.sampled_from(
        ["\x00", "a\x00b", "\u202e\ufeff", "%00", "../../etc/passwd", "' OR 1=1 --", "x" * 5000]
    ),
)


@dataclass(frozen=True)
class Target:
    path: str  # the route's template, e.g. /cancel/{token}
    method: str
    form_fields: tuple[str, ...]


def routes(app: FastAPI) -> list[Target]:
    found: list[Target] = []

    def walk(entries: list[Any]) -> Iterator[Any]:
        for entry in entries:
            inner = getattr(entry, "original_router", None)
            yield from walk(inner.routes) if inner is not None else [entry]

    for route in walk(list(app.routes)):
        if not isinstance(route, APIRoute):
            continue
        fields = tuple(param.name for param in route.dependant.body_params)
        for method in sorted(route.methods - {"HEAD"}):
            found.append(Target(route.path, method, fields))
    return found


def personal_links(session: Session, settings: Settings) -> dict[LinkPurpose, list[str]]:
    """One real link of every kind, about the personas' bookings."""
    people = World(session).standard()
    alice, chloe = people["alice_booking"], people["chloe_booking"]
    chloe.status = BookingStatus.NO_SHOW
    invitation = SurveyInvitation(
        booking_id=alice.id,
        person_id=alice.delegate_id,
        stage=Stage.PRE,
        opens_at=NOW - timedelta(days=1),
        closes_at=NOW + timedelta(days=5),
        status=InvitationStatus.OPEN,
    )
    session.add_all([chloe, invitation])
    session.flush()

    def issue(purpose: LinkPurpose, subject: str, **ids: Any) -> str:
        return tokens.issue(session, settings.secret, purpose, subject=subject, **ids)

    links = {
        LinkPurpose.SURVEY: [
            issue(
                LinkPurpose.SURVEY,
                f"invitation:{invitation.id}",
                invitation_id=invitation.id,
                person_id=alice.delegate_id,
            )
        ],
        LinkPurpose.UNSUBSCRIBE: [
            issue(
                LinkPurpose.UNSUBSCRIBE, f"person:{alice.delegate_id}", person_id=alice.delegate_id
            )
        ],
    }
    for purpose in (
        LinkPurpose.CANCEL,
        LinkPurpose.NOMINATE,
        LinkPurpose.REASON,
        LinkPurpose.CERTIFICATE,
    ):
        links[purpose] = [
            issue(purpose, f"booking:{b.id}", booking_id=b.id, person_id=b.delegate_id)
            for b in (alice, chloe)
        ]
    course_session = people["session"]
    links[LinkPurpose.REGISTER] = [
        tokens.make_token(
            settings.secret,
            LinkPurpose.REGISTER,
            register_link(session, settings.secret, course_session)[1],
        )
    ]
    session.commit()
    return links


def fuzz_every_route(engine: Engine, settings: Settings, examples: int) -> None:
    with Session(engine, expire_on_commit=False) as session:
        links = personal_links(session, settings)
    app = create_app(settings, engine)
    # Two minutes pass between requests, so the guessed-link budget of one client (a minute's
    # worth) never shuts the fuzzer out of the pages behind real links.
    moment = [NOW]
    app.state.clock = lambda: moment[0]
    targets = routes(app)
    assert len(targets) >= 12, targets  # every router is mounted
    personal = [t for t in targets if "{token}" in t.path]
    forms = [t for t in personal if t.method == "POST" and t.form_fields]
    # Most requests go to the pages behind personal links, where people's input is stored, and
    # a third are a form sent whole through a real link with the page's own CSRF value.
    chosen = st.one_of(st.sampled_from(personal), st.sampled_from(forms), st.sampled_from(targets))
    errors: list[str] = []

    with TestClient(app, raise_server_exceptions=False) as client:

        @settings_for(examples)
        @given(data=st.data())
        def one_request(data: st.DataObject) -> None:
            moment[0] += timedelta(minutes=2)
            target = data.draw(chosen, label="route")
            path = target.path
            for name in re.findall(r"{(\w+)}", path):
                prefix = path.strip("/").split("/")[0]
                real = links.get(PURPOSE_BY_PREFIX.get(prefix, LinkPurpose.TELEGRAM), [])
                value = data.draw(
                    st.one_of(
                        st.sampled_from(real),
                        st.sampled_from(real),
                        st.sampled_from(real),
                        HOSTILE_TEXT,
                    )
                    if real
                    else HOSTILE_TEXT,
                    label=name,
                )
                path = path.replace("{" + name + "}", quote(value, safe="") or "x")
            query = data.draw(
                st.dictionaries(st.sampled_from(["q", "a", "page", "x"]), HOSTILE_TEXT, max_size=3),
                label="query",
            )
            if target.method == "GET":
                response = client.get(path, params=query)
            else:
                whole = target in forms and data.draw(st.booleans(), label="whole form")
                fields = dict.fromkeys(target.form_fields, HOSTILE_TEXT)
                own = (
                    st.fixed_dictionaries(fields)
                    if whole
                    else st.fixed_dictionaries({}, optional=fields)
                )
                stray = st.dictionaries(
                    st.sampled_from(["q", "action", "answer", "extra"]), HOSTILE_TEXT, max_size=3
                )
                form = {**data.draw(stray, label="stray"), **data.draw(own, label="form")}
                real_csrf = whole or data.draw(st.booleans(), label="real csrf")
                if "csrf" in target.form_fields and real_csrf:
                    page = client.get(path)
                    found = re.search(r'name="csrf" value="([^"]*)"', page.text)
                    if found:
                        form["csrf"] = found.group(1)
                if target.path.startswith("/telegram/"):
                    response = client.post(path, content=str(form).encode())
                else:
                    response = client.request(target.method, path, params=query, data=form)
            if response.status_code >= 500:
                errors.append(f"{target.method} {path} -> {response.status_code}")
            assert response.status_code < 500, errors[-1]

        one_request()


def settings_for(examples: int) -> Any:
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        database=None,
    )


def test_no_route_gives_a_server_error_on_sqlite(engine: Engine, settings: Settings) -> None:
    fuzz_every_route(engine, settings, examples=400)


def test_no_route_gives_a_server_error_on_postgresql(
    postgres_url: str, postgres_engine: Engine, tmp_path: Path
) -> None:
    pg_settings = load_settings(database_url=postgres_url, mail_dir=tmp_path / "mail")
    fuzz_every_route(postgres_engine, pg_settings, examples=400)
