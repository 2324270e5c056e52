"""Cancellation under the policy: in time, late with and without a replacement, and refused.

Alice's and Chloé's course starts on Monday 16 March 2026 at 09:30 (GMT). With the default
cut-off of 2 working days, a cancellation is in time until the end of Thursday 12 March.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select
from typer.testing import CliRunner

from bot.channels.registry import build_channels
from bot.cli import app as cli_app
from bot.dispatcher import deliver_due
from bot.links import url_for
from bot.settings import Settings, load_settings
from bot.web.app import create_app
from bot.web.security import form_token
from schedules.attendance import mark
from schedules.cancellation import (
    CancelStatus,
    NominationError,
    cancel_booking,
    cancel_link,
    nominate_replacement,
    record_late_cancellation_charges,
)
from schedules.planning import plan
from schedules.policy import Policy, load_policy
from schedules.tick import tick
from surveys.models import (
    AuditEntry,
    Booking,
    BookingStatus,
    InvitationStatus,
    LinkPurpose,
    OutboxMessage,
    OutboxState,
    Person,
    SurveyInvitation,
)
from tests.conftest import utc

ADMIN = "training@partnership.example"
IN_TIME = utc("2026-03-12 12:00")  # Thursday: before the cut-off
LATE = utc("2026-03-13 10:00")  # Friday: after it
START = utc("2026-03-16 09:30")


# -- Helpers shared with the attendance and certificate tests -------------------------------------


def make_settings(database_url: str, tmp_path: Path, **extra: object) -> Settings:
    values: dict[str, object] = {
        "database_url": database_url,
        "mail_dir": tmp_path / "mail",
        "admin_email": ADMIN,
        "public_url": "http://testserver",
        "partnership_name": "Riverside Safeguarding Children Partnership",
    }
    values.update(extra)
    return load_settings(**values)


@dataclass
class Mail:
    to: str
    subject: str
    text: str
    html: str


class Mailbox:
    """Delivers what is due through the real dispatcher into the mail folder, and reads it."""

    def __init__(self, engine, settings: Settings):
        self.engine = engine
        self.settings = settings
        self.seen: set[Path] = set()

    def deliver(self, now: datetime) -> list[Mail]:
        asyncio.run(deliver_due(self.engine, self.settings, build_channels(self.settings), now=now))
        folder = Path(self.settings.mail_dir)
        new = sorted(set(folder.glob("*.eml")) - self.seen) if folder.exists() else []
        self.seen.update(new)
        return [read_mail(path) for path in new]


def read_mail(path: Path) -> Mail:
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    return Mail(
        to=str(message["To"]),
        subject=str(message["Subject"]),
        text=text.get_content() if text else "",  # type: ignore[union-attr]
        html=html.get_content() if html else "",  # type: ignore[union-attr]
    )


def to(mails: list[Mail], address: str) -> list[Mail]:
    return [mail for mail in mails if address in mail.to]


def link_in(text: str, path: str) -> str:
    """The personal link to ``path`` (like ``/nominate/``) in an email's text."""
    found = re.search(rf"http://testserver{path}[A-Za-z0-9_-]+", text)
    assert found, f"no {path} link in:\n{text}"
    return found.group(0).removeprefix("http://testserver")


def audit(session: Session, action: str) -> list[AuditEntry]:
    session.expire_all()
    return list(session.exec(select(AuditEntry).where(AuditEntry.action == action)).all())


def client_at(settings: Settings, engine, now: datetime) -> TestClient:
    app = create_app(settings, engine)
    app.state.clock = lambda: now
    return TestClient(app)


# -- Fixtures -------------------------------------------------------------------------------------


@pytest.fixture
def charged(database_url: str, tmp_path: Path) -> Settings:
    """A partnership that charges £75 for a full day and £40 for a half day."""
    return make_settings(
        database_url,
        tmp_path,
        policy={"charge_full_day_pence": 7500, "charge_half_day_pence": 4000},
    )


@pytest.fixture
def policy(charged: Settings) -> Policy:
    return load_policy(charged.policy)


@pytest.fixture
def people(world, session, engine, charged, policy):
    people = world.standard()
    plan(
        session,
        now=utc("2026-03-02 09:00"),
        policy=policy,
        zone=charged.zone,
        secret=charged.secret,
    )
    session.commit()
    return reload(session, people)


def reload(session: Session, people: dict) -> dict:
    """The same rows, attached to ``session`` again (planning lets go of what it loaded)."""
    return {name: session.get(type(row), row.id) for name, row in people.items()}


def cancel(session, booking, settings, policy, now, reason=None):
    outcome = cancel_booking(
        session,
        booking,
        now=now,
        policy=policy,
        zone=settings.zone,
        secret=settings.secret,
        actor="cli:admin",
        reason=reason,
        admin_email=settings.admin_email,
    )
    session.commit()
    return outcome


# -- In time --------------------------------------------------------------------------------------


def test_in_time_cancellation_withdraws_messages_and_frees_the_place(
    people, session, engine, charged, policy
):
    alice = people["alice_booking"]
    pending = session.exec(
        select(OutboxMessage).where(
            OutboxMessage.booking_id == alice.id, OutboxMessage.state == OutboxState.PENDING
        )
    ).all()
    assert pending, "planning queued Alice's confirmation and pre-course questionnaire"

    outcome = cancel(session, alice, charged, policy, IN_TIME, reason="Court hearing that day")

    assert outcome.status is CancelStatus.CANCELLED
    assert "no charge" in outcome.message
    session.refresh(alice)
    assert alice.status == BookingStatus.CANCELLED
    assert alice.cancelled_at == IN_TIME and alice.charge_pence is None
    for row in pending:
        session.refresh(row)
        assert row.state == OutboxState.WITHDRAWN
    invitations = session.exec(
        select(SurveyInvitation).where(SurveyInvitation.booking_id == alice.id)
    ).all()
    assert invitations and {i.status for i in invitations} == {InvitationStatus.WITHDRAWN}
    entry = audit(session, "booking.cancelled")[0]
    assert entry.actor == "cli:admin" and entry.detail["booking"] == "BK-1001"
    assert entry.detail["reason"] == "Court hearing that day"

    mails = Mailbox(engine, charged).deliver(IN_TIME)
    assert len(to(mails, "alice.okafor")) == 1, "only the confirmation: her surveys are withdrawn"
    assert len(to(mails, ADMIN)) == 1
    confirmation = to(mails, "alice.okafor")[0]
    assert confirmation.subject.startswith("Cancelled: Working Together")
    assert "You cancelled in time, so there is no charge" in confirmation.text
    assert "Court hearing that day" in confirmation.text
    free = to(mails, ADMIN)[0]
    assert free.subject.startswith("A place is free: Working Together")
    assert "Alice Okafor (Riverside Children's Services) cancelled booking BK-1001" in free.text
    assert "Places now free: 19 of 20" in free.text


def test_without_an_admin_email_the_free_place_is_in_the_audit_log(
    world, session, engine, database_url, tmp_path, caplog
):
    settings = make_settings(database_url, tmp_path, admin_email=None)
    people = world.standard()
    outcome = cancel(session, people["alice_booking"], settings, load_policy({}), IN_TIME)
    assert outcome.status is CancelStatus.CANCELLED
    assert any("no admin" in who for who in outcome.told)
    entry = audit(session, "place.free.unsent")[0]
    assert "EVALBOT_ADMIN_EMAIL" in entry.detail["why"]
    assert "EVALBOT_ADMIN_EMAIL is not set" in caplog.text
    mails = Mailbox(engine, settings).deliver(IN_TIME)
    assert [mail.to for mail in mails] == ["Alice Okafor <alice.okafor@riverside.example>"]


# -- Late, with a replacement ---------------------------------------------------------------------


def test_late_cancellation_lets_the_manager_nominate_a_colleague_with_no_charge(
    people, session, engine, charged, policy
):
    alice = people["alice_booking"]
    alice_id = alice.id
    outcome = cancel(session, alice, charged, policy, LATE)
    assert outcome.status is CancelStatus.LATE
    assert "Bob Whitfield has been asked to nominate a colleague" in outcome.message
    assert "£75" in outcome.message
    session.refresh(alice)
    assert alice.status == BookingStatus.LATE_CANCELLATION

    mailbox = Mailbox(engine, charged)
    mails = mailbox.deliver(LATE)
    assert not to(mails, ADMIN), "a late place is the agency's to fill, not the waiting list's"
    assert "This is a late cancellation" in to(mails, "alice.okafor")[0].text
    request = to(mails, "bob.whitfield")[0]
    assert request.subject.startswith("Late cancellation: nominate a colleague")
    assert (
        "If no one takes the place by the start of the course, your agency will be charged £75"
        in request.text
    )
    nominate = link_in(request.text, "/nominate/")

    client = client_at(charged, engine, utc("2026-03-13 11:00"))
    page = client.get(nominate)
    assert page.status_code == 200
    assert "Nominate a colleague" in page.text and "Riverside Children&#39;s Services" in page.text
    session.expire_all()
    assert (
        session.get(Booking, alice.id).status == BookingStatus.LATE_CANCELLATION
    )  # GET changed nothing

    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    done = client.post(
        nominate,
        data={"csrf": csrf, "name": "Erin  Mensah", "email": "Erin.Mensah@Riverside.example"},
    )
    assert done.status_code == 200, done.text
    assert "Erin Mensah now has the place (booking BK-1001-R1)" in done.text

    session.expire_all()
    original = session.get(Booking, alice.id)
    replacement = session.exec(select(Booking).where(Booking.ref == "BK-1001-R1")).one()
    assert original.status == BookingStatus.REPLACED
    assert original.replaced_by_id == replacement.id and replacement.replaces_id == original.id
    assert replacement.source == "replacement" and replacement.status == BookingStatus.BOOKED
    erin = session.get(Person, replacement.delegate_id)
    assert erin.email == "erin.mensah@riverside.example"
    assert erin.agency_id == people["riverside"].id
    assert replacement.manager_id == people["bob"].id
    assert audit(session, "booking.replaced")[0].detail["replacement"] == "BK-1001-R1"

    joining = to(mailbox.deliver(utc("2026-03-13 11:00")), "erin.mensah")
    assert len(joining) == 1
    assert joining[0].subject.startswith("Your place on Working Together")
    assert "Bob Whitfield has nominated you to take the place of Alice Okafor" in joining[0].text
    assert "Monday 16 March 2026, 09:30 to 16:30 (full day)" in joining[0].text
    assert "Civic Centre, Room 2" in joining[0].text

    # The next tick plans the replacement: her pre-course questionnaire, still open, goes out.
    tick(
        engine, now=utc("2026-03-13 11:05"), policy=policy, zone=charged.zone, secret=charged.secret
    )
    session.expire_all()
    pre = session.exec(
        select(SurveyInvitation).where(SurveyInvitation.booking_id == replacement.id)
    ).all()
    assert {str(i.stage) for i in pre} >= {"pre", "end", "impact"}
    later = to(mailbox.deliver(utc("2026-03-13 11:06")), "erin.mensah")
    assert len(later) == 1 and "http://testserver/s/" in later[0].text, later
    assert "/cancel/" in later[0].text, "the pre-course email carries the Cancel link"

    # The start passes: replaced, so no charge.
    assert record_late_cancellation_charges(session, now=START, policy=policy) == 0
    session.expire_all()
    assert session.get(Booking, alice_id).charge_pence is None

    # The link now says the place has gone, and a second nomination is refused.
    again = client.get(nominate)
    assert again.status_code == 409 and "already been taken by Erin Mensah" in again.text


def test_a_nomination_must_be_a_colleague_from_the_same_agency(
    people, session, engine, charged, policy
):
    alice = people["alice_booking"]
    cancel(session, alice, charged, policy, LATE)
    with pytest.raises(NominationError, match="belongs to Northgate NHS Trust"):
        nominate_replacement(
            session,
            alice,
            name="Dev Patel",
            email="dev.patel@northgate.example",
            now=LATE,
            actor="web",
        )
    with pytest.raises(NominationError, match="is the address of Alice Okafor"):
        nominate_replacement(
            session,
            alice,
            name="Alice",
            email="alice.okafor@riverside.example",
            now=LATE,
            actor="web",
        )
    with pytest.raises(NominationError, match="email address"):
        nominate_replacement(
            session, alice, name="Erin", email="not-an-address", now=LATE, actor="web"
        )
    with pytest.raises(NominationError, match="too late"):
        nominate_replacement(
            session, alice, name="Erin", email="erin@riverside.example", now=START, actor="web"
        )
    session.rollback()
    assert session.exec(select(Booking).where(col(Booking.ref).like("BK-1001-R%"))).all() == []


def test_nominate_page_shows_errors_and_escapes_names(people, session, engine, charged, policy):
    chloe = people["chloe_booking"]
    cancel(session, chloe, charged, policy, LATE)
    mails = Mailbox(engine, charged).deliver(LATE)
    request = to(mails, "dev.patel")[0]
    assert "Chloé O'Brien <Health & Care> has cancelled" in request.text
    assert "Chloé O&#39;Brien &lt;Health &amp; Care&gt; has cancelled" in request.html
    assert "<Health" not in request.html
    nominate = link_in(request.text, "/nominate/")

    client = client_at(charged, engine, utc("2026-03-13 11:00"))
    page = client.get(nominate)
    assert "Chloé O&#39;Brien &lt;Health &amp; Care&gt;" in page.text and "<Health" not in page.text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    wrong = client.post(
        nominate,
        data={
            "csrf": csrf,
            "name": "Bob <b>Whitfield</b>",
            "email": "bob.whitfield@riverside.example",
        },
    )
    assert wrong.status_code == 422
    assert "belongs to Riverside Children&#39;s Services" in wrong.text
    assert 'value="Bob &lt;b&gt;Whitfield&lt;/b&gt;"' in wrong.text
    forged = client.post(
        nominate, data={"csrf": "forged", "name": "Fay", "email": "fay@northgate.example"}
    )
    assert forged.status_code == 403
    session.expire_all()
    assert session.get(Booking, chloe.id).status == BookingStatus.LATE_CANCELLATION
    assert (
        session.exec(select(Person).where(Person.email == "fay@northgate.example")).first() is None
    )


# -- Late, without a replacement ------------------------------------------------------------------


def test_late_cancellation_without_a_replacement_is_charged_at_the_start(
    people, session, engine, charged, policy
):
    alice = people["alice_booking"]
    cancel(session, alice, charged, policy, LATE)
    assert (
        record_late_cancellation_charges(session, now=utc("2026-03-16 09:29"), policy=policy) == 0
    )
    assert record_late_cancellation_charges(session, now=START, policy=policy) == 1
    session.commit()
    session.refresh(alice)
    assert alice.charge_pence == 7500
    assert "full day charge £75" in alice.charge_note
    entry = audit(session, "charge.recorded")[0]
    assert entry.detail == {
        "booking": "BK-1001",
        "session_ref": "WT-2026-03-16",
        "why": "late cancellation, no replacement",
        "charge_pence": 7500,
    }
    # Once only.
    assert (
        record_late_cancellation_charges(session, now=utc("2026-03-16 10:00"), policy=policy) == 0
    )
    assert len(audit(session, "charge.recorded")) == 1
    # The nominate link no longer works once the course has started.
    client = client_at(charged, engine, utc("2026-03-16 10:00"))
    token_url = url_for(charged, LinkPurpose.NOMINATE, f"booking:{alice.id}").removeprefix(
        "http://testserver"
    )
    assert client.get(token_url).status_code == 404


def test_without_a_charge_in_the_policy_nothing_is_recorded(world, session, charged):
    people = world.standard()
    free = load_policy({})
    cancel(session, people["alice_booking"], charged, free, LATE)
    assert record_late_cancellation_charges(session, now=START, policy=free) == 0
    session.refresh(people["alice_booking"])
    assert people["alice_booking"].charge_pence is None


def test_a_course_can_have_its_own_cutoff_in_hours(world, session, charged):
    people = world.standard()
    own = load_policy({"courses": {"Working Together to Safeguard Children": {"cutoff_hours": 24}}})
    outcome = cancel(session, people["alice_booking"], charged, own, LATE)
    assert outcome.status is CancelStatus.CANCELLED  # Friday is more than 24 hours before


# -- Refused --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        ("cancelled", "was already cancelled on Thursday 12 March 2026"),
        ("late", "was already cancelled (late)"),
        ("replaced", "has already been passed to a colleague"),
        ("attended", "the register already shows it as attended"),
        ("started", "the course started on Monday 16 March 2026 at 09:30"),
    ],
)
def test_cancelling_is_refused_and_changes_nothing(
    world, session, charged, policy, setup, expected
):
    people = world.standard()
    alice = people["alice_booking"]
    now = utc("2026-03-16 09:45")
    if setup == "cancelled":
        cancel(session, alice, charged, policy, IN_TIME)
    elif setup == "late":
        cancel(session, alice, charged, policy, LATE)
    elif setup == "replaced":
        cancel(session, alice, charged, policy, LATE)
        nominate_replacement(
            session,
            alice,
            name="Erin Mensah",
            email="erin@riverside.example",
            now=LATE,
            actor="web",
        )
        session.commit()
    elif setup == "attended":
        mark(session, alice, BookingStatus.ATTENDED, now=now, actor="telegram:1", policy=policy)
        session.commit()
    before = (
        len(session.exec(select(AuditEntry)).all()),
        len(session.exec(select(OutboxMessage)).all()),
        alice.status,
    )
    outcome = cancel(session, alice, charged, policy, now)
    assert outcome.status is CancelStatus.REFUSED
    assert expected in outcome.message
    session.expire_all()
    after = (
        len(session.exec(select(AuditEntry)).all()),
        len(session.exec(select(OutboxMessage)).all()),
        session.get(Booking, alice.id).status,
    )
    assert after == before


def test_cancelling_a_booking_on_a_cancelled_session_is_refused(world, session, charged, policy):
    people = world.standard()
    people["session"].status = "cancelled"
    session.commit()
    outcome = cancel(session, people["alice_booking"], charged, policy, IN_TIME)
    assert outcome.status is CancelStatus.REFUSED
    assert "the session itself has been cancelled" in outcome.message


# -- The Cancel page ------------------------------------------------------------------------------


def _cancel_url(session, settings, booking) -> str:
    cancel_link(session, booking, secret=settings.secret)
    session.commit()
    return url_for(settings, LinkPurpose.CANCEL, f"booking:{booking.id}").removeprefix(
        "http://testserver"
    )


def test_cancel_page_shows_the_policy_and_cancels_only_on_post(people, session, engine, charged):
    alice = people["alice_booking"]
    url = _cancel_url(session, charged, alice)
    client = client_at(charged, engine, IN_TIME)
    page = client.get(url)
    assert page.status_code == 200
    assert "Working Together to Safeguard Children" in page.text
    assert "Monday 16 March 2026" in page.text and "09:30 to 16:30" in page.text
    assert "until 2 working days before the course" in page.text
    assert "(that is, until the end of Thursday 12 March 2026)" in page.text
    assert "your agency is charged £75" in page.text
    assert "You are cancelling in time" in page.text
    assert page.headers["cache-control"] == "no-store"
    session.expire_all()
    assert session.get(Booking, alice.id).status == BookingStatus.BOOKED
    assert audit(session, "booking.cancelled") == []

    refused = client.post(url, data={"csrf": "nope", "reason": "x"})
    assert refused.status_code == 403
    session.expire_all()
    assert session.get(Booking, alice.id).status == BookingStatus.BOOKED

    csrf = form_token(charged.secret, f"cancel:{alice.id}")
    done = client.post(url, data={"csrf": csrf, "reason": "On leave"})
    assert done.status_code == 200
    assert "Your place is cancelled" in done.text and "no charge" in done.text
    session.expire_all()
    cancelled = session.get(Booking, alice.id)
    assert cancelled.status == BookingStatus.CANCELLED and cancelled.cancel_reason == "On leave"
    assert audit(session, "booking.cancelled")[0].actor == "web"

    twice = client.post(url, data={"csrf": csrf})
    assert twice.status_code == 409 and "was already cancelled" in twice.text


def test_cancel_page_after_the_cutoff_says_it_is_late(people, session, engine, charged):
    chloe = people["chloe_booking"]
    url = _cancel_url(session, charged, chloe)
    client = client_at(charged, engine, LATE)
    page = client.get(url)
    assert "This is a late cancellation" in page.text
    assert "Cancel my place (late)" in page.text
    assert "Chloé O&#39;Brien &lt;Health &amp; Care&gt;" in page.text and "<Health" not in page.text
    done = client.post(url, data={"csrf": form_token(charged.secret, f"cancel:{chloe.id}")})
    assert done.status_code == 200 and "late cancellation" in done.text
    assert "Dev Patel has been asked to nominate" in done.text


def test_cancel_link_stops_working_at_the_start_and_unknown_links_get_404(
    people, session, engine, charged
):
    url = _cancel_url(session, charged, people["alice_booking"])
    assert client_at(charged, engine, START).get(url).status_code == 404
    unknown = client_at(charged, engine, IN_TIME).get("/cancel/not-a-real-token")
    assert unknown.status_code == 404 and "This link does not work" in unknown.text


# -- The CLI --------------------------------------------------------------------------------------


@pytest.fixture
def cli(people, charged, monkeypatch):
    monkeypatch.setenv("EVALBOT_DATABASE_URL", charged.database_url)
    monkeypatch.setenv("EVALBOT_ADMIN_EMAIL", ADMIN)
    monkeypatch.setenv("EVALBOT_MAIL_DIR", str(charged.mail_dir))
    return CliRunner()


def test_cli_cancel_in_time_and_late(cli, session):
    result = cli.invoke(
        cli_app, ["cancel", "BK-1001", "--reason", "Court hearing", "--now", "2026-03-12T12:00"]
    )
    assert result.exit_code == 0, result.output
    assert (
        "Booking BK-1001 for Working Together to Safeguard Children is cancelled." in result.output
    )
    assert "Withdrew" in result.output and f"the admin at {ADMIN}" in result.output
    late = cli.invoke(cli_app, ["cancel", "BK-1002", "--now", "2026-03-13T10:00"])
    assert late.exit_code == 0, late.output
    assert "cancelled late" in late.output and "Dev Patel (asked to nominate" in late.output
    session.expire_all()
    statuses = dict(session.exec(select(Booking.ref, Booking.status)).all())
    assert statuses == {"BK-1001": "cancelled", "BK-1002": "late cancellation"}
    assert audit(session, "booking.cancelled")[0].actor.startswith("cli:")


def test_cli_cancel_refusals_say_why(cli):
    unknown = cli.invoke(cli_app, ["cancel", "BK-9999", "--now", "2026-03-12T12:00"])
    assert unknown.exit_code == 1 and "No booking has the reference 'BK-9999'" in unknown.output
    after = cli.invoke(cli_app, ["cancel", "BK-1001", "--now", "2026-03-16T10:00"])
    assert after.exit_code == 1
    assert "Not cancelled" in after.output and "the course started" in after.output


TELEGRAM_TAGS = {"b", "i", "a", "code", "pre"}


def telegram_texts(session: Session, settings: Settings) -> dict[str, str]:
    """Every queued message rendered as Telegram would show it, by template."""
    from bot.rendering import render
    from surveys.models import Channel

    texts = {}
    for row in session.exec(select(OutboxMessage)).all():
        person = session.get(Person, row.person_id) if row.person_id else None
        outgoing = render(
            settings,
            row,
            channel=Channel.TELEGRAM,
            recipient="42",
            recipient_name=person.name if person else "Training coordinator",
            now=row.due_at,
        )
        tags = set(re.findall(r"</?([a-zA-Z0-9]+)", outgoing.text))
        assert tags <= TELEGRAM_TAGS, f"{row.template}: {tags - TELEGRAM_TAGS}"
        texts[row.template + (":late" if row.context.get("late") else "")] = outgoing.text
    return texts


def test_cancellation_notices_read_well_in_telegram(world, session, charged, policy):
    people = world.standard()
    cancel(session, people["alice_booking"], charged, policy, IN_TIME)
    cancel(session, people["chloe_booking"], charged, policy, LATE)
    nominate_replacement(
        session,
        people["chloe_booking"],
        name="Fay Adeyemi",
        email="fay.adeyemi@northgate.example",
        now=LATE,
        actor="web",
        secret=charged.secret,
    )
    session.commit()
    texts = telegram_texts(session, charged)
    assert set(texts) == {
        "cancellation-confirmed",
        "cancellation-confirmed:late",
        "place-free",
        "nominate-request",
        "replacement-joining",
    }
    assert "Chloé O&#39;Brien &lt;Health &amp; Care&gt; has cancelled" in texts["nominate-request"]
    assert '<a href="http://testserver/nominate/' in texts["nominate-request"]
    assert "take the place of Chloé O&#39;Brien" in texts["replacement-joining"]
    assert '<a href="http://testserver/cancel/' in texts["replacement-joining"]
    assert "£75" in texts["cancellation-confirmed:late"]
