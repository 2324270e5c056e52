"""An export's bytes as lines of text: its encoding, its delimiter, and the problems it can have.

Exports come as CSV UTF-8 (with or without a byte-order mark), and sometimes as Excel's
"Unicode text" (UTF-16 with a byte-order mark, tab-separated), which is read too. Anything else
(UTF-16 without a mark, Latin-1 or Windows-1252, a workbook) is named, with what to do.
"""

from __future__ import annotations

import codecs
import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SAVE_AS = "save the export as CSV UTF-8 and import it again"


@dataclass(frozen=True)
class Problem:
    line: int
    column: str | None
    message: str

    def describe(self, filename: str) -> str:
        where = f"{filename}, line {self.line}"
        if self.column:
            where += f", column {self.column}"
        return f"{where}: {self.message}"


class ImportFailed(Exception):
    """The file was not imported; ``problems`` says every reason."""

    def __init__(self, problems: list[Problem]):
        super().__init__(f"{len(problems)} problem(s)")
        self.problems = problems


def _refuse(line: int, message: str) -> ImportFailed:
    return ImportFailed([Problem(line, None, message)])


def export_lines(source: bytes | Path) -> tuple[Iterator[str], type[csv.Dialect]]:
    """The export's lines as text, and its CSV dialect; ``ImportFailed`` for a file that is not.

    A big file of CSV UTF-8 is read a line at a time as the lines are reached; anything else
    (a small file, UTF-16, old Mac line ends) is read whole first.
    """
    if isinstance(source, Path):
        with source.open("rb") as handle:
            head = handle.read(_HEAD)
        plain = not head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE, b"PK\x03\x04"))
        if len(head) < _HEAD or not plain or _looks_utf16(head[:4096]) or b"\n" not in head:
            source = source.read_bytes()
        else:
            bom = head.startswith(codecs.BOM_UTF8)
            first = head[3 if bom else 0 : head.index(b"\n")]
            return _file_lines(source, bom), _dialect(next(decoded_lines(first), ""))
    data, dialect = prepared(source)
    return decoded_lines(data), dialect


_HEAD = 1 << 16


def _file_lines(path: Path, bom: bool) -> Iterator[str]:
    """Each line of a CSV UTF-8 file, decoded a block at a time; should a block not be UTF-8,
    the file is read again from the line reached, a line at a time, to say where."""
    given = 0
    try:
        # Lines end at "\n" alone, as they are counted below and by a text editor.
        with path.open(encoding="utf-8-sig" if bom else "utf-8", newline="\n") as handle:
            for line in handle:
                yield line
                given += 1
    except UnicodeDecodeError:
        yield from _checked_lines(path, bom, given)


def _checked_lines(path: Path, bom: bool, skip: int) -> Iterator[str]:
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, 1):
            if number <= skip:
                continue
            line = raw[3:] if number == 1 and bom else raw
            try:
                yield line.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise _refuse(number, _not_utf8(line, exc.start)) from None


def prepared(data: bytes) -> tuple[bytes, type[csv.Dialect]]:
    """The export as UTF-8 bytes and its CSV dialect; ``ImportFailed`` for a file that is not."""
    data = utf8(data)
    if not data.strip():
        raise _refuse(1, "the file is empty; expected a header row and bookings")
    end = data.find(b"\n")
    first = next(decoded_lines(data[: end if end >= 0 else len(data)]), "")
    return data, _dialect(first)


def utf8(data: bytes) -> bytes:
    """The bytes as UTF-8 without a byte-order mark (not yet checked line by line)."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            data = data.decode("utf-16").encode("utf-8")
        except UnicodeError:
            raise _refuse(
                1, f"the file starts as UTF-16 but is not valid UTF-16; {SAVE_AS}"
            ) from None
    elif data.startswith(b"PK\x03\x04"):
        raise _refuse(1, f"the file is an Excel workbook (or another zip file), not CSV; {SAVE_AS}")
    elif _looks_utf16(data[:4096]):
        raise _refuse(
            1, f"the file looks like UTF-16 without a byte-order mark, not UTF-8; {SAVE_AS}"
        )
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    return data


def _looks_utf16(start: bytes) -> bool:
    """UTF-16 text of Latin letters is every other byte zero; UTF-8 text has no zero bytes."""
    if len(start) < 4:
        return False
    even, odd = start[0::2].count(0), start[1::2].count(0)
    return max(even, odd) >= len(start) // 4


def decoded_lines(data: bytes) -> Iterator[str]:
    """Each line of UTF-8 ``data`` with its line end, decoded as it is reached.

    A line that is not UTF-8 stops the import with where it is and what the file seems to be.
    """
    end_of_line = b"\n" if b"\n" in data[:65536] or b"\r" not in data[:65536] else b"\r"
    start, number = 0, 1
    size = len(data)
    while start < size:
        end = data.find(end_of_line, start)
        end = size if end < 0 else end + 1
        raw = data[start:end]
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _refuse(number, _not_utf8(raw, exc.start)) from None
        start, number = end, number + 1


def _not_utf8(raw: bytes, at: int) -> str:
    column = len(raw[:at].decode("utf-8", errors="replace")) + 1
    byte = raw[at]
    try:
        shown = raw[at : at + 1].decode("cp1252")
        seems = f"it looks like Latin-1 or Windows-1252, where that byte is {shown!r}"
    except UnicodeDecodeError:
        seems = "its encoding is not one Evalbot reads"
    return f"the file is not UTF-8 (byte 0x{byte:02x} at character {column}): {seems}; {SAVE_AS}"


def _decode(data: bytes) -> str:
    """A whole small file as text (the register files use this), with the same refusals."""
    return "".join(decoded_lines(utf8(data)))


def _dialect(text: str) -> type[csv.Dialect]:
    first = text.splitlines()[0] if text else ""
    if first.count(",") == 0 and (first.count(";") or first.count("\t")):
        return _Semicolon if first.count(";") >= first.count("\t") else csv.excel_tab
    return csv.excel


class _Semicolon(csv.excel):
    delimiter = ";"


def _header_key(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", name.strip().lower().lstrip("\ufeff"))
