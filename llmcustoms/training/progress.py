"""A terminal progress display fed by events: a tqdm bar plus one line per notable event."""

from __future__ import annotations

import sys
from typing import Any

from llmcustoms.training.events import FOLLOW_END_KINDS


class ProgressPrinter:
    """An event sink that draws a tqdm bar for ``step`` events and prints the others."""

    def __init__(self, stream=None) -> None:
        self.stream = stream or sys.stderr
        self.bar = None

    def __call__(self, event: dict[str, Any]) -> None:
        kind = event.get("kind")
        if kind == "step":
            self._step(event)
        elif kind == "eval":
            self._write(f"eval loss {event.get('eval_loss', float('nan')):.4f} at step {event.get('step', 0)}")
        elif kind in ("info", "start", "warning", "oom_retry", "checkpoint", "resume", "error", "done", "stop",
                      "knowledge", "knowledge_check"):
            prefix = {"warning": "warning: ", "error": "error: ", "oom_retry": "out of memory: "}.get(kind, "")
            if event.get("message"):
                self._write(prefix + str(event["message"]))
            if kind in FOLLOW_END_KINDS:
                self.close()

    def _step(self, event: dict[str, Any]) -> None:
        from tqdm import tqdm

        total = int(event.get("max_steps") or 0)
        if self.bar is None:
            self.bar = tqdm(total=total, desc="training", unit="step", file=self.stream, dynamic_ncols=True)
        if total and self.bar.total != total:
            self.bar.total = total
        self.bar.n = int(event.get("step", 0))
        postfix = {}
        if event.get("loss") is not None:
            postfix["loss"] = f"{event['loss']:.3f}"
        if event.get("tokens_per_s") is not None:
            postfix["tok/s"] = f"{event['tokens_per_s']:.0f}"
        self.bar.set_postfix(postfix, refresh=False)
        self.bar.refresh()

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
