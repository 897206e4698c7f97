"""What reading one document gives: its plain text, how it was divided, and what was left out.

No heavy imports here: the records cross the boundary between the reading worker process and the
folder check (pickled), and the folder check must stay light.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

#: A word: a run of letters or digits in any script.
_WORD = re.compile(r"[^\W_]+")


def count_words(text: str) -> int:
    """Words in ``text`` (runs of letters or digits, any script)."""
    return sum(1 for _ in _WORD.finditer(text))


@dataclass
class ExtractedText:
    """One document read as plain text.

    ``units`` counts its ``unit`` ('pages', 'sections', 'chapters'); ``dropped`` says what was left out
    on purpose ('12 repeated header lines'); ``notes`` says what could not be read but did not stop the
    file ('page 7 has no text layer (a scanned image)').
    """

    text: str
    format: str
    units: int = 0
    unit: str = "sections"
    dropped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def words(self) -> int:
        """Words in the extracted text."""
        return count_words(self.text)


class ExtractError(Exception):
    """A document that cannot be read at all. The message is the end of a sentence that starts with
    the file's name: "is an encrypted PDF (it needs a password); skipped it."."""


_QUESTION = re.compile(r"^(?:question|q)\s*\d*\s*:", re.IGNORECASE)
_ANSWER = re.compile(r"^(?:answer|a)\s*\d*\s*:", re.IGNORECASE)


def paragraphs_text(paragraphs: list[str]) -> str:
    """Paragraphs joined by blank lines, except that a "Question: …" paragraph and the "Answer: …" after it
    stay on neighbouring lines, as written Q&A is in a .txt file (``data.qa_extract`` reads them so)."""
    out: list[str] = []
    for index, paragraph in enumerate(paragraphs):
        if index and _ANSWER.match(paragraph) and _QUESTION.match(paragraphs[index - 1]):
            out.append("\n")
        elif index:
            out.append("\n\n")
        out.append(paragraph)
    return "".join(out)


def plural(count: int, word: str, many: str | None = None) -> str:
    """'1 page', '3 pages' (``many`` for irregular plurals)."""
    return f"{count:,} {word if count == 1 else (many or word + 's')}"
