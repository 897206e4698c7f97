"""How well the support mark (issue 24) agrees with right and wrong, for ``bench_knowledge.py`` to report.

``support_agreement(run_dir, items)`` takes ``(question, answer, correct)`` triples (the answers a run
gave to person-written questions and whether each was right), asks the support verdict of the run's own
documents about each, and returns the agreement (share where "supported" == right), the precision and
recall of "supported" (taking "right" as the truth) and how often a wrong answer is marked supported.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

from llmcustoms.support.verdict import support_for_run


@dataclass(frozen=True)
class SupportAgreement:
    """The support mark against right/wrong over ``answers`` answers (rates None when undefined)."""

    answers: int
    agreement: float | None
    precision: float | None  # of the answers marked supported, the share that were right
    recall: float | None  # of the right answers, the share marked supported
    wrong_but_supported: float | None  # of the wrong answers, the share marked supported (the costly mistake)
    supported: int
    right: int

    def format_row(self, name: str = "") -> str:
        """One line for RESULTS.md's table: name | answers | agreement | precision | recall | wrong-but-supported."""
        pct = (lambda v: "–" if v is None else f"{100 * v:.0f} %")  # noqa: E731
        return (f"| {name} | {self.answers} | {pct(self.agreement)} | {pct(self.precision)} | {pct(self.recall)} "
                f"| {pct(self.wrong_but_supported)} |")


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def support_agreement(run_dir: str | os.PathLike[str], items: Iterable[tuple[str, str, bool]]) -> SupportAgreement:
    """The support verdict over run ``run_dir``'s documents for each ``(question, answer, correct)``, scored."""
    marks = [(support_for_run(os.fspath(run_dir), q, a).supported, bool(c)) for q, a, c in items]
    n = len(marks)
    both = sum(1 for s, c in marks if s and c)
    supported = sum(1 for s, _ in marks if s)
    right = sum(1 for _, c in marks if c)
    wrong_supported = sum(1 for s, c in marks if s and not c)
    return SupportAgreement(
        answers=n, agreement=_share(sum(1 for s, c in marks if s == c), n), precision=_share(both, supported),
        recall=_share(both, right), wrong_but_supported=_share(wrong_supported, n - right),
        supported=supported, right=right)
