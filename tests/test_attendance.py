"""The register: when it can be marked, closing it, no-show notices and their corrections.

The course starts on Monday 16 March 2026 at 09:30 (GMT), so the register opens at 09:15.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlmodel import select
from typer.testing import CliRunner

from bot.cli import app as cli_app
from bot.settings import Settings
from bot.web.security import form_token
from schedules.attendance import (
    AttendanceError,
    close_register,
    mark,
    process_closed_registers,
    register_is_open,
)
from schedules.policy import Policy, load_policy
from surveys.models import (
    Booking,
    BookingStatus,
    Duration,
    OutboxMessage,
    OutboxState,
)
from tests.conftest import utc
from tests.test_cancellation import (
    Mailbox,
    audit,
    client_at,
    link_in,
    make_settings,
    to,
)

OPENS = utc("2026-03-16 09:15")
CLOSED = utc("2026-03-16 18:30")  # after the sending window: notices wait until Tuesday 08:00
TUESDAY = utc("2026-03-17 08:00")


@pytest.fixture
def charged(database_url: str, tmp_path: Path) -> Settings:
    return make_settings(
        database_url,
        tmp_path,
        policy={"charge_full_day_pence": 7500, "charge_half_day_pence": 4000},
    )


@pytest.fixture
def policy(charged: Settings) -> Policy:
    return load_policy(charged.policy)


@pytest.fixture
def people(world):
    return world.standard()


def marked(session, people, policy, *, chloe=BookingStatus.NO_SHOW, notice=None, at=OPENS):
    mark(
        session,
        people["alice_booking"],
        BookingStatus.ATTENDED,
        now=at,
        actor="telegram:111",
        policy=policy,
    )
    mark(
        session,
        people["chloe_booking"],
        chloe,
        now=at,
        actor="telegram:111",
        policy=policy,
        prior_notice=notice,
    )
    close_register(session, people["session"], now=CLOSED, actor="telegram:111", policy=policy)
    session.commit()


def notify(session, settings, policy, now=CLOSED) -> int:
    count = process_closed_registers(
        session, now=now, policy=policy, secret=settings.secret, zone=settings.zone
    )
    session.commit()
    return count


# -- Marking and closing --------------------------------------------------------------------------


def test_register_opens_fifteen_minutes_before_the_start(people, session, policy):
    course_session = people["session"]
    alice = people["alice_booking"]
    assert not register_is_open(course_session, utc("2026-03-16 09:14"), policy)
    with pytest.raises(AttendanceError, match="opens at 09:15 on Monday 16 March 2026, 15 minutes"):
        mark(
            session,
            alice,
            BookingStatus.ATTENDED,
            now=utc("2026-03-16 09:14"),
            actor="t",
            policy=policy,
        )
    assert alice.status == BookingStatus.BOOKED
    assert register_is_open(course_session, OPENS, policy)
    result = mark(
        session, alice, BookingStatus.ATTENDED, now=OPENS, actor="telegram:111", policy=policy
    )
    assert result.changed and alice.status == BookingStatus.ATTENDED
    entry = audit(session, "attendance.marked")[0]
    assert entry.actor == "telegram:111"
    assert entry.detail["booking"] == "BK-1001" and entry.detail["status"] == "attended"


def test_closing_needs_every_booking_marked(people, session, policy):
    mark(
        session,
        people["alice_booking"],
        BookingStatus.ATTENDED,
        now=OPENS,
        actor="t",
        policy=policy,
    )
    with pytest.raises(AttendanceError, match=r"1 still to mark: BK-1002 \(Chloé O'Brien"):
        close_register(session, people["session"], now=CLOSED, actor="t", policy=policy)
    assert people["session"].register_closed_at is None
    assert close_register(
        session, people["session"], now=CLOSED, actor="t", policy=policy, rest=BookingStatus.NO_SHOW
    )
    assert people["chloe_booking"].status == BookingStatus.NO_SHOW
    assert people["session"].register_closed_at == CLOSED
    assert audit(session, "register.closed")[0].detail["marks"] == {
        "attended": 1,
        "partly attended": 0,
        "no-show": 1,
    }
    assert not close_register(session, people["session"], now=CLOSED, actor="t", policy=policy)


def test_after_closing_only_an_admin_changes_a_mark(people, session, policy):
    marked(session, people, policy, chloe=BookingStatus.PARTLY_ATTENDED)
    with pytest.raises(AttendanceError, match="only an admin can change a mark now"):
        mark(
            session,
            people["alice_booking"],
            BookingStatus.NO_SHOW,
            now=CLOSED,
            actor="t",
            policy=policy,
        )
    result = mark(
        session,
        people["alice_booking"],
        BookingStatus.PARTLY_ATTENDED,
        now=utc("2026-03-17 09:00"),
        actor="cli:coordinator",
        policy=policy,
        admin=True,
    )
    assert result.after_close and result.changed and result.corrections == 0
    entry = audit(session, "attendance.changed")[0]
    assert entry.actor == "cli:coordinator"
    assert entry.detail["previous"] == "attended" and entry.detail["status"] == "partly attended"


def test_a_cancelled_booking_is_not_on_the_register(people, session, policy):
    people["alice_booking"].status = BookingStatus.CANCELLED
    with pytest.raises(AttendanceError, match="BK-1001 is cancelled, so it is not on the register"):
        mark(
            session,
            people["alice_booking"],
            BookingStatus.ATTENDED,
            now=OPENS,
            actor="t",
            policy=policy,
        )


# -- No-show notices ------------------------------------------------------------------------------


def test_no_show_notices_reach_delegate_and_manager_in_the_sending_window(
    people, session, engine, charged, policy
):
    marked(session, people, policy)
    assert notify(session, charged, policy) == 1
    chloe = session.get(Booking, people["chloe_booking"].id)
    assert chloe.no_show_notified_at == CLOSED
    assert chloe.charge_pence == 7500 and "full day charge £75" in chloe.charge_note
    entry = audit(session, "no_show.notified")[0]
    assert entry.detail["manager"] == "dev.patel@northgate.example"
    assert entry.detail["charge_pence"] == 7500

    mailbox = Mailbox(engine, charged)
    assert mailbox.deliver(CLOSED) == [], "18:30 is outside the sending window"
    mails = mailbox.deliver(TUESDAY)
    assert len(mails) == 2
    delegate = to(mails, "chloe.obrien")[0]
    assert delegate.subject == (
        "You were not at Working Together to Safeguard Children on 16 March 2026"
    )
    assert "records you as not attending (booking BK-1002)" in delegate.text
    assert "we let them and the line manager who approved the booking know" in delegate.text
    assert "Dev Patel has been sent a similar notice." in delegate.text
    assert "a charge of £75 (full day) applies" in delegate.text
    reason = link_in(delegate.text, "/reason/")
    assert "Dear Chloé O&#39;Brien &lt;Health &amp; Care&gt;," in delegate.html
    manager = to(mails, "dev.patel")[0]
    assert manager.subject.startswith("Chloé O'Brien <Health & Care> did not attend")
    assert "a charge of £75 (full day) applies" in manager.text
    assert "/reason/" not in manager.text, "the reason link is the delegate's own"
    assert "Telegram" not in manager.text, "no bot is configured, so no Telegram link"
    assert "&lt;Health &amp; Care&gt;" in manager.html and "<Health" not in manager.html
    assert reason

    # Idempotent: another pass, another delivery, nothing new.
    assert notify(session, charged, policy, now=TUESDAY) == 0
    assert mailbox.deliver(utc("2026-03-17 09:00")) == []
    assert len(audit(session, "no_show.notified")) == 1


def test_no_notice_for_a_no_show_who_gave_prior_notice(people, session, engine, charged, policy):
    marked(session, people, policy, notice="Rang the trainer at 08:50: child ill")
    assert notify(session, charged, policy) == 0
    assert session.exec(select(OutboxMessage)).all() == []
    chloe = session.get(Booking, people["chloe_booking"].id)
    assert chloe.charge_pence is None and chloe.no_show_notified_at is None
    assert chloe.no_show_reason == "Rang the trainer at 08:50: child ill"
    assert audit(session, "attendance.marked")[-1].detail["prior_notice"].startswith("Rang")


def test_no_notice_before_the_register_is_closed(people, session, charged, policy):
    mark(
        session, people["chloe_booking"], BookingStatus.NO_SHOW, now=OPENS, actor="t", policy=policy
    )
    session.commit()
    assert notify(session, charged, policy) == 0


def test_a_half_day_no_show_is_charged_the_half_day_rate(world, session, charged, policy):
    riverside = world.agency()
    alice = world.person("Alice Okafor", "alice.okafor@riverside.example", riverside)
    bob = world.person("Bob Whitfield", "bob.whitfield@riverside.example", riverside)
    course = world.course("Neglect: a briefing", duration=Duration.HALF)
    briefing = world.course_session(
        course, "NB-1", starts_at=utc("2026-03-18 09:30"), ends_at=utc("2026-03-18 12:30")
    )
    booking = world.booking(briefing, alice, bob, "BK-3001")
    mark(
        session,
        booking,
        BookingStatus.NO_SHOW,
        now=utc("2026-03-18 09:20"),
        actor="t",
        policy=policy,
    )
    close_register(session, briefing, now=utc("2026-03-18 13:00"), actor="t", policy=policy)
    session.commit()
    assert notify(session, charged, policy, now=utc("2026-03-18 13:00")) == 1
    assert session.get(Booking, booking.id).charge_pence == 4000


def test_a_mark_changed_after_the_notice_went_out_is_corrected(
    people, session, engine, charged, policy
):
    marked(session, people, policy)
    notify(session, charged, policy)
    mailbox = Mailbox(engine, charged)
    assert len(mailbox.deliver(TUESDAY)) == 2

    chloe = session.get(Booking, people["chloe_booking"].id)
    result = mark(
        session,
        chloe,
        BookingStatus.ATTENDED,
        now=utc("2026-03-17 10:00"),
        actor="cli:coordinator",
        policy=policy,
        zone=charged.zone,
        admin=True,
    )
    session.commit()
    assert result.corrections == 2 and result.withdrawn == 0
    assert chloe.charge_pence is None and chloe.no_show_notified_at is None
    entry = audit(session, "no_show.corrected")[0]
    assert entry.actor == "cli:coordinator" and entry.detail["charge_withdrawn"] == "£75"

    mails = mailbox.deliver(utc("2026-03-17 10:00"))
    assert len(mails) == 2
    delegate = to(mails, "chloe.obrien")[0]
    assert delegate.subject.startswith("Correction: you were not a no-show at Working Together")
    assert (
        "now records you as attended.\n\nThe charge of £75 no longer applies."
        in delegate.text.replace("\r\n", "\n")
    )
    manager = to(mails, "dev.patel")[0]
    assert "Chloé O'Brien <Health & Care> (booking BK-1002) did not attend" in manager.text
    assert "now records them as attended" in manager.text
    # The corrected booking is an attendee again: nothing more goes out.
    assert notify(session, charged, policy, now=utc("2026-03-17 10:01")) == 0
    assert mailbox.deliver(utc("2026-03-17 11:00")) == []


def test_a_mark_changed_before_the_notice_went_out_withdraws_it(
    people, session, engine, charged, policy
):
    marked(session, people, policy)
    notify(session, charged, policy)
    chloe = session.get(Booking, people["chloe_booking"].id)
    result = mark(
        session,
        chloe,
        BookingStatus.PARTLY_ATTENDED,
        now=utc("2026-03-16 19:00"),
        actor="cli:coordinator",
        policy=policy,
        admin=True,
    )
    session.commit()
    assert result.withdrawn == 2 and result.corrections == 0
    states = {row.template: row.state for row in session.exec(select(OutboxMessage)).all()}
    assert states == {
        "no-show-delegate": OutboxState.WITHDRAWN,
        "no-show-manager": OutboxState.WITHDRAWN,
    }
    assert Mailbox(engine, charged).deliver(TUESDAY) == []

    # Marked a no-show again: a fresh notice goes out (not the withdrawn one).
    mark(
        session,
        chloe,
        BookingStatus.NO_SHOW,
        now=utc("2026-03-16 19:30"),
        actor="cli:c",
        policy=policy,
        admin=True,
    )
    session.commit()
    assert notify(session, charged, policy, now=utc("2026-03-16 19:31")) == 1
    assert len(Mailbox(engine, charged).deliver(TUESDAY)) == 2


# -- The reason page ------------------------------------------------------------------------------


def test_the_delegate_gives_a_reason_through_the_link(people, session, engine, charged, policy):
    marked(session, people, policy)
    notify(session, charged, policy)
    mails = Mailbox(engine, charged).deliver(TUESDAY)
    reason = link_in(to(mails, "chloe.obrien")[0].text, "/reason/")
    client = client_at(charged, engine, utc("2026-03-17 12:00"))

    page = client.get(reason)
    assert page.status_code == 200
    assert "Why could you not attend?" in page.text
    assert "Chloé O&#39;Brien &lt;Health &amp; Care&gt;" in page.text and "<Health" not in page.text
    session.expire_all()
    assert session.get(Booking, people["chloe_booking"].id).no_show_reason is None

    empty = client.post(
        reason,
        data={
            "csrf": form_token(charged.secret, f"reason:{people['chloe_booking'].id}"),
            "reason": "  ",
        },
    )
    assert empty.status_code == 422 and "Please write a reason" in empty.text
    forged = client.post(reason, data={"csrf": "x", "reason": "Train strike"})
    assert forged.status_code == 403
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    done = client.post(reason, data={"csrf": csrf, "reason": "Train strike <all day>"})
    assert done.status_code == 200 and "Your reason has been recorded" in done.text
    session.expire_all()
    chloe = session.get(Booking, people["chloe_booking"].id)
    assert chloe.no_show_reason == "Train strike <all day>"
    assert chloe.no_show_reason_at == utc("2026-03-17 12:00")
    entry = audit(session, "no_show.reason")[0]
    assert entry.actor == "web" and entry.detail["reason"] == "Train strike <all day>"
    again = client.get(reason)
    assert "You told us on 17 March 2026 at 12:00" in again.text
    assert "Train strike &lt;all day&gt;" in again.text


# -- The CLI --------------------------------------------------------------------------------------


@pytest.fixture
def cli(people, world, session, charged, monkeypatch):
    other = world.course_session(
        people["course"], "WT-2026-04-20", starts_at=utc("2026-04-20 09:30")
    )
    world.booking(other, people["alice"], people["bob"], "BK-2001")
    session.commit()
    monkeypatch.setenv("EVALBOT_DATABASE_URL", charged.database_url)
    return CliRunner()


def statuses(session) -> dict[str, str]:
    session.expire_all()
    return dict(session.exec(select(Booking.ref, Booking.status)).all())


def test_cli_marks_and_closes_the_register(cli, session):
    result = cli.invoke(
        cli_app,
        [
            "attendance",
            "WT-2026-03-16",
            "--attended",
            "BK-1001",
            "--no-show",
            "BK-1002",
            "--close",
            "--now",
            "2026-03-16T16:45",
        ],
    )
    assert result.exit_code == 0, result.output
    assert (
        "WT-2026-03-16: Working Together to Safeguard Children, Monday 16 March 2026, 09:30"
        in result.output
    )
    assert "BK-1001        Alice Okafor: attended" in result.output
    assert "Register closed. No-show notices go out with the next tick." in result.output
    assert statuses(session)["BK-1002"] == "no-show"
    assert audit(session, "register.closed")[0].actor.startswith("cli:")


def test_cli_takes_several_references_after_one_option(cli, session, world, people):
    world.booking(people["session"], people["dev"], None, "BK-1003")
    session.commit()
    result = cli.invoke(
        cli_app,
        [
            "attendance",
            "WT-2026-03-16",
            "--attended",
            "BK-1001",
            "BK-1003",
            "--partly",
            "BK-1002",
            "--now",
            "2026-03-16T09:20",
        ],
    )
    assert result.exit_code == 0, result.output
    assert statuses(session) | {} == {
        "BK-1001": "attended",
        "BK-1002": "partly attended",
        "BK-1003": "attended",
        "BK-2001": "booked",
    }
    assert "The register is open; close it with --close." in result.output


def test_cli_names_every_wrong_reference_and_writes_nothing(cli, session):
    result = cli.invoke(
        cli_app,
        [
            "attendance",
            "WT-2026-03-16",
            "--attended",
            "BK-1001",
            "--attended",
            "BK-2001",
            "--no-show",
            "BK-9999",
            "--now",
            "2026-03-16T09:20",
        ],
    )
    assert result.exit_code == 1
    assert "Nothing was marked" in result.output
    assert (
        "--attended BK-2001: BK-2001 is booked on WT-2026-04-20, not WT-2026-03-16" in result.output
    )
    assert "--no-show BK-9999: no booking has this reference" in result.output
    assert statuses(session)["BK-1001"] == "booked"


def test_cli_refuses_before_the_register_opens_and_closing_with_gaps(cli, session):
    early = cli.invoke(
        cli_app,
        ["attendance", "WT-2026-03-16", "--attended", "BK-1001", "--now", "2026-03-16T09:00"],
    )
    assert early.exit_code == 1 and "opens at 09:15" in early.output
    gaps = cli.invoke(
        cli_app,
        [
            "attendance",
            "WT-2026-03-16",
            "--attended",
            "BK-1001",
            "--close",
            "--now",
            "2026-03-16T16:45",
        ],
    )
    assert gaps.exit_code == 1 and "still to mark: BK-1002" in gaps.output
    assert statuses(session)["BK-1001"] == "booked", "nothing is half-written"
    unknown = cli.invoke(cli_app, ["attendance", "WT-1999", "--now", "2026-03-16T16:45"])
    assert unknown.exit_code == 1 and "No session has the reference 'WT-1999'" in unknown.output


def test_cli_records_prior_notice_and_corrects_after_closing(cli, session, charged, policy):
    first = cli.invoke(
        cli_app,
        [
            "attendance",
            "WT-2026-03-16",
            "--attended",
            "BK-1001",
            "--no-show",
            "BK-1002",
            "--close",
            "--now",
            "2026-03-16T16:45",
        ],
    )
    assert first.exit_code == 0, first.output
    assert notify(session, charged, policy, now=utc("2026-03-16 16:50")) == 1
    change = cli.invoke(
        cli_app,
        ["attendance", "WT-2026-03-16", "--attended", "BK-1002", "--now", "2026-03-16T17:00"],
    )
    assert change.exit_code == 0, change.output
    assert "was no-show; changed after the register closed" in change.output
    assert "2 unsent no-show notice(s) withdrawn" in change.output
    notice = cli.invoke(
        cli_app,
        [
            "attendance",
            "WT-2026-03-16",
            "--notice",
            "BK-1002=Phoned in sick at 08:50",
            "--now",
            "2026-03-16T17:05",
        ],
    )
    assert notice.exit_code == 0, notice.output
    assert "no-show (reason: Phoned in sick at 08:50)" in notice.output


def test_prior_notice_recorded_after_the_notice_went_out_is_corrected(
    cli, session, engine, charged, policy
):
    close = [
        "attendance", "WT-2026-03-16", "--attended", "BK-1001", "--no-show", "BK-1002",
        "--close", "--now", "2026-03-16T16:45",
    ]  # fmt: skip
    assert cli.invoke(cli_app, close).exit_code == 0
    assert notify(session, charged, policy, now=utc("2026-03-16 16:50")) == 1
    mailbox = Mailbox(engine, charged)
    assert len(mailbox.deliver(utc("2026-03-16 16:50"))) == 2

    # The next morning the training team finds Chloé's voicemail from before the course.
    change = cli.invoke(
        cli_app,
        [
            "attendance",
            "WT-2026-03-16",
            "--notice",
            "BK-1002=Phoned in sick at 08:50",
            "--now",
            "2026-03-17T09:00",
        ],
    )
    assert change.exit_code == 0, change.output
    assert "no-show (reason: Phoned in sick at 08:50)" in change.output
    assert "2 correction(s) queued" in change.output
    mails = mailbox.deliver(utc("2026-03-17 09:00"))
    assert len(mails) == 2
    delegate = to(mails, "chloe.obrien")[0]
    assert delegate.subject.startswith("Correction: ")
    assert "you told us before the course that you could not come" in delegate.text
    assert "The charge of £75 no longer applies." in delegate.text
    manager = to(mails, "dev.patel")[0]
    assert "they told us before the course that they could not come" in manager.text
    session.expire_all()
    chloe = session.exec(select(Booking).where(Booking.ref == "BK-1002")).one()
    assert chloe.status == BookingStatus.NO_SHOW and chloe.charge_pence is None
    # A no-show with notice gets no notice: nothing more, however many ticks follow.
    assert notify(session, charged, policy, now=utc("2026-03-17 09:01")) == 0
    assert mailbox.deliver(utc("2026-03-17 10:00")) == []
    session.expire_all()
    assert session.get(Booking, chloe.id).charge_pence is None
    from tests.test_cancellation import telegram_texts

    correction = telegram_texts(session, charged)["no-show-correction"]
    assert "as having told us before the course that they could not come" in correction


def test_cli_imports_a_register_file(cli, session, tmp_path):
    path = tmp_path / "register.csv"
    path.write_text(
        "Booking Ref,Status\nBK-1001,Attended\nBK-1002,partly attended\nBK-2001,no show\n"
    )
    result = cli.invoke(cli_app, ["attendance", "import", str(path), "--now", "2026-04-20T12:00"])
    assert result.exit_code == 0, result.output
    assert statuses(session) == {
        "BK-1001": "attended",
        "BK-1002": "partly attended",
        "BK-2001": "no-show",
    }
    assert "WT-2026-03-16:" in result.output and "WT-2026-04-20:" in result.output


def test_cli_import_is_all_or_nothing_with_line_and_column(cli, session, tmp_path):
    path = tmp_path / "register.csv"
    path.write_text("booking_ref,status\nBK-1001,attended\nBK-1002,maybe\nBK-9999,no-show\n")
    result = cli.invoke(cli_app, ["attendance", "import", str(path), "--now", "2026-03-16T12:00"])
    assert result.exit_code == 1
    assert "Nothing was imported from register.csv" in result.output
    assert (
        "register.csv, line 3, column status: 'maybe' is not a mark; "
        "expected attended, partly attended or no-show" in result.output
    )
    assert statuses(session)["BK-1001"] == "booked"
    path.write_text("booking_ref,status\nBK-1001,attended\nBK-9999,no-show\n")
    result = cli.invoke(cli_app, ["attendance", "import", str(path), "--now", "2026-03-16T12:00"])
    assert result.exit_code == 1
    assert (
        "register.csv, line 3, column booking_ref: no booking has this reference" in result.output
    )
    path.write_text("ref,mark\nBK-1001,attended\n")
    result = cli.invoke(cli_app, ["attendance", "import", str(path)])
    assert (
        result.exit_code == 1
        and "register.csv, line 1: missing column booking_ref" in result.output
    )
    assert statuses(session)["BK-1001"] == "booked"


def test_the_register_and_its_notices_on_postgresql(postgres_engine, tmp_path):
    """The same rules on PostgreSQL: conditional updates, the prior-notice filter, charges."""
    from sqlmodel import Session

    from schedules.cancellation import cancel_booking, record_late_cancellation_charges
    from tests.conftest import World

    settings = make_settings(
        postgres_engine.url.render_as_string(hide_password=False),
        tmp_path,
        policy={"charge_full_day_pence": 7500},
    )
    policy = load_policy(settings.policy)
    with Session(postgres_engine, expire_on_commit=False) as session:
        people = World(session).standard()
        late = cancel_booking(
            session,
            people["alice_booking"],
            now=utc("2026-03-13 10:00"),
            policy=policy,
            zone=settings.zone,
            secret=settings.secret,
            actor="t",
            admin_email=None,
        )
        assert late.message.startswith("Booking BK-1001")
        mark(
            session,
            people["chloe_booking"],
            BookingStatus.NO_SHOW,
            now=OPENS,
            actor="t",
            policy=policy,
        )
        close_register(session, people["session"], now=CLOSED, actor="t", policy=policy)
        session.commit()
        assert (
            record_late_cancellation_charges(session, now=utc("2026-03-16 09:30"), policy=policy)
            == 1
        )
        assert notify(session, settings, policy) == 1
        assert notify(session, settings, policy) == 0
        templates = sorted(row.template for row in session.exec(select(OutboxMessage)).all())
        assert templates == [
            "cancellation-confirmed",
            "no-show-delegate",
            "no-show-manager",
            "nominate-request",
        ]


def test_no_show_notices_read_well_in_telegram(people, session, charged, policy):
    from tests.test_cancellation import telegram_texts

    marked(session, people, policy)
    notify(session, charged, policy)
    for row in session.exec(select(OutboxMessage)).all():
        row.state = OutboxState.SENT
        session.add(row)
    session.commit()
    chloe = session.get(Booking, people["chloe_booking"].id)
    mark(session, chloe, BookingStatus.ATTENDED, now=TUESDAY, actor="c", policy=policy, admin=True)
    session.commit()
    texts = telegram_texts(session, charged)
    assert set(texts) == {"no-show-delegate", "no-show-manager", "no-show-correction"}
    assert '<a href="http://testserver/reason/' in texts["no-show-delegate"]
    assert "£75 (full day)" in texts["no-show-manager"]
    assert "Chloé O&#39;Brien &lt;Health &amp; Care&gt;" in texts["no-show-manager"]
