"""Hostile exports: every one is imported or refused with located errors, never a traceback,
and a refused one leaves the database as it was, on SQLite and on PostgreSQL."""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from bot.cli import app
from surveys import db
from tests.import_mutations import BASE, HEADER, _encode, exports, judge, snapshot

EXAMPLES = int(os.environ.get("EVALBOT_FUZZ_EXAMPLES", "150"))


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path: Path, monkeypatch) -> Iterator[Engine]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'fuzz.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    engine = db.make_engine(url)
    db.upgrade(engine)
    monkeypatch.setenv("EVALBOT_DATABASE_URL", url)
    yield engine
    engine.dispose()


_runs = [0]


def run(tmp_path: Path, data: bytes):
    path = tmp_path / "export.csv"
    path.write_bytes(data)
    result = CliRunner().invoke(app, ["import", "bookings", str(path)])
    _runs[0] += 1
    if _runs[0] % 10 == 0:
        gc.collect()  # the commands' engines, and their PostgreSQL connections, go now and then
    return result


def with_cell(column: str, value: str) -> bytes:
    rows = [list(r) for r in BASE]
    rows[2][HEADER.index(column)] = value
    return _encode(rows)


KNOWN = {
    "superscript two places": (with_cell("max_places", "²"), "max_places"),
    "5,000-digit places": (with_cell("max_places", "7" * 5000), "max_places"),
    "30-digit places": (with_cell("min_places", "9" * 30), "min_places"),
    "3,000,000,000 places": (with_cell("max_places", "3000000000"), "max_places"),
    "year 1 with an offset": (with_cell("starts_at", "0001-01-01T00:00+01:00"), "starts_at"),
    "year 9999 with an offset": (with_cell("ends_at", "9999-12-31T23:59-05:00"), "ends_at"),
    "a field over 131,072 characters": (with_cell("venue", "v" * 131_073), "venue"),
    "a NUL byte": (with_cell("delegate_name", "Alice\x00Okafor"), "delegate_name"),
    "a name over 200 characters": (with_cell("manager_name", "M" * 201), "manager_name"),
    "an email over 254 characters": (
        with_cell("delegate_email", "a" * 250 + "@x.example"),
        "delegate_email",
    ),
    "a joining link over 500 characters": (
        with_cell("joining_link", "https://x.example/" + "a" * 500),
        "joining_link",
    ),
}


@pytest.mark.parametrize("case", list(KNOWN))
def test_each_export_that_once_crashed_is_a_located_error(database, tmp_path, case):
    data, column = KNOWN[case]
    before = snapshot(database)
    result = run(tmp_path, data)
    outcome = judge(result, before, snapshot(database))
    assert outcome.kind == "refused", (outcome, result.output[:500])
    assert f"export.csv, line 3, column {column}: " in result.output
    assert all(len(line) < 400 for line in result.output.splitlines()), result.output[:1000]


def test_files_in_other_encodings_are_named(tmp_path, database):
    text = _encode(BASE).decode()
    cases = {
        "UTF-16 without a byte-order mark": text.encode("utf-16-le"),
        "Latin-1 or Windows-1252, where that byte is 'é'": text.replace(
            "Civic Centre", "Café"
        ).encode("latin-1"),
    }
    for named, data in cases.items():
        result = run(tmp_path, data)
        assert result.exit_code == 1 and named in result.output, result.output
        assert "export.csv, line" in result.output
    # Excel's "Unicode text" (UTF-16 with a mark, tab-separated) is read as it is.
    tabbed = "\n".join("\t".join(row) for row in BASE) + "\n"
    result = run(tmp_path, tabbed.encode("utf-16"))
    assert result.exit_code == 0, result.output
    assert "Imported 4 booking rows" in result.output


@settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)
@given(data=exports())
def test_mutated_exports_are_imported_or_refused_never_a_traceback(database, tmp_path, data):
    before = snapshot(database)
    result = run(tmp_path, data)
    outcome = judge(result, before, snapshot(database))
    assert outcome.kind in ("imported", "refused"), outcome


def test_a_big_file_is_read_as_a_stream_with_the_same_checks(tmp_path, database):
    rows = [HEADER] + [
        [f"BK-{n}", *BASE[1][1:6], f"Delegate {n}", f"delegate{n}@riverside.example", *BASE[1][8:]]
        for n in range(600)
    ]
    data = "\ufeff".encode() + _encode(rows).replace(b"\n", b"\r\n")
    assert len(data) > 1 << 16  # past the first block read
    broken = data.replace(b"Delegate 500,", "Délégué 500,".encode("latin-1"))
    result = run(tmp_path, broken)
    assert result.exit_code == 1
    assert "export.csv, line 502: the file is not UTF-8 (byte 0xe9 at character 77)" in (
        result.output
    )
    result = run(tmp_path, data)
    assert result.exit_code == 0, result.output
    assert "Imported 600 booking rows" in result.output
