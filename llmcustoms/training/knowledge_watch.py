"""Keep the adapter that knows the most, and stop when it stops learning.

Every ``every`` optimizer steps the tuned model is asked a small set of *dev* questions (held-out
phrasings of facts that are not scored, so choosing on them does not flatter the knowledge score). The
adapter weights with the best dev score are kept in memory; when the score has not improved for
``patience`` checks, training stops early. At the end ``restore_best`` puts the best weights back, so
the adapter saved is the one that answered best, not simply the last.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from transformers import TrainerCallback

from llmcustoms.evaluation.knowledge import ask
from llmcustoms.evaluation.scoring import is_correct
from llmcustoms.evaluation.split import Probe
from llmcustoms.runs.events import EventSink, make_event


class KnowledgeWatch(TrainerCallback):
    """Dev-score checks during training: best adapter kept, early stop after ``patience`` flat checks."""

    def __init__(self, model, tokenizer, probes: Sequence[Probe], every: int, emit: EventSink, patience: int = 2,
                 min_steps: int = 0) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.probes = list(probes)
        self.every = max(1, every)
        self.emit = emit
        self.patience = patience
        self.min_steps = min_steps
        self.best_score: float = -1.0
        self.best_step: int | None = None
        self.best_state: dict[str, Any] | None = None
        self.flat_checks = 0
        self.history: list[tuple[int, float]] = []
        self.stopped_early = False

    def check(self, step: int) -> float:
        """Ask the dev questions now; keep the weights when they are the best so far."""
        from peft import get_peft_model_state_dict

        answers = ask(self.model, self.tokenizer, self.probes, "tuned")
        score = sum(is_correct(a, p.span) for a, p in zip(answers, self.probes, strict=True)) / len(self.probes)
        self.history.append((step, score))
        if score >= self.best_score:  # on a tie the later (longer-trained) adapter
            self.best_score, self.best_step, self.flat_checks = score, step, 0
            self.best_state = {k: v.detach().to("cpu", copy=True)
                               for k, v in get_peft_model_state_dict(self.model).items()}
        else:
            self.flat_checks += 1
        self.emit(make_event("knowledge_check", step=step, dev_score=score, best_step=self.best_step,
                             message=f"Dev questions at step {step}: {round(score * len(self.probes))} of "
                                     f"{len(self.probes)} right (best so far at step {self.best_step})."))
        return score

    def on_step_end(self, args, state, control, **kwargs):
        step = state.global_step
        if step % self.every == 0 and step < state.max_steps:
            self.check(step)
            if self.flat_checks >= self.patience and step >= self.min_steps:
                self.stopped_early = True
                control.should_training_stop = True
                self.emit(make_event("info", step=step, message=(
                    f"Stopping early at step {step}: the dev questions have not improved for {self.patience} "
                    f"checks; keeping the adapter from step {self.best_step}.")))
        return control

    def finish(self, step: int) -> None:
        """The last check (at the final step) and the best weights put back into the model."""
        from peft import set_peft_model_state_dict

        if not self.history or self.history[-1][0] != step:
            self.check(step)
        if self.best_state is not None and self.best_step != step:
            set_peft_model_state_dict(self.model, self.best_state)
            self.emit(make_event("info", step=step, message=(
                f"Keeping the adapter from step {self.best_step}, which answered the most dev questions "
                f"({round(self.best_score * len(self.probes))} of {len(self.probes)}).")))
