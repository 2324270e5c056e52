"""Files that hold personal data, readable and writable by their owner alone from the start.

A file created with ``open()`` gets the process's umask (usually 644) and a later ``chmod``
leaves a moment when anyone on the machine may open it; these helpers create it with the
private mode in the same system call.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

FILE_MODE = 0o600
FOLDER_MODE = 0o700


def private_folder(path: Path) -> None:
    """Create ``path`` (and its parents) as a folder only its owner may open; an existing folder
    is left as it is, since its owner chose its mode."""
    if path.is_dir():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, FOLDER_MODE)


def create_private(path: Path) -> bool:
    """Create ``path`` empty and private if it does not exist; True when it was created."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return False
    os.close(descriptor)
    return True


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path``, created private (an existing file is made private first)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    try:
        os.fchmod(descriptor, FILE_MODE)
        view = memoryview(data)
        while view:
            view = view[os.write(descriptor, view) :]
    finally:
        os.close(descriptor)
