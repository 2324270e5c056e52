"""Erasure outside the database: the emails written to ``EVALBOT_MAIL_DIR``.

With no relay configured, every email is written to the mail folder as ``<Message-ID>.eml``
(``bot.channels.email.MailFolderChannel``): the files hold names and live personal links. When
people are erased, each file of a message to or about them goes, found by its Message-ID, and
so does any other file that names them (a manager's notice, say).
"""

from __future__ import annotations

import email
import email.policy
import re
from email.message import EmailMessage
from pathlib import Path

from sqlalchemy.engine import Engine

from surveys.db import compact
from surveys.scrub import Traces


def finish_erasure(engine: Engine, mail_dir: Path, traces: Traces) -> int:
    """Once an erasure is committed: compact the database so deleted content is really gone,
    and delete the written mail to or about the people; the number of files deleted."""
    compact(engine)
    return forget_in_mail_folder(mail_dir, traces)


def file_stem(message_id: str) -> str:
    """The file name (without ``.eml``) the mail folder gives a Message-ID."""
    local = message_id.strip("<>").partition("@")[0]
    return "".join(c if c.isalnum() or c in ".-_" else "_" for c in local)


def forget_in_mail_folder(folder: Path, traces: Traces) -> int:
    """Delete the written emails to or about the erased people; the number deleted."""
    if not folder.is_dir() or not traces.identity:
        return 0
    stems = {file_stem(message_id) for message_id in traces.message_ids}
    pattern = re.compile("|".join(re.escape(t) for t in traces.identity), re.IGNORECASE)
    deleted = 0
    for path in sorted(folder.iterdir()):
        if not path.is_file() or not path.name.endswith((".eml", ".eml.part")):
            continue
        stem = path.name.removesuffix(".part").removesuffix(".eml")
        if stem in stems or _names(path, pattern):
            path.unlink(missing_ok=True)
            deleted += 1
    return deleted


def _names(path: Path, pattern: re.Pattern[str]) -> bool:
    """Whether the email in ``path`` names one of the people, in its headers or any text part
    (decoded, so an encoded name or a quoted-printable body is read as the person would)."""
    try:
        data = path.read_bytes()
    except OSError:
        return False
    if pattern.search(data.decode("utf-8", "replace")):
        return True
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    texts = [str(value) for value in message.values()]
    for part in message.walk():
        if part.get_content_maintype() == "text":
            try:
                texts.append(str(part.get_content()))
            except (LookupError, ValueError):
                continue
    return any(pattern.search(text) for text in texts)
