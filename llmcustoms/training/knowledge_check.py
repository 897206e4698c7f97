"""The knowledge score around a run: the base model asked the held-out questions before training
(closed and open book), the tuned model after; both into run.json and the events. After training, the
general check too: what the tuned model kept of the base model's common knowledge, and the change in
perplexity on general text (run.json's ``general``)."""

from __future__ import annotations

from typing import Any

from llmcustoms.evaluation.general import GeneralReport, general_line, score_general
from llmcustoms.evaluation.knowledge import KnowledgeReport, score_knowledge
from llmcustoms.runs.events import EventSink, make_event
from llmcustoms.runs.rundir import RunDir
from llmcustoms.training.prepare import PreparedData


def knowledge_before(model: Any, tokenizer: Any, data: PreparedData, run: RunDir, resume: bool,
                     emit: EventSink) -> KnowledgeReport | None:
    """The base model's answers to the held-out questions (closed and open book), asked once per run."""

    split = data.knowledge
    if split is None or not split.enough:
        return None
    stored = run.read().get("knowledge_before")
    if resume and stored and stored.get("questions") == len(split.probes):
        return KnowledgeReport.from_dict(stored)
    emit(make_event("info", message=f"Asking the {len(split.probes)} held-out questions of the base model "
                                    "(closed book, then with the passage: open book)…"))
    report = score_knowledge(model, tokenizer, split.probes, conditions=("base", "open_book"))
    run.update(knowledge_before=report.to_dict(), knowledge_probes=[p.to_dict() for p in split.probes])
    return report


def knowledge_after(model: Any, tokenizer: Any, data: PreparedData, before: KnowledgeReport | None, run: RunDir,
                    emit: EventSink, step: int) -> KnowledgeReport | None:
    """The tuned model asked the same questions; the full report goes to run.json and a 'knowledge' event."""

    split = data.knowledge
    if split is None or before is None:
        message = split.summary() if split is not None else "No knowledge score."
        run.update(knowledge={"questions": len(split.probes) if split else 0, "base": None, "tuned": None,
                              "open_book": None, "message": message, "rows": []})
        return None
    known = {c: [row[c] for row in before.rows] for c in ("base", "open_book")}
    report = score_knowledge(model, tokenizer, split.probes, known=known)
    report.message = f"{report.headline()}. {split.summary()}"
    run.update(knowledge=report.to_dict())
    emit(make_event("info", message="Asking the general questions of the base and the tuned model (what it kept)…"))
    general = score_general(model, tokenizer)
    run.update(general=general.to_dict())
    emit(make_event("knowledge", step=step, message=f"Knowledge: {report.headline()}. {general_line(general)}.",
                    **knowledge_fields(report, general)))
    return report


def knowledge_fields(report: KnowledgeReport | None, general: GeneralReport | None = None) -> dict[str, Any]:
    """The score's numbers as event fields (none without a score): learnt, open book, and what was kept."""
    if report is None:
        return {}
    fields: dict[str, Any] = {"questions": report.questions, "base": report.base, "tuned": report.tuned,
                              "open_book": report.open_book}
    if general is not None:
        fields.update(general_kept=general.general_kept,
                      general_perplexity_change=round(general.general_perplexity_change, 4))
    return fields


def stored_general(run: RunDir) -> GeneralReport | None:
    """The general check this run stored (None before it ran)."""
    stored = run.read().get("general")
    return GeneralReport.from_dict(stored) if isinstance(stored, dict) else None
