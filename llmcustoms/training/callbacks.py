"""The bridge from transformers' Trainer to LLMCustoms events (one ``step`` event per optimizer step)."""

from __future__ import annotations

import math
import os
import threading
import time
from typing import Any

from transformers import TrainerCallback

from llmcustoms.training.events import EventSink, make_event


def memory_fields(device: str) -> dict[str, Any]:
    """VRAM used/total on CUDA; the process's RAM on the CPU."""
    if device == "cuda":
        import torch

        free, total = torch.cuda.mem_get_info()
        return {"vram_used_mb": int(torch.cuda.memory_reserved() / 2**20), "vram_total_mb": int(total / 2**20),
                "vram_peak_mb": int(torch.cuda.max_memory_reserved() / 2**20)}
    import psutil

    return {"ram_used_mb": int(psutil.Process(os.getpid()).memory_info().rss / 2**20),
            "ram_total_mb": int(psutil.virtual_memory().total / 2**20)}


class EventCallback(TrainerCallback):
    """Turns Trainer hooks into events; stops training when ``stop`` is set."""

    def __init__(self, sink: EventSink, collator: Any, device: str, stop: threading.Event | None = None) -> None:
        self.sink = sink
        self.collator = collator
        self.device = device
        self.stop = stop
        self.started = time.monotonic()
        self._mark_time = time.monotonic()
        self._mark_tokens = 0
        self._step_times: list[float] = []
        self._pending: dict[str, Any] = {}
        self.stopped_by_user = False
        self.last_loss: float | None = None
        self.last_eval_loss: float | None = None
        self.last_eval_step: int | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        self._mark_time = time.monotonic()
        self._mark_tokens = self.collator.tokens_seen

    def on_step_end(self, args, state, control, **kwargs):
        now = time.monotonic()
        elapsed = max(now - self._mark_time, 1e-9)
        tokens = self.collator.tokens_seen - self._mark_tokens
        self._step_times.append(elapsed)
        recent = self._step_times[-10:]
        remaining = max(state.max_steps - state.global_step, 0)
        self._pending = {
            "step": state.global_step, "max_steps": state.max_steps, "tokens_per_s": round(tokens / elapsed, 1),
            "step_time_s": round(elapsed, 4), "eta_s": round(remaining * sum(recent) / len(recent), 1),
            "epoch": round(state.epoch or 0.0, 3), **memory_fields(self.device),
        }
        self._mark_time = now
        self._mark_tokens = self.collator.tokens_seen
        if self.stop is not None and self.stop.is_set():
            self.stopped_by_user = True
            control.should_training_stop = True
            control.should_save = False
        return control

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        if "eval_loss" in logs:
            self.last_eval_loss = float(logs["eval_loss"])
            self.last_eval_step = state.global_step
            self.sink(make_event("eval", step=state.global_step, max_steps=state.max_steps,
                                 eval_loss=float(logs["eval_loss"])))
        elif "loss" in logs:
            loss = float(logs["loss"])
            self.last_loss = loss
            event = make_event("step", **self._pending, loss=loss if math.isfinite(loss) else None,
                               lr=float(logs.get("learning_rate", 0.0)),
                               grad_norm=_finite(logs.get("grad_norm")))
            if not math.isfinite(loss):
                event["loss_nonfinite"] = str(loss)
            self.sink(event)

    def on_evaluate(self, args, state, control, **kwargs):
        # Evaluation time and tokens must not count against the next step's throughput.
        self._mark_time = time.monotonic()
        self._mark_tokens = self.collator.tokens_seen

    def on_save(self, args, state, control, **kwargs):
        self.sink(make_event("checkpoint", step=state.global_step, max_steps=state.max_steps,
                             message=f"checkpoint saved at step {state.global_step}"))


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
