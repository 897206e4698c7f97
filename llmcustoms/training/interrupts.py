"""Ctrl+C that loses nothing: a graceful stop on the first one, a checkpoint even on a hard interrupt.

``graceful_interrupt(stop)`` is what ``FineTuner.train()`` wraps a run in (the CLI has its own twin in
``cli._graceful_stop_signals``): the first Ctrl+C (or SIGTERM) sets ``stop``, so the step in progress
finishes and a checkpoint and the adapter are saved; a second one interrupts at once.

A hard interrupt (a second Ctrl+C, a KeyboardInterrupt raised where no handler is installed) can land
anywhere. ``StepBoundary`` knows whether the weights, the optimizer and the step counter agree (they do
not between the optimizer step and the end of that step), so the trainer saves a checkpoint only when
it would be a true one.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from transformers import TrainerCallback

#: What ``graceful_interrupt`` prints on the first Ctrl+C.
STOPPING_MESSAGE = "\nStopping after this step (saving a checkpoint and the adapter); Ctrl+C again to abort."


class TrainingInterrupted(KeyboardInterrupt):  # noqa: N818 - it *is* a KeyboardInterrupt, named for people
    """Training ended by Ctrl+C; ``str()`` says what was kept and how to resume (``llmcustoms resume <id>``).

    A KeyboardInterrupt, so code that already catches one still does; ``run_id`` and ``step`` say where.
    """

    def __init__(self, message: str, run_id: str | None = None, step: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.run_id = run_id
        self.step = step

    def __str__(self) -> str:
        return self.message


def resume_hint(run_id: str, step: int, checkpoint_step: int | None) -> str:
    """One sentence: where an interrupted run stands and the command that continues it."""
    kept = (f"a checkpoint at step {checkpoint_step} is saved" if checkpoint_step
            else "no checkpoint was saved yet, so it starts again from step 0")
    return f"Training interrupted at step {step}: {kept}; `llmcustoms resume {run_id}` continues it."


@contextmanager
def graceful_interrupt(stop: threading.Event, on_stop: Callable[[], None] | None = None,
                       stream: Any = None) -> Iterator[None]:
    """First Ctrl+C/SIGTERM sets ``stop`` (and calls ``on_stop``); a second raises KeyboardInterrupt.

    Signal handlers can only be set from the main thread: elsewhere this does nothing, and a Ctrl+C
    there is a hard interrupt (still checkpointed when the step allows it).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signals = [signal.SIGINT] + ([signal.SIGTERM] if hasattr(signal, "SIGTERM") else [])
    previous = {sig: signal.getsignal(sig) for sig in signals}

    def handler(signum: int, frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        print(STOPPING_MESSAGE, file=stream or sys.stderr, flush=True)
        if on_stop is not None:
            on_stop()

    for sig in signals:
        signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


class StepBoundary(TrainerCallback):
    """Knows whether the model, optimizer, scheduler and step counter describe one finished step.

    False from just before the optimizer step until that step's end (the optimizer may have updated
    half the weights, the scheduler and the counter not yet); True everywhere else, including the
    forward/backward of the next step, whose partial gradients a checkpoint does not hold anyway.
    """

    def __init__(self) -> None:
        self.consistent = True

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        self.consistent = False

    def on_step_end(self, args, state, control, **kwargs):
        self.consistent = True
