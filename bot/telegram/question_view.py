"""How a survey question looks in chat: its text (HTML, everything from definitions and answers
escaped) and its buttons (the answers, ticked when given, then Back / Skip / Keep)."""

from __future__ import annotations

from bot.telegram import keyboards as kb
from bot.telegram.html import escape
from surveys.engine import QuestionView, Survey


def question_text(survey: Survey, view: QuestionView, *, note: str | None = None) -> str:
    """The message that asks one question (HTML, every definition and answer text escaped)."""
    lines = [f"<b>{escape(survey.title)}</b>: {escape(survey.course_title)}"]
    if view.position == 1 and not survey.answers and survey.intro:
        lines.append(escape(survey.intro))
    lines += [
        f"Question {view.position} of {view.total}",
        "",
        f"<b>{escape(view.text)}</b>",
    ]
    if view.hint:
        lines.append(f"<i>{escape(view.hint)}</i>")
    if view.kind == "scale" and (view.min_label or view.max_label) and view.options:
        low, high = view.options[0][1], view.options[-1][1]
        ends = []
        if view.min_label:
            ends.append(f"{escape(low)} = {escape(view.min_label)}")
        if view.max_label:
            ends.append(f"{escape(high)} = {escape(view.max_label)}")
        lines.append(" · ".join(ends))
    if view.kind == "text":
        limit = f" (up to {view.max_length:,} characters)" if view.max_length else ""
        lines.append(f"Type your answer and send it{limit}.")
    elif view.kind == "multiple":
        lines.append("Choose all that apply, then tap Done.")
    if view.answered:
        lines += ["", f"Your answer: {escape(shown_answer(view))}"]
        if view.kind == "text":
            lines.append("Type a new answer to change it, or tap Keep.")
    if view.optional:
        lines.append("<i>You may skip this question.</i>")
    if note:
        lines += ["", f"<b>{escape(note)}</b>"]
    return "\n".join(lines)


def shown_answer(view: QuestionView) -> str:
    if view.answer is None or view.answer == []:
        return "skipped"
    labels = dict(view.options)
    if isinstance(view.answer, list):
        return ", ".join(labels.get(value, value) for value in view.answer)
    return labels.get(view.answer, view.answer)


def question_buttons(
    invitation_id: int, view: QuestionView, *, mask: str | None = None
) -> list[list[kb.Button]]:
    """The answer buttons of a question, then Back / Skip / Keep."""
    ref = kb.ref(view.key)
    rows: list[list[kb.Button]] = []
    given = view.answer if view.answered else None
    if view.kind in ("scale", "yesno"):
        rows.append(
            [
                _option(_tick(label, value == given), invitation_id, ref, index, value)
                for index, (value, label) in enumerate(view.options)
            ]
        )
    elif view.kind == "single":
        rows += [
            [_option(_tick(label, value == given), invitation_id, ref, index, value)]
            for index, (value, label) in enumerate(view.options)
        ]
    elif view.kind == "multiple":
        if mask is None:
            picked = set(given) if isinstance(given, list) else set()
            selected = {i for i, (value, _) in enumerate(view.options) if value in picked}
        else:
            selected = kb.chosen(mask)
        for index, (_, label) in enumerate(view.options):
            toggled = selected ^ {index}
            box = "☑" if index in selected else "☐"
            rows.append([kb.button(f"{box} {label}", "m", invitation_id, ref, kb.mask_of(toggled))])
        rows.append([kb.button("Done", "d", invitation_id, ref, kb.mask_of(selected))])
    navigation = []
    if view.position > 1:
        navigation.append(kb.button("« Back", "b", invitation_id, ref))
    if view.optional:
        navigation.append(kb.button("Skip", "k", invitation_id, ref))
    if view.answered:
        navigation.append(kb.button("Keep »", "n", invitation_id, ref))
    rows.append(navigation)
    return rows


def _option(label: str, invitation_id: int, ref: str, index: int, value: str) -> kb.Button:
    """An answer button: it carries the option's value when that fits, else its position."""
    if kb.SEP not in value:
        try:
            return kb.button(label, "v", invitation_id, ref, value)
        except kb.CallbackTooLong:
            pass
    return kb.button(label, "a", invitation_id, ref, index)


def _tick(label: str, chosen: bool) -> str:
    return f"✓ {label}" if chosen else label
