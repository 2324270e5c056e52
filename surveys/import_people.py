"""People named by an export: delegates, their managers and trainers, matched by email.

Tens of thousands in a big export, so they are read and written with Core statements
(``surveys.bulk``) and kept, between chunks, as a small record of what is stored.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any

from pydantic_core import PydanticUndefined
from sqlmodel import Session, SQLModel, select

from surveys.booking_csv import Row
from surveys.bulk import insert_new, select_in, update_rows
from surveys.models import Person

PERSON = Person.__table__  # type: ignore[attr-defined]


@dataclass
class Tally:
    created: int = 0
    updated: int = 0
    unchanged: int = 0


@dataclass(slots=True)
class _Person:
    """A person as stored (or about to be), by email."""

    id: int | None
    name: str
    agency_id: int | None
    role: str | None
    mobile: str | None
    outcome: str = "unchanged"  # or created, updated: what this import did
    named: bool = False  # whether this import has mentioned them


class People:
    """Everyone an import has named so far, by email, as stored (or about to be)."""

    def __init__(self, session: Session, now: datetime):
        self.session, self.now = session, now
        self.known: dict[str, _Person] = {}
        self._defaults = defaults(Person)
        self.fresh = session.execute(select(PERSON.c.id).limit(1)).first() is None

    def tally(self) -> Tally:
        counts = Counter(p.outcome for p in self.known.values() if p.named)
        return Tally(counts["created"], counts["updated"], counts["unchanged"])

    # People --------------------------------------------------------------------------------------

    def take(self, rows: list[Row], agencies: Mapping[str, int | None]) -> None:
        """Note everyone the rows name; insert the new, update the changed."""
        known = self.known
        if not self.fresh:
            emails = {r.delegate_email for r in rows} | {r.manager_email for r in rows}
            emails |= {r.trainer_email for r in rows if r.trainer_email}
            self._load_people(sorted(emails - known.keys()))
        new: dict[str, _Person] = {}
        changed: dict[str, _Person] = {}
        last: dict[str, tuple[str, int | None, str | None]] = {}  # each manager's last mention
        for row in rows:
            agency_id = agencies[row.agency_key]
            email = row.delegate_email
            last.pop(email, None)
            if email not in known:  # the most common case: someone new, named once
                known[email] = new[email] = _Person(
                    None,
                    row.delegate_name,
                    agency_id,
                    row.role,
                    row.delegate_mobile,
                    "created",
                    True,
                )
            else:
                self._person(
                    new, changed, email, row.delegate_name, agency_id, None, row.role,
                    row.delegate_mobile,
                )  # fmt: skip
            # A manager is named on each of their delegates' rows, mostly the same way.
            mention = (row.manager_name, agency_id, row.manager_mobile)
            if last.get(row.manager_email) != mention:
                last[row.manager_email] = mention
                self._person(
                    new, changed, row.manager_email, row.manager_name, None, agency_id,
                    None, row.manager_mobile,
                )  # fmt: skip
            if row.trainer_email:
                trainer = known.get(row.trainer_email)
                name = row.trainer_name
                if name is None and (
                    trainer is None or trainer.name == _made_up(row.trainer_email)
                ):
                    name = ""  # named by an earlier import after the address: addressed neutrally
                last.pop(row.trainer_email, None)
                self._person(new, changed, row.trainer_email, name, None, None, None, None)
        self._insert(new)
        update_rows(
            self.session,
            PERSON,
            [
                {
                    "id": person.id,
                    "name": person.name,
                    "agency_id": person.agency_id,
                    "role": person.role,
                    "mobile": person.mobile,
                    "updated_at": self.now,
                }
                for person in changed.values()
                if person.id is not None
            ],
        )

    def _insert(self, new: dict[str, _Person]) -> None:
        ids = insert_new(
            self.session,
            PERSON,
            "email",
            ("email", "name", "agency_id", "role", "mobile"),
            [(email, n.name, n.agency_id, n.role, n.mobile) for email, n in new.items()],
            {**self._defaults, "created_at": self.now, "updated_at": self.now},
        )
        for email, person in new.items():
            person.id = ids[email]

    def _load_people(self, emails: list[str]) -> None:
        if self.fresh:
            return  # nobody before this import, and everyone it wrote is known
        query = "SELECT id, email, name, agency_id, role, mobile FROM person WHERE email"
        known = self.known
        for id_, email, name, agency_id, role, mobile in select_in(self.session, query, emails):
            known[email] = _Person(id_, name, agency_id, role, mobile)

    def _person(
        self,
        new: dict[str, _Person],
        changed: dict[str, _Person],
        email: str,
        name: str | None,
        agency_id: int | None,
        fallback_agency_id: int | None,
        role: str | None,
        mobile: str | None,
    ) -> None:
        """Note one mention of a person; later mentions win, except a trainer's missing name."""
        known = self.known.get(email)
        if known is None:
            known = _Person(None, name or "", agency_id or fallback_agency_id, role, mobile)
            known.outcome, known.named = "created", True
            self.known[email] = new[email] = known
            return
        known.named = True
        updates: dict[str, Any] = {}
        if name is not None and known.name != name:
            updates["name"] = name
        if agency_id is not None and known.agency_id != agency_id:
            updates["agency_id"] = agency_id
        elif known.agency_id is None and fallback_agency_id is not None:
            updates["agency_id"] = fallback_agency_id
        if role and known.role != role:
            updates["role"] = role
        if mobile and known.mobile != mobile:
            updates["mobile"] = mobile
        for field, value in updates.items():
            setattr(known, field, value)
        if updates and email not in new:
            changed[email] = known
            if known.outcome == "unchanged":
                known.outcome = "updated"


def defaults(model: type[SQLModel]) -> dict[str, Any]:
    """The values a model's constructor would fill in, for rows written in bulk (a column
    left out of an INSERT is NULL, so those that would be None are left out)."""
    values: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        if name == "id":
            continue
        if info.default_factory is not None:
            values[name] = info.default_factory()  # type: ignore[call-arg]
        elif info.default is not PydanticUndefined:
            values[name] = info.default
    return {
        name: v.value if isinstance(v, Enum) else v for name, v in values.items() if v is not None
    }


def _made_up(email: str) -> str:
    """The name an earlier import gave a trainer it knew only by email."""
    return email.split("@")[0]


def chunks(values: list[Any], size: int = 500) -> Iterable[list[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]
