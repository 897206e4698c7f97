"""``llmcustoms eval RUN``: the knowledge score of a finished run, asked afresh from its folder.

The base model and the run's adapter are loaded the plain PEFT way (``ChatSession``), and the run's
held-out questions (stored in run.json when it trained) are asked closed book to the base and the tuned
model, and open book to the base. The report replaces run.json's ``knowledge``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from llmcustoms.chat.session import ChatSession
from llmcustoms.errors import InputError
from llmcustoms.evaluation.judge import apply_judge
from llmcustoms.evaluation.knowledge import CONDITIONS, KnowledgeReport, score_knowledge
from llmcustoms.evaluation.split import Probe
from llmcustoms.runs.rundir import RunDir
from llmcustoms.runs.status import run_state, unfinished_sentence

if TYPE_CHECKING:
    from llmcustoms.evaluation.judge import Judge


def run_probes(run) -> list[Probe]:
    """The held-out questions recorded in run.json (InputError when the run recorded none)."""
    data = run.read()
    stored = data.get("knowledge_probes")
    if stored is None:
        message = (data.get("knowledge") or {}).get("message")
        raise InputError(f"Run {run.id} has no held-out questions to ask"
                         + (f": {message}" if message else " (it was trained before the knowledge score existed, "
                            "or its text had too few facts)."))
    return [Probe(**{k: p[k] for k in ("fact_id", "question", "reference", "span", "context", "trained_phrasings")})
            for p in stored]


def check_run(run_ref: str | os.PathLike[str], output_dir: str | None = None) -> RunDir:
    """The run ``run_ref`` if it can be evaluated now; else one sentence (InputError) before any model loads:
    no such run, a damaged run.json, a run still training (whose run.json its trainer writes), no held-out
    questions, no adapter or no base model."""
    run = RunDir.open(run_ref, root=output_dir)
    status = run_state(run, run.read())["status"]
    if status in ("created", "running"):
        raise InputError(unfinished_sentence(run.id, status, "evaluate it"))
    run_probes(run)
    ChatSession(run.path)  # resolves the adapter and the base model's folder; loads nothing
    return run


def evaluate_run(run_ref: str | os.PathLike[str], output_dir: str | None = None,
                 conditions: Sequence[str] = CONDITIONS,
                 progress: Callable[[str, int, int], None] | None = None, save: bool = True,
                 judge: Judge | None = None, judge_unavailable: str | None = None) -> KnowledgeReport:
    """Ask run ``run_ref``'s held-out questions again and score them (stored in run.json when ``save``).

    ``judge``: also grade the answers with this LLM judge (``evaluation.judge``; it sends the questions,
    reference answers and answers to its server), reported as ``progress('judge', done, total)``.
    ``judge_unavailable``: why a judge was asked for but could not be made; it is recorded in the
    report's ``judge_error``. Either way the key-span score stands.
    """

    run = check_run(run_ref, output_dir)
    probes = run_probes(run)
    if not probes:
        return KnowledgeReport(questions=0, base=None, tuned=None, open_book=None,
                               message="Too few facts to test: this run has no knowledge score.")
    session = ChatSession(run.path).load()
    try:
        report = score_knowledge(session.model, session.tokenizer, probes, conditions=conditions, progress=progress)
    finally:
        session.close()
    if judge is not None or judge_unavailable:
        step = (lambda done, total: progress("judge", done, total)) if progress else None
        apply_judge(report, judge, judge_unavailable, progress=step)
    if save:
        run.update(knowledge=report.to_dict())
    return report
