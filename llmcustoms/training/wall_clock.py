"""A checkpoint at least every few minutes of wall time, whatever ``save_steps`` says.

On a CPU ``save_steps`` often equals ``max_steps`` (a short run planned in steps), so a run killed or
interrupted near its end had nothing to resume from. ``WallClockCheckpoint`` asks the Trainer to save
when ``SAVE_EVERY_S`` have passed since the last save (or the start), so a long run always has a
recent checkpoint. Saving reads the weights and does not touch the random state: training results
are the same with or without it.
"""

from __future__ import annotations

from collections.abc import Callable
from time import monotonic

from transformers import TrainerCallback

#: The most wall-clock seconds between two checkpoints (5 minutes).
SAVE_EVERY_S = 5 * 60.0


class WallClockCheckpoint(TrainerCallback):
    """Sets ``control.should_save`` at a step's end once ``every_s`` have passed since the last save."""

    def __init__(self, every_s: float = SAVE_EVERY_S, clock: Callable[[], float] | None = None) -> None:
        self.every_s = every_s
        self.clock = clock  # injectable (default: time.monotonic), so tests need not sleep
        self.last_save: float | None = None

    def _now(self) -> float:
        return (self.clock or monotonic)()

    def on_train_begin(self, args, state, control, **kwargs):
        self.last_save = self._now()

    def on_step_end(self, args, state, control, **kwargs):
        if self.last_save is None:
            self.last_save = self._now()
        elif self._now() - self.last_save >= self.every_s:
            control.should_save = True
        return control

    def on_save(self, args, state, control, **kwargs):
        self.last_save = self._now()
