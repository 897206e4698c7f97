"""How long to train: a number of passes over the data, capped by time on a CPU, from measured steps.

On a GPU the presets keep their own step counts. On a CPU the steps come from the data: enough passes
(epochs) over the examples for facts to stick, capped so the run ends within the preset's minutes. The
seconds a step takes are measured on real steps of this run's own rows (``measure_step_seconds``) before
training starts, not looked up in a table; the estimate is shown to the user and re-planned from the
measured speed as the run goes.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass

from llmcustoms.paths import home_dir

#: Passes over the training rows on a CPU, per preset (facts need several; early stopping ends sooner).
CPU_EPOCHS = {"highspeed": 3.0, "quality": 6.0, "bestaccuracy": 10.0}
#: The most minutes of training steps a CPU run gets, per preset.
CPU_MINUTES = {"highspeed": 4.0, "quality": 10.0, "bestaccuracy": 30.0}
#: A Trainer step costs more than the bare forward and backward the probe times (the optimizer step,
#: gradient clipping, logging and the event callback): the steps of four CPU runs on 2026-12-01 ran about
#: 1.2–1.35× the probe's time (some on a loaded machine), so the estimate is scaled by this; ``TimeCap``
#: still re-plans from the real steps if the machine slows down further.
TRAINER_STEP_OVERHEAD = 1.25
#: Save a checkpoint at least this often (seconds of measured steps), so an interrupt loses little.
CHECKPOINT_EVERY_S = 150.0


@dataclass(frozen=True)
class Budget:
    """The steps chosen and why, in a sentence for the user."""

    steps: int
    epochs: float
    steps_per_epoch: int
    seconds_per_step: float | None
    capped_by_time: bool
    message: str

    @property
    def minutes(self) -> float | None:
        """The estimated minutes of training steps (None when nothing was measured)."""
        return None if self.seconds_per_step is None else self.steps * self.seconds_per_step / 60


def plan_budget(rows: int, rows_per_step: int, epochs: float, seconds_per_step: float | None,
                max_minutes: float | None) -> Budget:
    """Steps for ``epochs`` passes over ``rows``, at most ``max_minutes`` at the measured speed."""
    steps_per_epoch = max(1, math.ceil(rows / max(1, rows_per_step)))
    steps = max(1, math.ceil(epochs * steps_per_epoch))
    capped = False
    if seconds_per_step and max_minutes:
        limit = max(1, int(max_minutes * 60 / seconds_per_step))
        if limit < steps:
            steps, capped = limit, True
    real_epochs = steps / steps_per_epoch
    how_long = (f"; measured {seconds_per_step:.1f} s a step, so about {steps * seconds_per_step / 60:.0f} min"
                if seconds_per_step else "")
    message = (f"Training budget: {steps} steps = {real_epochs:.1f} passes over {rows} rows of examples"
               + (f" (capped at {max_minutes:g} min on this CPU)" if capped else "") + how_long + ".")
    return Budget(steps, real_epochs, steps_per_epoch, seconds_per_step, capped, message)


def measure_step_seconds(trainer, rows: list[dict], micro_batch: int, accumulation: int, repeats: int = 2) -> float:
    """Seconds one optimizer step takes on this machine: ``accumulation`` real micro-batches of ``rows``,
    forward and backward exactly as training runs them; the first pass warms up and is not counted.
    Gradients and the collator's counters are put back as they were."""
    import torch

    model, collator = trainer.model, trainer.data_collator
    counters = (collator.tokens_trained, collator.tokens_seen)
    batches = [rows[i * micro_batch:(i + 1) * micro_batch] for i in range(accumulation)]
    batches = [b for b in batches if b] or [rows[:micro_batch]]
    device = next(model.parameters()).device
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bool(trainer.args.bf16))
    model.train()
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        for batch in batches:
            inputs = {k: v.to(device) for k, v in collator(batch).items()}
            with autocast:
                loss = trainer.compute_loss(model, inputs)
            loss.backward()
        timings.append(time.perf_counter() - started)
    model.zero_grad(set_to_none=True)
    collator.reset()
    collator.tokens_trained, collator.tokens_seen = counters
    return min(timings[1:] or timings) * TRAINER_STEP_OVERHEAD


#: Training tokens per token of the user's text in the offline recipe: each fact sentence is answered
#: several times (one per phrasing, with its question and the chat template), plus the text itself.
#: Measured on examples/data (16 KB ≈ 4k text tokens → ~39k training tokens a pass).
TRAINING_TOKENS_PER_TEXT_TOKEN = 10.0


def _speed_file():
    return home_dir() / "measured_speed.json"


def remember_speed(model: str, device: str, tokens_per_s: float) -> None:
    """Keep the training speed this run measured, so the next plan on this machine starts from it."""

    path = _speed_file()
    try:
        known = json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        known = {}
    known[f"{device}:{model}"] = {"tokens_per_s": round(float(tokens_per_s), 1), "at": time.time()}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(known, indent=1))
        tmp.replace(path)
    except OSError:
        pass  # a cache: never worth failing a run over


def recall_speed(model: str, device: str) -> float | None:
    """Training tokens a second measured by an earlier run of ``model`` on ``device`` here (None if none)."""

    try:
        entry = json.loads(_speed_file().read_text()).get(f"{device}:{model}")
    except (OSError, ValueError, AttributeError):
        return None
    return float(entry["tokens_per_s"]) if isinstance(entry, dict) and entry.get("tokens_per_s") else None


def cpu_minutes_estimate(text_tokens: int, epochs: float, max_minutes: float, tokens_per_s: float) -> float:
    """Minutes of training steps a CPU run of ``text_tokens`` of text takes: the passes, or the cap."""
    training_tokens = text_tokens * TRAINING_TOKENS_PER_TEXT_TOKEN * epochs
    return min(max_minutes, training_tokens / max(tokens_per_s, 1e-6) / 60.0)
