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
from llmcustoms.evaluation.general import GeneralReport, score_general
from llmcustoms.evaluation.judge import apply_judge
from llmcustoms.evaluation.knowledge import CONDITIONS, KnowledgeReport, score_knowledge
from llmcustoms.evaluation.person_questions import PersonQuestion, load_questions, score_person_questions
from llmcustoms.evaluation.report import EvalReport
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
    return evaluate_run_report(run_ref, output_dir, conditions, progress, save, judge, judge_unavailable,
                               general=False).knowledge


def evaluate_run_report(run_ref: str | os.PathLike[str], output_dir: str | None = None,
                        conditions: Sequence[str] = CONDITIONS,
                        progress: Callable[[str, int, int], None] | None = None, save: bool = True,
                        judge: Judge | None = None, judge_unavailable: str | None = None,
                        questions_file: str | os.PathLike[str] | None = None,
                        general: bool = True) -> EvalReport:
    """``evaluate_run`` and, in the same model load, a person's questions (``questions_file``) and the
    general check (what the tuned model kept of the base model's common knowledge, general perplexity).

    Each result goes into run.json when ``save``: ``knowledge``, ``person_questions`` and ``general``.
    A bad question file is refused (InputError) before the model loads.
    """
    run = check_run(run_ref, output_dir)
    probes = run_probes(run)
    person_questions: list[PersonQuestion] | None = load_questions(questions_file) if questions_file else None
    if not probes and person_questions is None and not general:
        return EvalReport(KnowledgeReport(questions=0, base=None, tuned=None, open_book=None,
                                          message="Too few facts to test: this run has no knowledge score."))
    session = ChatSession(run.path).load()
    person: KnowledgeReport | None = None
    kept: GeneralReport | None = None
    try:
        if probes:
            report = score_knowledge(session.model, session.tokenizer, probes, conditions=conditions,
                                     progress=progress)
        else:
            report = KnowledgeReport(questions=0, base=None, tuned=None, open_book=None,
                                     message="Too few facts to test: this run has no knowledge score.")
        if person_questions is not None:
            data_path = run.read().get("data_path")
            person = score_person_questions(session.model, session.tokenizer, person_questions, data_path,
                                            progress=(lambda c, d, t: progress(f"yours: {c}", d, t)) if progress
                                            else None)
        if general:
            kept = score_general(session.model, session.tokenizer,
                                 progress=(lambda c, d, t: progress(c.replace("_", " "), d, t)) if progress else None)
    finally:
        session.close()
    if judge is not None or judge_unavailable:
        step = (lambda done, total: progress("judge", done, total)) if progress else None
        apply_judge(report, judge, judge_unavailable, progress=step)
    result = EvalReport(report, person=person, general=kept, questions_file=str(questions_file or ""))
    if save:
        stored = result.to_dict()
        updates: dict[str, object] = {"knowledge": report.to_dict()} if probes else {}
        if person is not None:
            updates["person_questions"] = stored["person_questions"]
        if kept is not None:
            updates["general"] = stored["general"]
        run.update(**updates)
    return result
