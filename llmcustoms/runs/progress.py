"""Events as text for a person: plain lines for a log file, or a tqdm bar plus lines for a terminal.

``LinePrinter`` writes one line per notable event (the detached worker's ``train.log``);
``ProgressPrinter`` is the same printer with a live bar for ``step`` events (the CLI, ``attach``,
``FineTuner.train``). Both word an event the same way (``event_line``), so a log and a terminal agree.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from llmcustoms.runs.events import FOLLOW_END_KINDS

#: Kinds whose ``message`` is printed, and the words put before it.
MESSAGE_PREFIXES = {"info": "", "start": "", "warning": "warning: ", "oom_retry": "out of memory: ",
                    "checkpoint": "", "resume": "", "error": "error: ", "done": "", "stop": "", "knowledge": "",
                    "knowledge_check": ""}


def event_line(event: dict[str, Any]) -> str | None:
    """The line a notable event prints as; None for events that print nothing (steps, progress ticks).

    An ``error`` event's line starts with ``error: ``: ``detach`` finds a worker's last failure that way.
    """
    kind = event.get("kind")
    if kind == "eval":
        return f"eval loss {event.get('eval_loss', float('nan')):.4f} at step {event.get('step', 0)}"
    if kind in MESSAGE_PREFIXES and event.get("message"):
        return MESSAGE_PREFIXES[str(kind)] + str(event["message"])
    return None


class LinePrinter:
    """An event sink that prints one plain line per step and per notable event (nothing redrawn)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        # None: whatever sys.stdout is at each write (a worker's stdout is its train.log).
        self.stream = stream
        self._eval_tenth = 0

    def __call__(self, event: dict[str, Any]) -> None:
        kind = event.get("kind")
        if kind == "step":
            self._step(event)
        elif kind == "eval_progress":
            self._eval_progress(event)
        else:
            line = event_line(event)
            if line is not None:
                self._write(line)
            if kind in FOLLOW_END_KINDS:
                self.close()

    def _eval_progress(self, event: dict[str, Any]) -> None:
        """A line at the start of an evaluation and at each further tenth of its batches, not one per batch."""
        batch, batches = int(event.get("batch") or 0), int(event.get("batches") or 0)
        tenth = (10 * batch) // batches if batches else 0
        if batch <= 1 or (batches and tenth > self._eval_tenth):
            self._eval_tenth = 0 if batch <= 1 else tenth
            if event.get("message"):
                self._write(str(event["message"]))

    def _step(self, event: dict[str, Any]) -> None:
        self._write(f"step {event.get('step')}/{event.get('max_steps')} loss {event.get('loss')}")

    def _write(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def close(self) -> None:
        """Nothing to finish for plain lines (a bar printer finishes its bar)."""


class ProgressPrinter(LinePrinter):
    """An event sink that draws a tqdm bar for ``step`` events and prints the others."""

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__(stream or sys.stderr)
        self.bar: Any = None  # a tqdm bar (tqdm is imported when the first step arrives)
        # Events written before this printer existed are history (``attach`` replays them): they move
        # the bar but not its rate and ETA, which come from steps seen live only.
        self.started = time.time()

    def _step(self, event: dict[str, Any]) -> None:
        from tqdm import tqdm

        total = int(event.get("max_steps") or 0)
        step = int(event.get("step", 0))
        if self.bar is None:
            # The first step seen is the rate's starting point: no step/s from a jump of zero seconds.
            self.bar = tqdm(total=total, initial=step, desc="training", unit="step", file=self.stream,
                            dynamic_ncols=True)
        if total and self.bar.total != total:
            self.bar.total = total
        if float(event.get("t") or self.started) < self.started:
            self._rebase(step)  # a replayed step: move the bar, start the rate again from here
        self.bar.n = step
        postfix = {}
        if event.get("loss") is not None:
            postfix["loss"] = f"{event['loss']:.3f}"
        if event.get("tokens_per_s") is not None:
            postfix["tok/s"] = f"{event['tokens_per_s']:.0f}"
        self.bar.set_postfix(postfix, refresh=False)
        self.bar.refresh()

    def _rebase(self, step: int) -> None:
        """Count the bar's rate (and so its ETA) from ``step`` and now."""
        bar = self.bar
        bar.initial = bar.n = bar.last_print_n = step
        bar.start_t = bar.last_print_t = bar._time()

    def _write(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)

    def close(self) -> None:
        """Finish the bar (idempotent)."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None
