"""Plain state the screens share: the wizard's choices and a training run folded from its events.

``RunState.apply`` is a pure reducer over the event lines of ``runs/<id>/events.jsonl`` (schema in
DESIGN.md). The dashboard only ever looks at a ``RunState``, so it does not care whether the events
come from a thread in this process or from a detached process writing the same file.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from llmcustoms.runs.events import finite_number  # light: json and paths, no torch
from llmcustoms.runs.follow import RunFold
from llmcustoms_tui.format import fmt_loss, knowledge_summary

if TYPE_CHECKING:  # pragma: no cover
    from llmcustoms.core.planner import Plan
    from llmcustoms.data.report import DataReport
    from llmcustoms.utils.config import Settings
    from llmcustoms_tui.launcher import RunHandle

#: How many log lines the dashboard keeps.
LOG_LINES = 200


@dataclass
class RunState:
    """Everything the dashboard shows, derived from events only."""

    status: str = "waiting"  # waiting | running | stopping | done | stopped | failed | interrupted
    #: The core's fold of the events: step, planned steps, the resume-aware loss curve, memory, warnings.
    fold: RunFold = field(default_factory=RunFold, repr=False)
    lr: float | None = None
    tokens_per_s: float | None = None
    eta_s: float | None = None
    eval_loss: float | None = None
    eval_loss_before: float | None = None
    eval_loss_after: float | None = None
    eval_points: list[tuple[int, float]] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    #: The knowledge score at the end (``format.knowledge_summary``: questions, base, tuned, open_book, message).
    knowledge: dict[str, Any] | None = None
    #: (step, share of the dev questions right) from the periodic checks during training.
    knowledge_checks: list[tuple[int, float]] = field(default_factory=list)
    best_step: int | None = None
    message: str = ""
    events_seen: int = 0
    finished: bool = False

    # -- what the core's fold holds ----------------------------------------------------------------
    @property
    def step(self) -> int:
        """The step the run is at (a resume sets it back to where it resumed)."""
        return self.fold.step

    @property
    def max_steps(self) -> int:
        """The planned number of steps (0: not known yet)."""
        return self.fold.max_steps

    @property
    def loss(self) -> float | None:
        """The latest training loss on the curve."""
        return self.fold.loss

    @property
    def train_points(self) -> list[tuple[int, float]]:
        """(step, training loss), resume-aware: no step twice, never back in time."""
        return list(self.fold.curve)

    @property
    def warnings(self) -> list[str]:
        """The message of every warning so far."""
        return list(self.fold.warnings)

    @property
    def vram_used_mb(self) -> float | None:
        return self.fold.memory.vram_used_mb

    @property
    def vram_total_mb(self) -> float | None:
        return self.fold.memory.vram_total_mb

    @property
    def ram_used_mb(self) -> float | None:
        """CPU runs report RAM instead of VRAM: the system's use…"""
        return self.fold.memory.ram_used_mb

    @property
    def ram_total_mb(self) -> float | None:
        return self.fold.memory.ram_total_mb

    @property
    def ram_available_mb(self) -> float | None:
        """…what the system has available…"""
        return self.fold.memory.ram_available_mb

    @property
    def ram_process_mb(self) -> float | None:
        """…and the training process's own share."""
        return self.fold.memory.ram_process_mb

    # -- folding events ------------------------------------------------------------------------
    def apply(self, event: dict[str, Any]) -> None:
        """Fold one event into the state."""
        self.events_seen += 1
        self.fold.apply(event)
        kind = str(event.get("kind", ""))
        for name in ("lr", "tokens_per_s", "eta_s"):
            value = finite_number(event.get(name))
            if value is not None:
                setattr(self, name, value)
        message = str(event.get("message") or "").strip()
        if message:
            self.message = message
        handler = getattr(self, f"_on_{kind}", None)
        if handler is not None:
            handler(event, message)
        elif message:
            self._log(message)

    def _log(self, line: str) -> None:
        self.log.append(line)
        if len(self.log) > LOG_LINES:
            del self.log[: len(self.log) - LOG_LINES]

    def _on_start(self, event: dict[str, Any], message: str) -> None:
        self.status = "running"
        self._log(message or f"Started: {self.max_steps or '?'} steps.")

    def _on_resume(self, event: dict[str, Any], message: str) -> None:
        self.status = "running"
        self._log(message or f"Resumed at step {self.step}.")

    def _on_step(self, event: dict[str, Any], message: str) -> None:
        if self.status in ("waiting",):
            self.status = "running"
        loss = finite_number(event.get("loss"))  # the curve is the fold's; the log line says this step's
        parts = [f"step {self.step}/{self.max_steps or '?'}", f"loss {fmt_loss(loss)}"]
        if self.lr is not None:
            parts.append(f"lr {self.lr:.1e}")
        if self.tokens_per_s is not None:
            parts.append(f"{self.tokens_per_s:.0f} tok/s")
        self._log("  ".join(parts))

    def _on_eval(self, event: dict[str, Any], message: str) -> None:
        loss = finite_number(event.get("eval_loss", event.get("loss")))
        if loss is None:
            return
        step = int(event.get("step") or 0)
        self.eval_loss = loss
        if step == 0 and self.eval_loss_before is None:
            self.eval_loss_before = loss
        self.eval_points.append((step, loss))
        self._log(message or f"eval at step {step}: loss {fmt_loss(loss)}")

    def _on_eval_progress(self, event: dict[str, Any], message: str) -> None:
        pass  # shown as the status message (set above), not logged: it arrives every few seconds

    def _on_checkpoint(self, event: dict[str, Any], message: str) -> None:
        self._log(message or f"checkpoint saved at step {self.step}")

    def _on_warning(self, event: dict[str, Any], message: str) -> None:
        self._log(f"⚠ {message or 'warning'}")  # the fold keeps the warnings themselves

    def _on_oom_retry(self, event: dict[str, Any], message: str) -> None:
        self._log(f"⚠ out of memory, retrying smaller: {message}" if message else "⚠ out of memory, retrying smaller")

    def _on_knowledge_check(self, event: dict[str, Any], message: str) -> None:
        score = finite_number(event.get("dev_score"))
        step = int(event.get("step") or self.step)
        best = event.get("best_step")
        if isinstance(best, (int, float)):
            self.best_step = int(best)
        if score is not None:
            self.knowledge_checks = [p for p in self.knowledge_checks if p[0] < step] + [(step, score)]
        self._log(f"◆ {message}" if message else f"◆ dev questions at step {step}: "
                  + (f"{score * 100:.0f} % right" if score is not None else "checked"))

    def _on_knowledge(self, event: dict[str, Any], message: str) -> None:
        self.knowledge = knowledge_summary(event)
        if self.knowledge is not None and message and not self.knowledge["message"]:
            self.knowledge["message"] = message
        self._log(f"◆ {message}" if message else "◆ knowledge score ready")

    @property
    def dev_score(self) -> tuple[float, float] | None:
        """(latest, best) share of the dev questions answered right, once checked."""
        if not self.knowledge_checks:
            return None
        return self.knowledge_checks[-1][1], max(score for _, score in self.knowledge_checks)

    def _on_stop(self, event: dict[str, Any], message: str) -> None:
        self.status = "stopping"
        self._log(message or "Stopping: saving the adapter…")

    def _on_done(self, event: dict[str, Any], message: str) -> None:
        status = str(event.get("status") or "")
        self.status = status if status in ("done", "stopped", "failed") else (
            "stopped" if self.status == "stopping" else "done")
        before = finite_number(event.get("eval_loss_before"))
        after = finite_number(event.get("eval_loss_after"))
        if before is not None:
            self.eval_loss_before = before
        if after is not None:
            self.eval_loss_after = after
        self.eta_s = 0.0
        self.finished = True
        if self.knowledge is None:
            self.knowledge = knowledge_summary(event.get("knowledge"))
        summary = message or "Training finished."
        if not message and before is not None and after is not None:
            summary += f" Eval loss {fmt_loss(before)} → {fmt_loss(after)}."
        self._log(summary)

    def _on_error(self, event: dict[str, Any], message: str) -> None:
        self.status = "failed"
        self.finished = True
        self._log(f"✖ {message or 'training failed'}")

    # -- helpers -------------------------------------------------------------------------------
    def mark_ended(self, status: str, message: str = "") -> None:
        """The run ended without a terminal event (its process died, or the launcher failed)."""
        if self.finished:
            return
        self.status = status
        self.finished = True
        if message:
            self.message = message
            self._log(f"✖ {message}" if status == "failed" else message)

    @property
    def memory(self) -> tuple[str, float | None, float | None]:
        """(label, used, total) of the memory the run trains in: VRAM on a GPU, else RAM."""
        memory = self.fold.memory_now()
        if memory.label == "VRAM":
            return "VRAM", memory.vram_used_mb, memory.vram_total_mb
        if memory.label == "RAM":
            return "RAM", memory.ram_used_mb, memory.ram_total_mb
        return "Memory", None, None

    @property
    def fraction(self) -> float:
        """Progress from 0 to 1."""
        if self.max_steps <= 0:
            return 0.0
        return min(1.0, self.step / self.max_steps)

    def snapshot(self) -> RunState:
        """A deep copy, safe to hand to the UI thread while this one keeps changing."""
        return copy.deepcopy(self)


@dataclass
class WizardState:
    """The choices made so far, shared by every screen of one app."""

    data_path: str | None = None
    qa: str = "auto"
    model: str = "auto"
    preset: str = "quality"
    max_steps: int | None = None
    hardware: dict[str, Any] | None = None
    report: DataReport | None = None  # the check of ``data_path`` (None: not checked, or blocked)
    plan: Plan | None = None  # the core's plan
    settings: Settings | None = None  # read once when the app starts (None: a bad .env)
    run: RunHandle | None = None
    chat_run_dir: str | None = None
