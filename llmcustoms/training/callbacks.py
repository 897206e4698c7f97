"""The bridge from transformers' Trainer to LLMCustoms events (one ``step`` event per optimizer step).

The callback also feeds the health rules (``health.py``) and the watchdog's ``Pulse``, and turns
the ``stop`` event into a graceful stop that still writes a checkpoint (so a stopped run resumes
exactly where it stopped) and, in the trainer, an adapter. During an evaluation it reports progress
(``eval_progress`` events: batch of batches) and ends the evaluation between two batches when a stop
is requested there.
"""

from __future__ import annotations

import math
import os
import threading
import time
from typing import Any

from transformers import TrainerCallback

from llmcustoms.runs.events import EventSink, finite_number, make_event
from llmcustoms.runs.health import HealthMonitor, Pulse

#: The most seconds between two ``eval_progress`` events during an evaluation.
EVAL_PROGRESS_EVERY_S = 2.0


def memory_fields(device: str) -> dict[str, Any]:
    """VRAM used/total on CUDA; on the CPU the system's RAM (used, available, total) and this process's share.

    ``ram_used_mb`` is the whole system's use (total minus available), not the process's: the rest of the
    machine counts against what training may still take, and "free" must mean what is really available.
    """
    if device == "cuda":
        import torch

        free, total = torch.cuda.mem_get_info()
        return {"vram_used_mb": int(torch.cuda.memory_reserved() / 2**20), "vram_total_mb": int(total / 2**20),
                "vram_peak_mb": int(torch.cuda.max_memory_reserved() / 2**20)}
    import psutil

    system = psutil.virtual_memory()
    return {"ram_used_mb": int((system.total - system.available) / 2**20),
            "ram_total_mb": int(system.total / 2**20),
            "ram_available_mb": int(system.available / 2**20),
            "ram_process_mb": int(psutil.Process(os.getpid()).memory_info().rss / 2**20)}


class EventCallback(TrainerCallback):
    """Turns Trainer hooks into events; stops training when ``stop`` is set."""

    def __init__(self, sink: EventSink, collator: Any, device: str, stop: threading.Event | None = None,
                 monitor: HealthMonitor | None = None, pulse: Pulse | None = None) -> None:
        self.sink = sink
        self.collator = collator
        self.device = device
        self.stop = stop
        self.monitor = monitor
        self.pulse = pulse or Pulse()
        self.nonfinite_step: int | None = None  # the step whose loss was NaN/inf: the run failed there
        self.started = time.monotonic()
        self._mark_time = time.monotonic()
        self._mark_tokens = 0
        self._step_times: list[float] = []
        self._pending: dict[str, Any] = {}
        self.stopped_by_user = False
        self.last_loss: float | None = None
        self.last_eval_loss: float | None = None
        self.last_eval_step: int | None = None
        self._eval_batch = 0
        self._eval_reported = -math.inf
        # False in multi-process training: one rank leaving an evaluation alone would hang the others.
        self.stop_evaluation = True

    def on_train_begin(self, args, state, control, **kwargs):
        self._mark_time = time.monotonic()
        self._mark_tokens = self.collator.tokens_trained
        self.pulse.in_training = True
        self.pulse.beat()

    def on_train_end(self, args, state, control, **kwargs):
        self.pulse.in_training = False

    def on_step_end(self, args, state, control, **kwargs):
        now = time.monotonic()
        elapsed = max(now - self._mark_time, 1e-9)
        tokens = self.collator.tokens_trained - self._mark_tokens
        self._step_times.append(elapsed)
        recent = self._step_times[-10:]
        remaining = max(state.max_steps - state.global_step, 0)
        self._pending = {
            "step": state.global_step, "max_steps": state.max_steps, "tokens_per_s": round(tokens / elapsed, 1),
            "step_time_s": round(elapsed, 4), "eta_s": round(remaining * sum(recent) / len(recent), 1),
            "epoch": round(state.epoch or 0.0, 3), **memory_fields(self.device),
        }
        self._mark_time = now
        self._mark_tokens = self.collator.tokens_trained
        self.pulse.stepped(state.global_step, elapsed)
        if self.stop is not None and self.stop.is_set() and not self.stopped_by_user:
            self.stopped_by_user = True
            control.should_training_stop = True
            control.should_save = True  # a checkpoint here lets `resume` continue from exactly this step
        return control

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        if "eval_loss" in logs:
            self.last_eval_loss = float(logs["eval_loss"])
            self.last_eval_step = state.global_step
            self.sink(make_event("eval", step=state.global_step, max_steps=state.max_steps,
                                 eval_loss=float(logs["eval_loss"])))
            if self.monitor is not None and math.isfinite(self.last_eval_loss):
                self.monitor.evaluation(state.global_step, self.last_eval_loss)
        elif "loss" in logs:
            loss = float(logs["loss"])
            self.last_loss = loss
            lr = float(logs.get("learning_rate", 0.0))
            event = make_event("step", **self._pending, loss=loss if math.isfinite(loss) else None,
                               lr=lr, grad_norm=finite_number(logs.get("grad_norm")))
            if not math.isfinite(loss):
                event["loss_nonfinite"] = str(loss)
            self.sink(event)
            grad_norm = logs.get("grad_norm")
            grad_norm = float(grad_norm) if isinstance(grad_norm, (int, float)) else None
            if self.monitor is not None and self.monitor.loss(state.global_step, loss, lr, grad_norm):
                # NaN/inf: stop here, and neither evaluate nor checkpoint the broken weights.
                self.nonfinite_step = state.global_step
                control.should_training_stop = True
                control.should_save = False
                control.should_evaluate = False
        return control

    def on_prediction_step(self, args, state, control, eval_dataloader=None, **kwargs):
        self.pulse.beat()  # a long evaluation is progress, not a stall
        self._eval_batch += 1
        now = time.monotonic()
        batches = _length(eval_dataloader)
        if self._eval_batch == 1 or now - self._eval_reported >= EVAL_PROGRESS_EVERY_S or self._eval_batch == batches:
            self._eval_reported = now
            self.sink(make_event("eval_progress", step=state.global_step, max_steps=state.max_steps,
                                 batch=self._eval_batch, batches=batches,
                                 message=f"Evaluating on the held-out examples: batch {self._eval_batch}"
                                         + (f" of {batches}" if batches else "")))
        if self.stop is not None and self.stop.is_set() and not self.stopped_by_user and self.stop_evaluation:
            # A stop asked during an evaluation ends it here, between two batches, not after all of them.
            self.stopped_by_user = True
            control.should_training_stop = True
            control.should_save = True  # mid-training: the checkpoint `resume` continues from
            self.sink(make_event("info", step=state.global_step, message=(
                f"Stop requested: evaluation ended at batch {self._eval_batch}"
                + (f" of {batches}" if batches else "") + " (no held-out loss for it).")))
            self._eval_batch = 0
            from llmcustoms.training.run_trainer import EvaluationStopped

            raise EvaluationStopped
        return control

    def on_evaluate(self, args, state, control, **kwargs):
        self._eval_batch = 0
        # Evaluation time and tokens must not count against the next step's throughput.
        self._mark_time = time.monotonic()
        self._mark_tokens = self.collator.tokens_trained
        self.pulse.beat()

    def on_save(self, args, state, control, **kwargs):
        self.pulse.beat()
        self._mark_time = time.monotonic()  # the save is not part of the next step's time
        self.sink(make_event("checkpoint", step=state.global_step, max_steps=state.max_steps,
                             message=f"checkpoint saved at step {state.global_step}"))


def _length(loader: Any) -> int | None:
    try:
        return len(loader) if loader is not None else None
    except TypeError:
        return None
