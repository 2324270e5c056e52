"""A session's or a course's responses (``surveys.responses``) as one CSV: a ``section`` column
says which part of the page each row is (responses, scale, change pre to end, free text)."""

from __future__ import annotations

import io

from surveys import csv_safe
from surveys.responses import Responses

CSV_COLUMNS = (
    "section",
    "stage",
    "question",
    "learning_outcome",
    "n",
    "mean",
    "distribution",
    "mean_before",
    "mean_after",
    "mean_change",
    "session",
    "answer",
    "answered_at",
)


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def responses_csv(result: Responses) -> str:
    """The page's figures and answers as one CSV: a ``section`` column says which each row is."""
    buffer = io.StringIO()
    writer = csv_safe.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    blank = dict.fromkeys(CSV_COLUMNS, "")
    for stage in result.stages:
        writer.writerow(
            (blank | {
                "section": "responses",
                "stage": stage.stage,
                "question": "sent / started / finished",
                "n": stage.sent,
                "distribution": f"{stage.sent} / {stage.started} / {stage.finished}",
            }).values()
        )  # fmt: skip
    for scale in result.scales:
        writer.writerow(
            (blank | {
                "section": "scale",
                "stage": scale.stage,
                "question": scale.question,
                "learning_outcome": scale.outcome or "",
                "n": scale.answers,
                "mean": _number(scale.mean),
                "distribution": "; ".join(f"{value}: {count}" for value, count in scale.counts),
            }).values()
        )  # fmt: skip
    for change in result.change:
        writer.writerow(
            (blank | {
                "section": "change pre to end",
                "question": change.measure,
                "learning_outcome": change.outcome or "all outcomes",
                "n": change.pairs,
                "mean_before": _number(change.mean_before),
                "mean_after": _number(change.mean_after),
                "mean_change": _number(change.mean_change),
            }).values()
        )  # fmt: skip
    for text in result.texts:
        writer.writerow(
            (blank | {
                "section": "free text",
                "stage": text.stage,
                "question": text.question,
                "learning_outcome": text.outcome or "",
                "session": text.session_ref,
                "answer": text.text,
                "answered_at": text.answered_at.isoformat(),
            }).values()
        )  # fmt: skip
    return buffer.getvalue()
