"""Run progress: ``step 12 / 30  ━━━━━━━━━╸━━━━━━  40%  ETA 2:05``."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Label, ProgressBar

from llmcustoms_tui.format import fmt_duration


class RunProgress(Horizontal):
    """A progress bar between the step count and the estimated time left."""

    DEFAULT_CSS = """
    RunProgress { height: 1; width: 1fr; }
    RunProgress > #progress-steps { width: auto; min-width: 16; }
    RunProgress > ProgressBar { width: 1fr; }
    RunProgress > ProgressBar > Bar { width: 1fr; }
    RunProgress > #progress-eta { width: auto; min-width: 12; text-align: right; }
    """

    def compose(self) -> ComposeResult:
        yield Label("step 0 / ?", id="progress-steps")
        yield ProgressBar(total=None, show_eta=False, show_percentage=True, id="progress-bar")
        yield Label("ETA —", id="progress-eta")

    def update_progress(self, step: int, max_steps: int, eta_s: float | None, finished: bool = False) -> None:
        """Show ``step`` of ``max_steps`` and the time left (from the trainer's own estimate)."""
        self.query_one("#progress-steps", Label).update(f"step {step} / {max_steps or '?'}")
        bar = self.query_one(ProgressBar)
        if max_steps > 0:
            bar.update(total=max_steps, progress=min(step, max_steps))
        eta = "done" if finished else f"ETA {fmt_duration(eta_s)}"
        self.query_one("#progress-eta", Label).update(eta)
