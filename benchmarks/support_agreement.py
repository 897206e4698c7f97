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
    return scored([(support_for_run(os.fspath(run_dir), q, a).supported, bool(c)) for q, a, c in items])


def scored(marks: list[tuple[bool, bool]]) -> SupportAgreement:
    """Agreement, precision, recall and wrong-but-supported of ``(supported, correct)`` pairs."""
    n = len(marks)
    both = sum(1 for s, c in marks if s and c)
    supported = sum(1 for s, _ in marks if s)
    right = sum(1 for _, c in marks if c)
    wrong_supported = sum(1 for s, c in marks if s and not c)
    return SupportAgreement(
        answers=n, agreement=_share(sum(1 for s, c in marks if s == c), n), precision=_share(both, supported),
        recall=_share(both, right), wrong_but_supported=_share(wrong_supported, n - right),
        supported=supported, right=right)


def main(argv: list[str]) -> int:
    """``python benchmarks/support_agreement.py RUNS_JSON ...``: the support mark of today's verdict over the
    stored runs of ``bench_knowledge.py`` (their run folders must still exist), pooled per folder and side,
    printed and written to RESULTS.md's "## Support mark" section."""
    import json
    from pathlib import Path

    from _common import ROOT, now, write_section

    pooled: dict[tuple[str, str], list[tuple[str, str, str, bool]]] = {}
    files = []
    for name in argv:
        path = Path(name)
        files.append(f"`{path.resolve().relative_to(ROOT) if path.resolve().is_relative_to(ROOT) else path}`")
        for run in json.loads(path.read_text()):
            if not Path(run["run_dir"]).is_dir() or not run.get("person"):
                print(f"skipped {run['run_dir']}: the run folder is gone")
                continue
            for side in ("tuned", "base"):
                pooled.setdefault((run["folder"].replace("benchmarks/knowledge_data/", ""), side), []).extend(
                    (run["run_dir"], row["question"], row[side], bool(row[f"{side}_correct"]))
                    for row in run["person"]["rows"])
    lines = ["| folder / answers of | answers | agreement | precision | recall | wrong but supported |",
             "|---|---|---|---|---|---|"]
    for (folder, side), rows in sorted(pooled.items()):
        total = scored([(support_for_run(run_dir, question, answer).supported, correct)
                        for run_dir, question, answer, correct in rows])
        lines.append(total.format_row(f"{folder} / {side} ({len({row[0] for row in rows})} runs)"))
    body = "\n".join([f"Written {now()} with today's verdict (`llmcustoms/support/verdict.py`) over the stored runs of "
                      f"{', '.join(files)}: each run's answers to the person-written questions, pooled per folder. "
                      "Agreement = \"supported\" equals right; precision = of the answers marked supported, the share "
                      "right; recall = of the right answers, the share marked supported; wrong but supported = of the "
                      "wrong answers, the share marked supported (goal ≤ 10 %, agreement ≥ 80 %).", "", *lines])
    write_section("## Support mark (issue 24)", body)
    print(body)
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
