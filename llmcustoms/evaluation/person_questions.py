"""Questions written by a person: the check the tool's own score must agree with.

The tool's held-out questions come from its own generator; a person asks in other words, and about
what matters to them. ``llmcustoms eval RUN --questions FILE.jsonl`` asks such questions of the base
and the tuned model (closed book) and, where a line names its source file, of the base model with
that file in its prompt (open book). The result sits beside the tool's own score, with the gap
between the two, so a user can see how far the tool's number can be trusted on their documents.

A line is ``{"q": "…", "a": ["…", …]}`` (any of the answers is right) or, as in this project's
benchmarks, ``{"question": "…", "key": "…", "source": "file.txt"}``. These questions are only ever
asked, never trained on.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmcustoms.errors import InputError
from llmcustoms.evaluation.knowledge import KnowledgeReport, generate_answers
from llmcustoms.evaluation.scoring import is_correct

#: Characters of a source file put in the open-book prompt, around the answer's first mention.
OPEN_BOOK_CHARS = 3000


@dataclass(frozen=True)
class PersonQuestion:
    """One question a person wrote, the answers that count as right, and the file it is about."""

    question: str
    answers: tuple[str, ...]
    source: str = ""


def load_questions(path: str | os.PathLike[str]) -> list[PersonQuestion]:
    """The questions of a JSONL file; a bad line is named by its number (InputError)."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise InputError(f"No question file at {file}: give a .jsonl file with one "
                         '{"q": "…", "a": ["…"]} a line.')
    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"Could not read the question file {file}: {error}.") from None
    questions: list[PersonQuestion] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as error:
            raise InputError(f"{file}, line {number}: not JSON ({error.msg}).") from None
        if not isinstance(item, dict):
            raise InputError(f"{file}, line {number}: expected an object with \"q\" and \"a\".")
        question = item.get("q", item.get("question"))
        answers = item.get("a", item.get("key"))
        if isinstance(answers, str):
            answers = [answers]
        if not isinstance(question, str) or not question.strip():
            raise InputError(f"{file}, line {number}: no question (\"q\").")
        if not isinstance(answers, list) or not [a for a in answers if isinstance(a, str) and a.strip()]:
            raise InputError(f"{file}, line {number}: no answer (\"a\": a list of the answers that count as right).")
        questions.append(PersonQuestion(question=question.strip(),
                                        answers=tuple(a.strip() for a in answers if isinstance(a, str) and a.strip()),
                                        source=str(item.get("source") or "")))
    if not questions:
        raise InputError(f"The question file {file} has no questions.")
    return questions


def source_passage(question: PersonQuestion, data_path: str | os.PathLike[str] | None) -> str | None:
    """The question's source file (its part around the first answer's mention, when long), or None."""
    if not question.source or data_path is None:
        return None
    root = Path(data_path)
    file = root / question.source if root.is_dir() else root
    try:
        text = file.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    if len(text) <= OPEN_BOOK_CHARS:
        return text
    at = max(0, text.casefold().find(question.answers[0].casefold()))
    start = max(0, min(at - OPEN_BOOK_CHARS // 2, len(text) - OPEN_BOOK_CHARS))
    return text[start: start + OPEN_BOOK_CHARS]


def right(answer: str, question: PersonQuestion) -> bool:
    """True when any of the question's answers is found in ``answer`` (``scoring.is_correct``)."""
    return any(is_correct(answer, key) for key in question.answers)


def score_person_questions(model: Any, tokenizer: Any, questions: Sequence[PersonQuestion],
                           data_path: str | os.PathLike[str] | None = None,
                           progress: Callable[[str, int, int], None] | None = None) -> KnowledgeReport:
    """Ask ``questions`` of the base and the tuned model (closed book) and of the base model with the
    question's source file in its prompt (open book, only for questions that name one)."""
    started = time.time()
    has_adapter = hasattr(model, "disable_adapter")

    def asked(condition: str, prompts: list[str]) -> list[str]:
        step = (lambda done, total: progress(condition, done, total)) if progress else None
        off = condition != "tuned" and has_adapter
        with model.disable_adapter() if off else contextlib.nullcontext():
            return generate_answers(model, tokenizer, prompts, progress=step)

    plain = [q.question for q in questions]
    answers = {"base": asked("base", plain), "tuned": asked("tuned", plain)}
    passages = [source_passage(q, data_path) for q in questions]
    with_book = [i for i, p in enumerate(passages) if p is not None]
    if with_book:
        said = asked("open_book", [f"Answer the question using this passage.\n\nPassage: {passages[i]}\n\n"
                                   f"Question: {questions[i].question}" for i in with_book])
        answers["open_book"] = [""] * len(questions)
        for i, text in zip(with_book, said, strict=True):
            answers["open_book"][i] = text
    rows: list[dict[str, Any]] = []
    for i, question in enumerate(questions):
        row: dict[str, Any] = {"question": question.question, "span": " | ".join(question.answers),
                               "source": question.source}
        for condition, said_all in answers.items():
            if condition == "open_book" and passages[i] is None:
                continue
            row[condition] = said_all[i]
            row[f"{condition}_correct"] = right(said_all[i], question)
        rows.append(row)

    def share(condition: str) -> float | None:
        asked_rows = [r for r in rows if f"{condition}_correct" in r]
        return sum(1 for r in asked_rows if r[f"{condition}_correct"]) / len(asked_rows) if asked_rows else None

    report = KnowledgeReport(questions=len(rows), base=share("base"), tuned=share("tuned"),
                             open_book=share("open_book"), rows=rows, seconds=time.time() - started)
    known = round((report.tuned or 0) * report.questions)
    report.message = f"answers {known} of {report.questions} of your questions"
    return report


def compared(tool: KnowledgeReport, person: KnowledgeReport) -> str:
    """One sentence: the tool's own score beside the person-written one, and what the gap means."""
    if tool.tuned is None or person.tuned is None:
        return ""
    gap = round(100 * (tool.tuned - person.tuned))
    text = (f"Your {person.questions} questions: tuned {round(100 * person.tuned)} % against the tool's own "
            f"{round(100 * tool.tuned)} % on its held-out questions")
    if abs(gap) <= 10:
        return text + f" (within {abs(gap)} points: the tool's score is a fair guide for these documents)."
    if gap > 0:
        return text + f": the tool's score reads {gap} points higher than your questions get; trust yours."
    return text + f": your questions get {-gap} points more than the tool's score says."
