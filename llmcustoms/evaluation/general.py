"""Nothing else forgotten: general knowledge and general-text perplexity, base model against tuned model.

The questions are plain common knowledge shipped with the project (``general_data/general_questions.jsonl``):
written for it, then kept only where the embedded base model (SmolLM2-135M-Instruct) answers right,
asked exactly as here (``scripts/choose_general_questions.py``). So the base model gets (nearly) all of
them and the score says how many of *its* right answers the tuned model still gives: "kept".
The text (``general_data/general_text.txt``) is encyclopedic prose written for the project, never from the
user's folder; its perplexity before and after says whether ordinary language got worse.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmcustoms.evaluation.knowledge import generate_answers
from llmcustoms.evaluation.scoring import is_correct
from llmcustoms.utils.sampling import spread_evenly

DATA_DIR = Path(__file__).with_name("general_data")
QUESTIONS_FILE = DATA_DIR / "general_questions.jsonl"
TEXT_FILE = DATA_DIR / "general_text.txt"
#: Questions asked per condition by default: a fixed sample spread evenly over the file (``general_sample``).
#: Measured 2026-12-07, embedded model with a rank-8 LoRA, 2 CPU cores shared with other work (load 6–7):
#: 32 questions, base + tuned + both perplexities took 314 s wall, 176 s of CPU (base answers 95 s; the
#: tuned ones, through the unmerged adapter, ~2× that). Each question costs the chat template's system
#: prompt plus 32 new tokens, so the whole file (177) would take several minutes. 32 questions: one answer
#: lost is 3 points of "kept" — too coarse for a 95 % goal, so 100 are asked (issue 22 asks for at least 100;
#: on two idle cores the held-out questions cost ~0.45 s each, so ~90 s for base and tuned together).
SAMPLE = 100
#: Tokens of the general text scored by ``score_general`` (a 512-token forward is ~5 s on two CPU cores).
PERPLEXITY_TOKENS = 512


@dataclass(frozen=True)
class GeneralQuestion:
    """One common-knowledge question and its acceptable short answers (right when any one is found)."""

    question: str
    answers: tuple[str, ...]

    def is_right(self, answer: str) -> bool:
        """True when ``answer`` holds any of the acceptable answers (``scoring.is_correct``)."""
        return any(is_correct(answer, key) for key in self.answers)


def read_questions(path: str | Path) -> list[GeneralQuestion]:
    """The questions of a ``{"q": …, "a": […]}`` JSONL file (blank lines skipped)."""
    questions = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip():
            item = json.loads(line)
            questions.append(GeneralQuestion(question=str(item["q"]), answers=tuple(str(a) for a in item["a"])))
    return questions


def load_general_questions() -> list[GeneralQuestion]:
    """Every general question shipped with the project (``score_general`` asks ``general_sample()`` of them)."""
    return read_questions(QUESTIONS_FILE)


def general_sample(questions: Sequence[GeneralQuestion], size: int | None = SAMPLE) -> list[GeneralQuestion]:
    """``size`` questions spread evenly over ``questions`` (all of them when ``size`` is None or larger).

    Evenly spread, not the first ones: the file is grouped by subject (capitals first).
    """
    return spread_evenly(questions, size)


def load_general_text() -> str:
    """The general prose shipped with the project."""
    return TEXT_FILE.read_text(encoding="utf-8")


@dataclass
class GeneralReport:
    """General ability before and after tuning.

    ``kept``: of the ``base_right`` questions the base model answered right, how many the tuned model still
    answers right; ``general_kept`` = kept / base_right (None when the base got none right).
    ``general_perplexity_change``: tuned / base perplexity − 1 on the general text (0.03 = 3 % worse).
    """

    questions: int
    base_right: int
    kept: int
    general_kept: float | None
    base_perplexity: float
    tuned_perplexity: float
    general_perplexity_change: float
    seconds: float = 0.0
    rows: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``llmcustoms eval --json`` and run.json)."""
        return {"questions": self.questions, "base_right": self.base_right, "kept": self.kept,
                "general_kept": self.general_kept, "base_perplexity": self.base_perplexity,
                "tuned_perplexity": self.tuned_perplexity,
                "general_perplexity_change": self.general_perplexity_change, "seconds": round(self.seconds, 1),
                "rows": self.rows}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GeneralReport:
        """The report stored by ``to_dict``."""
        kept = data.get("general_kept")
        return cls(questions=int(data.get("questions", 0)), base_right=int(data.get("base_right", 0)),
                   kept=int(data.get("kept", 0)), general_kept=None if kept is None else float(kept),
                   base_perplexity=float(data.get("base_perplexity", 0.0)),
                   tuned_perplexity=float(data.get("tuned_perplexity", 0.0)),
                   general_perplexity_change=float(data.get("general_perplexity_change", 0.0)),
                   seconds=float(data.get("seconds", 0.0)), rows=list(data.get("rows") or []))


def general_line(report: GeneralReport) -> str:
    """'Kept 97 % of general knowledge (112 of 115 answers the base model got right); general perplexity +3 %'."""
    change = f"general perplexity {100 * report.general_perplexity_change:+.0f} %"
    if report.general_kept is None:
        return f"No general-knowledge score (the base model got none of {report.questions} right); {change}"
    return (f"Kept {100 * report.general_kept:.0f} % of general knowledge ({report.kept} of {report.base_right} "
            f"answers the base model got right); {change}")


def general_perplexity(model, tokenizer, text: str, max_tokens: int = 1024) -> float:
    """exp(mean next-token loss) of ``model`` over the first ``max_tokens`` tokens of ``text``, adapter as given.

    The tokens are cut into consecutive windows no longer than the model's context; each window predicts
    its own tokens after the first, so every token but each window's first counts once.
    """
    import torch

    ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"][0][:max_tokens]
    context = getattr(model.config, "max_position_embeddings", None) or len(ids)
    window = max(2, min(len(ids), int(context)))
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    try:
        with torch.inference_mode():
            for begin in range(0, len(ids), window):
                chunk = ids[begin: begin + window]
                if len(chunk) < 2:
                    continue
                logits = model(input_ids=chunk[None].to(device), use_cache=False).logits[0, :-1].float()
                loss = torch.nn.functional.cross_entropy(logits, chunk[1:].to(device), reduction="sum")
                total += float(loss)
                count += len(chunk) - 1
    finally:
        model.train(was_training)
    if not count:
        raise ValueError("The text is too short for a perplexity (fewer than two tokens).")
    return math.exp(total / count)


def _adapter_off(model):
    """The base model: a context with the adapter switched off when ``model`` has one."""
    return model.disable_adapter() if hasattr(model, "disable_adapter") else contextlib.nullcontext()


def score_general(model, tokenizer, base_answers: list[str] | None = None,
                  progress: Callable[[str, int, int], None] | None = None,
                  questions: Sequence[GeneralQuestion] | None = None, text: str | None = None,
                  base_perplexity: float | None = None, perplexity_tokens: int = PERPLEXITY_TOKENS) -> GeneralReport:
    """Ask the general questions of the base (adapter off) and the tuned model; both perplexities.

    ``base_answers`` / ``base_perplexity``: the base model's, already measured (e.g. before training),
    reused instead of measured again (answers only when there is one per question). ``questions`` and
    ``text`` default to the shipped ``general_sample()`` and general text.
    ``progress(stage, done, total)``: stage 'general_base' or 'general_tuned' per batch of answers.
    Measured on the embedded model, 2 shared CPU cores: see ``SAMPLE``.
    """
    started = time.time()
    asked = list(questions) if questions is not None else general_sample(load_general_questions())
    prose = text if text is not None else load_general_text()
    prompts = [q.question for q in asked]

    def step(stage: str):
        return (lambda done, total: progress(stage, done, total)) if progress else None

    with _adapter_off(model):
        if base_answers is None or len(base_answers) != len(asked):
            base_answers = generate_answers(model, tokenizer, prompts, progress=step("general_base"))
        if base_perplexity is None:
            base_perplexity = general_perplexity(model, tokenizer, prose, perplexity_tokens)
    tuned_answers = generate_answers(model, tokenizer, prompts, progress=step("general_tuned"))
    tuned_perplexity = general_perplexity(model, tokenizer, prose, perplexity_tokens)
    rows = []
    for question, base, tuned in zip(asked, base_answers, tuned_answers, strict=True):
        rows.append({"question": question.question, "answers": list(question.answers), "base": base,
                     "base_correct": question.is_right(base), "tuned": tuned, "tuned_correct": question.is_right(tuned)})
    base_right = sum(1 for r in rows if r["base_correct"])
    kept = sum(1 for r in rows if r["base_correct"] and r["tuned_correct"])
    return GeneralReport(questions=len(asked), base_right=base_right, kept=kept,
                         general_kept=kept / base_right if base_right else None,
                         base_perplexity=base_perplexity, tuned_perplexity=tuned_perplexity,
                         general_perplexity_change=tuned_perplexity / base_perplexity - 1,
                         seconds=time.time() - started, rows=rows)
