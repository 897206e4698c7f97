"""Asking the held-out questions: base closed-book, tuned closed-book and base open-book.

Closed book: the question alone, as a user would type it. Open book: the base model with the passage
around the fact in its prompt, what retrieval would give it (the bar a tuned model is compared with).
Answers are generated greedily, in batches, and scored by ``scoring.is_correct``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from llmcustoms.evaluation.scoring import SPAN_RECALL_THRESHOLD, is_correct, span_recall
from llmcustoms.evaluation.split import Probe

#: New tokens per answer: enough for one sentence holding the span.
MAX_NEW_TOKENS = 32
BATCH_SIZE = 16
CONDITIONS = ("base", "tuned", "open_book")


def open_book_prompt(probe: Probe) -> str:
    """The question with its source passage in front of it."""
    return f"Answer the question using this passage.\n\nPassage: {probe.context}\n\nQuestion: {probe.question}"


@dataclass
class KnowledgeReport:
    """The score on one set of probes: fractions 0–1 per condition, and one row per question."""

    questions: int
    base: float | None
    tuned: float | None
    open_book: float | None
    rows: list[dict[str, Any]] = field(default_factory=list)
    threshold: float = SPAN_RECALL_THRESHOLD
    message: str = ""
    seconds: float = 0.0
    #: The LLM judge's shares (``base``, ``tuned``, ``open_book``, ``model``, ``server``, …) when
    #: ``llmcustoms eval --judge`` ran one (``evaluation.judge``); rows then hold ``<condition>_judge``.
    judge: dict[str, Any] | None = None
    #: Why there is no judge score although one was asked for (no key, a failing server).
    judge_error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``llmcustoms eval --json`` and run.json's ``knowledge``)."""
        return {"questions": self.questions, "base": self.base, "tuned": self.tuned, "open_book": self.open_book,
                "threshold": self.threshold, "message": self.message, "seconds": round(self.seconds, 1),
                "judge": self.judge, "judge_error": self.judge_error, "rows": self.rows}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> KnowledgeReport:
        """The report stored by ``to_dict``."""
        return cls(questions=int(data.get("questions", 0)), base=data.get("base"), tuned=data.get("tuned"),
                   open_book=data.get("open_book"), rows=list(data.get("rows") or []),
                   threshold=float(data.get("threshold", SPAN_RECALL_THRESHOLD)), message=str(data.get("message", "")),
                   seconds=float(data.get("seconds", 0.0)), judge=data.get("judge"),
                   judge_error=data.get("judge_error"))

    def headline(self) -> str:
        """'knows 22 of 30 facts; the base model knew 1 (open book: 25)'."""
        if not self.questions or self.tuned is None:
            return self.message or "No knowledge score."
        known = round(self.tuned * self.questions)
        text = f"knows {known} of {self.questions} held-out facts"
        if self.base is not None:
            text += f"; the base model knew {round(self.base * self.questions)}"
        if self.open_book is not None:
            text += f" (open book: {round(self.open_book * self.questions)})"
        return text

    def judge_line(self) -> str:
        """The judge's verdict in one sentence, or why it is missing ("" when no judge was asked for)."""
        if self.judge_error:
            return f"No judge score: {self.judge_error.rstrip('.')}."
        if not self.judge:
            return ""
        where = f"{self.judge.get('model')} at {self.judge.get('server')}"
        parts = [f"{label} {round(100 * self.judge[c])} %" for c, label in
                 (("tuned", "tuned"), ("base", "base"), ("open_book", "open book")) if self.judge.get(c) is not None]
        return f"Judged by {where}: " + ", ".join(parts) + "."


def generate_answers(model, tokenizer, prompts: Sequence[str], max_new_tokens: int = MAX_NEW_TOKENS,
                     batch_size: int = BATCH_SIZE, progress: Callable[[int, int], None] | None = None) -> list[str]:
    """Greedy answers to ``prompts`` (each a user message in the model's chat template), in batches."""
    import torch

    answers: list[str] = []
    was_training = model.training
    model.eval()  # no dropout while answering
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"  # generation continues each row from its last real token
    device = next(model.parameters()).device
    try:
        for begin in range(0, len(prompts), batch_size):
            batch = prompts[begin: begin + batch_size]
            texts = [tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                                   add_generation_prompt=True) for p in batch]
            encoded = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
            with torch.inference_mode():
                output = model.generate(**encoded, max_new_tokens=max_new_tokens, do_sample=False, temperature=None,
                                        top_p=None, top_k=None, pad_token_id=tokenizer.pad_token_id, use_cache=True)
            new = output[:, encoded["input_ids"].shape[1]:]
            answers.extend(t.strip() for t in tokenizer.batch_decode(new, skip_special_tokens=True))
            if progress is not None:
                progress(len(answers), len(prompts))
    finally:
        tokenizer.padding_side = side
        model.train(was_training)
    return answers


def ask(model, tokenizer, probes: Sequence[Probe], condition: str,
        progress: Callable[[int, int], None] | None = None) -> list[str]:
    """Answers of ``model`` under ``condition`` ('base' and 'open_book' run with any adapter switched off)."""
    prompts = [open_book_prompt(p) if condition == "open_book" else p.question for p in probes]
    adapter_off = condition in ("base", "open_book") and hasattr(model, "disable_adapter")
    with model.disable_adapter() if adapter_off else contextlib.nullcontext():
        return generate_answers(model, tokenizer, prompts, progress=progress)


def score_knowledge(model, tokenizer, probes: Sequence[Probe], conditions: Sequence[str] = CONDITIONS,
                    known: dict[str, list[str]] | None = None,
                    progress: Callable[[str, int, int], None] | None = None) -> KnowledgeReport:
    """Ask every probe under each condition and score the answers.

    ``known``: answers already generated for a condition (e.g. the base model's, asked before training),
    reused instead of generated again.
    """
    started = time.time()
    if not probes:
        return KnowledgeReport(questions=0, base=None, tuned=None, open_book=None,
                               message="Too few facts to test: no knowledge score.")
    answers: dict[str, list[str]] = {}
    for condition in conditions:
        if known and condition in known and len(known[condition]) == len(probes):
            answers[condition] = known[condition]
            continue
        step = (lambda done, total, c=condition: progress(c, done, total)) if progress else None
        answers[condition] = ask(model, tokenizer, probes, condition, step)
    rows = []
    for i, probe in enumerate(probes):
        row: dict[str, Any] = {"fact_id": probe.fact_id, "question": probe.question, "span": probe.span,
                               "reference": probe.reference, "trained_phrasings": probe.trained_phrasings}
        for condition, said in answers.items():
            row[condition] = said[i]
            row[f"{condition}_correct"] = is_correct(said[i], probe.span)
            row[f"{condition}_recall"] = round(span_recall(said[i], probe.span), 3)
        rows.append(row)

    def share(condition: str) -> float | None:
        if condition not in answers:
            return None
        return sum(1 for r in rows if r[f"{condition}_correct"]) / len(rows)

    report = KnowledgeReport(questions=len(probes), base=share("base"), tuned=share("tuned"),
                             open_book=share("open_book"), rows=rows, seconds=time.time() - started)
    report.message = report.headline()
    return report
