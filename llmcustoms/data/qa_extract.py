"""Explicit question/answer pairs written in the text itself.

Recognised (case-insensitive, at the start of a line, optionally numbered, bulleted or in bold):

    Question: How tall is the tower?        Q: How tall is the tower?
    Answer: 212 metres.                     A: 212 metres.

and the one-line form ``Q: How tall is it? A: 212 metres.``. A question may continue over
several lines until its answer marker; an answer continues over the following lines until a
blank line or the next question. Everything that is not a pair is returned as prose, with
paragraph breaks kept, for chunking and the generator.
"""

from __future__ import annotations

import re
from typing import NamedTuple

_PREFIX = r"^[ \t]*(?:[-*>+][ \t]*|\#+[ \t]*|\d+[.)][ \t]*)?[*_]*"
_SUFFIX = r"[ \t]*\d*[ \t]*[*_]*[ \t]*[:：][*_]*[ \t]*(?P<rest>.*)$"
_QUESTION = re.compile(_PREFIX + r"(?:question|q)" + _SUFFIX, re.IGNORECASE)
_ANSWER = re.compile(_PREFIX + r"(?:answer|a)" + _SUFFIX, re.IGNORECASE)
# "Q: How tall is it? A: 212 metres." — the answer marker must follow the end of a sentence.
_INLINE_ANSWER = re.compile(r"(?<=[?.!])[ \t]+[*_]*(?:answer|a)[*_]*[ \t]*[:：][*_]*[ \t]*", re.IGNORECASE)
# Cheap pre-check so prose-only text (the common case, and huge files) skips the line parser.
_ANY_QUESTION = re.compile(r"(?im)^[ \t]*(?:[-*>+][ \t]*|\#+[ \t]*|\d+[.)][ \t]*)?[*_]*(?:question|q)[ \t]*\d*"
                           r"[ \t]*[*_]*[ \t]*[:：]")


class QAPair(NamedTuple):
    """One explicit pair, whitespace-trimmed."""

    question: str
    answer: str


def _clean(lines: list[str]) -> str:
    return "\n".join(line.rstrip() for line in lines).strip()


def extract_qa(text: str) -> tuple[list[QAPair], str]:
    """Split ``text`` into explicit Q&A pairs and the remaining prose.

    Returns ``(pairs, prose)``; ``prose`` keeps the non-Q&A text in order, with a blank line where
    a pair was taken out. Incomplete pairs (a question with no answer) stay in the prose.
    """
    if not _ANY_QUESTION.search(text):
        return [], text
    lines = text.split("\n")
    pairs: list[QAPair] = []
    prose: list[str] = []
    i, n = 0, len(lines)
    while i < n:
        match = _QUESTION.match(lines[i])
        if not match:
            prose.append(lines[i])
            i += 1
            continue
        pair, end = _read_pair(lines, i, match.group("rest"))
        if pair is None:
            prose.append(lines[i])
            i += 1
            continue
        pairs.append(pair)
        prose.append("")  # keep paragraphs apart where the pair was
        i = end
    remaining = re.sub(r"\n{3,}", "\n\n", "\n".join(prose)).strip("\n")
    return pairs, remaining


def _read_pair(lines: list[str], start: int, first: str) -> tuple[QAPair | None, int]:
    """Read a pair whose question marker is on line ``start``; return (pair or None, next line index)."""
    inline = _INLINE_ANSWER.search(first)
    if inline:
        question_lines = [first[: inline.start()]]
        answer_lines = [first[inline.end():]]
        i = start + 1
    else:
        question_lines = [first]
        i = start + 1
        answer_lines = []
        while i < len(lines):
            line = lines[i]
            answer_match = _ANSWER.match(line)
            if answer_match:
                answer_lines = [answer_match.group("rest")]
                i += 1
                break
            if not line.strip() or _QUESTION.match(line):
                return None, start + 1  # a question without an answer is prose
            question_lines.append(line)
            i += 1
        else:
            return None, start + 1
    # The answer runs on until a blank line or the next question.
    while i < len(lines) and lines[i].strip() and not _QUESTION.match(lines[i]):
        answer_lines.append(lines[i])
        i += 1
    question = " ".join(part.strip() for part in question_lines if part.strip())
    answer = _clean(answer_lines)
    if not question or not answer:
        return None, start + 1
    return QAPair(question, answer), i
