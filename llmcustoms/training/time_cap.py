"""Stop a CPU run at its time cap when the machine turns out slower than the steps measured at the start.

The budget (``budget.py``) turns the preset's minutes into steps from two measured steps. A shared CPU can
slow down later (other work on the machine): then the steps left would overrun the promise. This callback
re-plans from the speed measured so far, says so once when the finish moves, and ends training at the
cap (the best adapter so far is kept by ``KnowledgeWatch``).
"""

from __future__ import annotations

import time

from transformers import TrainerCallback

from llmcustoms.runs.events import EventSink, make_event

#: Allowed overrun of the cap before training is stopped.
GRACE = 1.10


class TimeCap(TrainerCallback):
    """Ends training once ``minutes`` of training steps have passed (with ``GRACE``), saying why."""

    def __init__(self, minutes: float, seconds_per_step: float, emit: EventSink) -> None:
        self.limit_s = minutes * 60 * GRACE
        self.minutes = minutes
        self.planned_s_per_step = seconds_per_step
        self.emit = emit
        self.started: float | None = None
        self.warned = False
        self.stopped_at: int | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.started = time.monotonic()

    def on_step_end(self, args, state, control, **kwargs):
        if self.started is None or state.global_step < 3:
            return control
        elapsed = time.monotonic() - self.started
        per_step = elapsed / state.global_step
        if not self.warned and per_step > 1.25 * self.planned_s_per_step and \
                per_step * state.max_steps > self.limit_s:
            self.warned = True
            reachable = int(self.limit_s / per_step)
            self.emit(make_event("info", step=state.global_step, message=(
                f"This machine is slower now than at the start ({per_step:.1f} s a step, measured "
                f"{self.planned_s_per_step:.1f}): the run will stop at its {self.minutes:g}-minute cap, "
                f"near step {reachable} of {state.max_steps}.")))
        if elapsed > self.limit_s and state.global_step < state.max_steps:
            self.stopped_at = state.global_step
            control.should_training_stop = True
            self.emit(make_event("info", step=state.global_step, message=(
                f"Time cap reached ({self.minutes:g} min of training on this CPU): stopping at step "
                f"{state.global_step}.")))
        return control
