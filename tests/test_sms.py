"""Text messages: counted exactly in GSM-7 and UCS-2 fragments, kept within two with the link
whole, and sent by GOV.UK Notify (a fake API on loopback, reached by the real client) where the
policy allows, to people with a mobile number and no working Telegram chat."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bot.rendering import RenderError, render_sms
from bot.settings import Settings, load_settings
from bot.sms_text import fit, measure, plain
from schedules.policy import PolicyError, load_policy
from surveys.models import (
    Channel,
    Deliverability,
    MessageKind,
    OutboxMessage,
    OutboxState,
    Person,
)
from tests.conftest import World, utc
from tests.fake_notify import API_KEY, EMAIL_TEMPLATE, SMS_TEMPLATE, FakeNotify
from tests.timeline import Timeline

ALICE_MOBILE = "+447700900123"
NOW = utc("2026-03-16 08:00")


# --- counting --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "encoding", "units", "fragments"),
    [
        ("a" * 160, "GSM-7", 160, 1),
        ("a" * 161, "GSM-7", 161, 2),
        ("a" * 306, "GSM-7", 306, 2),
        ("a" * 307, "GSM-7", 307, 3),
        ("€" * 80, "GSM-7", 160, 1),  # an extension character is two septets
        ("€" * 81, "GSM-7", 162, 2),
        ("€" * 152, "GSM-7", 304, 2),
        ("€" * 153, "GSM-7", 306, 3),  # 306 septets, but the 77th pair cannot be split
        ("a" * 152 + "€" + "a" * 150, "GSM-7", 304, 2),  # the pair starts the 2nd fragment
        ("a" * 152 + "€" + "a" * 152, "GSM-7", 306, 3),  # 306 septets, but a pair is not split
        ("Chloé, Müller, Åse: £5 @ 10:00 ¿ok?", "GSM-7", 35, 1),
        ("Ñandú", "UCS-2", 5, 1),  # ù is GSM, ú is not
        ("ŵ" + "a" * 69, "UCS-2", 70, 1),  # Welsh ŵ is not GSM: the whole text is UCS-2
        ("ŵ" + "a" * 70, "UCS-2", 71, 2),
        ("ŵ" + "a" * 133, "UCS-2", 134, 2),
        ("ŵ" + "a" * 134, "UCS-2", 135, 3),
        ("😀" * 35, "UCS-2", 70, 1),  # outside the BMP: two units each
        ("a" * 66 + "😀" + "a" * 66, "UCS-2", 134, 3),  # the pair is not split at 67
    ],
)
def test_fragments_are_counted_exactly(
    text: str, encoding: str, units: int, fragments: int
) -> None:
    size = measure(text)
    assert (size.encoding, size.units, size.fragments) == (encoding, units, fragments)


def test_typographic_characters_do_not_force_ucs2() -> None:
    text = plain("Alice’s “end-of-course” survey – closes soon…\u00a0thanks")
    assert text == 'Alice\'s "end-of-course" survey - closes soon... thanks'
    assert measure(text).encoding == "GSM-7"


# --- rendering -------------------------------------------------------------------------------


def sms_settings(**extra: Any) -> Settings:
    values: dict[str, Any] = {
        "public_url": "https://evalbot.riverside.example",
        "partnership_name": "Riverside Safeguarding Children Partnership",
        **extra,
    }
    return load_settings(**values)


def reminder(
    course_title: str, delegate: str = "Alice Okafor", stage: str = "end"
) -> OutboxMessage:
    return OutboxMessage(
        id=41,
        idempotency_key="survey-reminder:1:end:1",
        person_id=5,
        channel=Channel.SMS,
        recipient=ALICE_MOBILE,
        template="survey-reminder",
        context={
            "course_title": course_title,
            "session_starts_at": "2026-03-17T09:30:00+00:00",
            "closes_at": "2026-03-31T17:00:00+00:00",
            "stage": stage,
            "delegate_name": delegate,
            "links": {"survey": ["survey", "invitation:1"]},
        },
        kind=MessageKind.REMINDER,
        due_at=NOW,
        available_at=NOW,
    )


def link_in(text: str) -> str:
    [link] = [word for word in text.split() if word.startswith("https://")]
    return link


@pytest.mark.parametrize(
    ("title", "encoding"),
    [
        ("Working Together to Safeguard Children", "GSM-7"),
        ("Working Together to Safeguard Children: " + "multi-agency practice " * 20, "GSM-7"),
        # A Welsh title is spelt in GSM-7 (Gwyl) rather than halve what the text may hold.
        ("Gŵyl Diogelu Plant: " + "ymarfer amlasiantaethol " * 12, "GSM-7"),
    ],
)
def test_a_reminder_fits_two_fragments_with_its_link_whole(title: str, encoding: str) -> None:
    settings = sms_settings()
    text = render_sms(
        settings, reminder(title), recipient=ALICE_MOBILE, recipient_name="Alice", now=NOW
    ).text
    size = measure(text)
    assert size.fragments <= 2 and size.encoding == encoding
    assert size.units <= (306 if encoding == "GSM-7" else 134)
    assert link_in(text).startswith("https://evalbot.riverside.example/s/")
    assert len(link_in(text)) > len("https://evalbot.riverside.example/s/") + 20
    assert "email only" in text.lower()
    assert text.startswith("Riverside Safeguarding Children Partnership: reminder")
    if len(title) > 60:
        assert "..." in text  # the title was shortened, not the link or the partnership
    if "Gŵyl" in title:
        assert "Gwyl Diogelu Plant" in text


def test_a_text_that_must_be_ucs2_keeps_to_134_units() -> None:
    """Fixed wording outside GSM-7 (a Welsh template) leaves 134 units for two fragments."""
    link = "https://evalbot.example/s/OXuhrUsJ8Y8vLM-tjIqfC9Hu3kjJFvxx"

    def welsh(values: Any) -> str:
        return f"Atgoffa: sut aeth {values['course_title']}? Dywedwch wrthym ŵ: {link}"

    text = fit(welsh, {"course_title": "Cydweithio i Ddiogelu Plant " * 5}, (("course_title", 8),))
    size = measure(text)
    assert size.encoding == "UCS-2" and size.fragments == 2
    assert 120 < size.units <= 134 and text.endswith(link)
    # One more character in the title would have made three fragments.
    assert measure(text.replace("...", "x...", 1)).fragments == 3


def test_a_text_that_cannot_fit_is_refused_at_rendering_not_sent_broken() -> None:
    settings = sms_settings(public_url="https://evalbot.example/" + "x" * 300)
    with pytest.raises(RenderError) as failed:
        render_sms(
            settings, reminder("Course"), recipient=ALICE_MOBILE, recipient_name="A", now=NOW
        )
    assert "sms/survey-reminder.txt" in str(failed.value) and "fragments" in str(failed.value)


@pytest.mark.parametrize(
    ("template", "context"),
    [
        (
            "nominate-request",
            {
                "delegate_name": "Alice Okafor",
                "charge": "£75.00",
                "links": {"nominate": ["nominate", "booking:1"]},
            },
        ),
        (
            "no-show-delegate",
            {
                "booking_ref": "BK-1001",
                "charge": None,
                "links": {"reason": ["reason", "booking:1"]},
            },
        ),
        (
            "no-show-manager",
            {"delegate_name": "Alice Okafor", "booking_ref": "BK-1001", "charge": "£75.00"},
        ),
    ],
)
def test_every_notice_has_a_short_form(template: str, context: dict[str, Any]) -> None:
    row = reminder("Working Together to Safeguard Children " * 4)
    row.template = template
    row.kind = MessageKind.NOTICE
    row.context = {**row.context, **context}
    text = render_sms(
        sms_settings(), row, recipient=ALICE_MOBILE, recipient_name="Bob", now=NOW
    ).text
    assert measure(text).fragments <= 2
    if "links" in context:
        assert link_in(text).startswith("https://evalbot.riverside.example/")


def test_the_policy_names_what_may_go_by_text() -> None:
    assert load_policy({}).sms_messages == {
        "survey-reminder",
        "nominate-request",
        "no-show-delegate",
        "no-show-manager",
    }
    assert load_policy({"sms_messages": []}).sms_messages == frozenset()
    with pytest.raises(PolicyError) as failed:
        load_policy({"sms_messages": ["booking-confirmation"]})
    assert "policy.sms_messages" in str(failed.value)
    assert "booking-confirmation" in str(failed.value)


# --- delivery --------------------------------------------------------------------------------


@pytest.fixture
def notify() -> Iterator[FakeNotify]:
    with FakeNotify() as fake:
        yield fake


def notify_settings(database_url: str, tmp_path: Any, notify: FakeNotify, **extra: Any) -> Settings:
    return load_settings(
        database_url=database_url,
        mail_dir=tmp_path / "mail",
        public_url="https://evalbot.riverside.example",
        notify_api_key=API_KEY,
        notify_email_template_id=EMAIL_TEMPLATE,
        notify_sms_template_id=SMS_TEMPLATE,
        notify_base_url=notify.url,
        **extra,
    )


def up_to_the_reminders(engine: Engine, settings: Settings, **policy: Any) -> Timeline:
    timeline = Timeline(engine, settings, load_policy(policy) if policy else None)
    for moment in ("2026-03-02 09:00", "2026-03-09 09:30", "2026-03-14 09:30"):
        timeline.tick(moment)
    return timeline


def sent_to(notify: FakeNotify, kind: str) -> list[tuple[str, str]]:
    return [(n.to, n.reference or "") for n in notify.sent if n.kind == kind]


def test_reminders_go_by_text_to_those_with_a_number_and_no_chat(
    engine: Engine,
    session: Session,
    world: World,
    notify: FakeNotify,
    database_url: str,
    tmp_path: Any,
) -> None:
    people = world.standard()
    people["alice"].mobile = ALICE_MOBILE
    session.add(people["alice"])
    session.commit()
    settings = notify_settings(database_url, tmp_path, notify)
    timeline = up_to_the_reminders(engine, settings)
    invitations = sent_to(notify, "email")
    assert {to for to, _ in invitations} == {
        "alice.okafor@riverside.example",
        "chloe.obrien@northgate.example",
    }  # an invitation is not a text by default

    timeline.tick("2026-03-16 08:00")

    [(to, reference)] = sent_to(notify, "sms")
    assert to == ALICE_MOBILE
    [text] = [n.personalisation["body"] for n in notify.sent if n.kind == "sms"]
    assert measure(text).fragments <= 2
    assert link_in(text).startswith("https://evalbot.riverside.example/s/")
    reminders = {row.recipient: row for row in timeline.rows(template="survey-reminder")}
    assert reminders[ALICE_MOBILE].channel == Channel.SMS
    assert reminders[ALICE_MOBILE].state == OutboxState.SENT
    [texted] = [n for n in notify.sent if n.kind == "sms"]
    assert reminders[ALICE_MOBILE].provider_id == texted.id
    assert reference == reminders[ALICE_MOBILE].idempotency_key
    assert reminders["chloe.obrien@northgate.example"].channel == Channel.EMAIL
    assert notify.refusals == []


def test_email_only_and_the_policy_keep_reminders_in_email(
    engine: Engine,
    session: Session,
    world: World,
    notify: FakeNotify,
    database_url: str,
    tmp_path: Any,
) -> None:
    people = world.standard()
    people["alice"].mobile = ALICE_MOBILE
    people["alice"].sms_opt_out = True  # chose email only on the survey page
    people["chloe"].mobile = "+447700900456"
    session.add_all([people["alice"], people["chloe"]])
    session.commit()
    # Chloé has a number, but this partnership texts only no-show notices.
    policy = {"sms_messages": ["no-show-delegate"]}
    settings = notify_settings(database_url, tmp_path, notify, policy=policy)
    timeline = up_to_the_reminders(engine, settings, **policy)
    timeline.tick("2026-03-16 08:00")
    assert sent_to(notify, "sms") == []
    reminders = timeline.rows(template="survey-reminder")
    assert {row.channel for row in reminders} == {Channel.EMAIL}
    assert {row.state for row in reminders} == {OutboxState.SENT}


def test_a_number_notify_refuses_is_marked_and_the_reminder_goes_by_email(
    engine: Engine,
    session: Session,
    world: World,
    notify: FakeNotify,
    database_url: str,
    tmp_path: Any,
) -> None:
    people = world.standard()
    people["alice"].mobile = "+12025550123"  # not a UK mobile: Notify refuses it
    session.add(people["alice"])
    session.commit()
    settings = notify_settings(database_url, tmp_path, notify)
    timeline = up_to_the_reminders(engine, settings)
    timeline.tick("2026-03-16 08:00")

    assert notify.refusals == [(400, "ValidationError: phone_number Not a UK mobile number")]
    [alice_reminder] = [
        row
        for row in timeline.rows(template="survey-reminder")
        if row.person_id == people["alice"].id
    ]
    assert alice_reminder.channel == Channel.EMAIL and alice_reminder.state == OutboxState.SENT
    assert "Not a UK mobile number" in (alice_reminder.last_error or "")
    with Session(engine) as check:
        alice = check.exec(select(Person).where(Person.id == people["alice"].id)).one()
    assert alice.sms_status == Deliverability.UNUSABLE
    assert alice.email_status == Deliverability.OK
