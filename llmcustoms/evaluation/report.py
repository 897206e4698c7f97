"""What ``llmcustoms eval`` found, in one typed object: learnt, kept, and how it compares with a person.

- ``knowledge``: the tool's own held-out questions (base / tuned / open book);
- ``person``: questions written by a person (``eval --questions FILE``), when given;
- ``general``: general knowledge and general-text perplexity, base against tuned ("kept").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from llmcustoms.evaluation.general import GeneralReport, general_line
from llmcustoms.evaluation.knowledge import KnowledgeReport
from llmcustoms.evaluation.person_questions import compared

#: How the score is measured, in one line for every place that shows it.
HOW_MEASURED = ("Learnt: held-out facts asked in a question family never trained on, right when the answer holds "
                "the fact's key words. Kept: common-knowledge questions the base model got right, asked again. "
                "Open book: the base model with the passage in its prompt.")


@dataclass
class EvalReport:
    """The three parts of an evaluation; each may be missing (no facts, no question file, no general check)."""

    knowledge: KnowledgeReport
    person: KnowledgeReport | None = None
    general: GeneralReport | None = None
    questions_file: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The JSON form of ``eval --json``: the knowledge report's keys, plus ``person_questions``,
        ``general`` and its two headline numbers ``general_kept`` and ``general_perplexity_change``."""
        data = self.knowledge.to_dict()
        data["person_questions"] = None if self.person is None else {
            **self.person.to_dict(), "file": self.questions_file,
            "gap": None if self.person.tuned is None or self.knowledge.tuned is None
            else round(self.knowledge.tuned - self.person.tuned, 3)}
        data["general"] = None if self.general is None else self.general.to_dict()
        data["general_kept"] = None if self.general is None else self.general.general_kept
        data["general_perplexity_change"] = None if self.general is None else self.general.general_perplexity_change
        return data

    def lines(self) -> list[str]:
        """The sentences under the table: the person comparison and what was kept."""
        out = []
        if self.person is not None:
            out.append(compared(self.knowledge, self.person) or f"Your questions: {self.person.message}.")
        if self.general is not None:
            out.append(general_line(self.general) + ".")
        return out
