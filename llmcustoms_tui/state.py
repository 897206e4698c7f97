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
from llmcustoms_tui.format import fmt_loss, knowledge_summary

if TYPE_CHECKING:  # pragma: no cover
    from llmcustoms.core.planner import Plan
    from llmcustoms_tui.launcher import RunHandle

#: How many log lines the dashboard keeps.
LOG_LINES = 200


@dataclass
class RunState:
    """Everything the dashboard shows, derived from events only."""

    status: str = "waiting"  # waiting | running | stopping | done | stopped | failed | interrupted
    step: int = 0
    max_steps: int = 0
    loss: float | None = None
    lr: float | None = None
    tokens_per_s: float | None = None
    vram_used_mb: float | None = None
    vram_total_mb: float | None = None
    ram_used_mb: float | None = None  # CPU runs report RAM instead of VRAM: the system's use…
    ram_total_mb: float | None = None
    ram_available_mb: float | None = None  # …what the system has available…
    ram_process_mb: float | None = None  # …and the training process's own share
    eta_s: float | None = None
    eval_loss: float | None = None
    eval_loss_before: float | None = None
    eval_loss_after: float | None = None
    train_points: list[tuple[int, float]] = field(default_factory=list)
    eval_points: list[tuple[int, float]] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: The knowledge score at the end (``format.knowledge_summary``: questions, base, tuned, open_book, message).
    knowledge: dict[str, Any] | None = None
    #: (step, share of the dev questions right) from the periodic checks during training.
    knowledge_checks: list[tuple[int, float]] = field(default_factory=list)
    best_step: int | None = None
    message: str = ""
    events_seen: int = 0
    finished: bool = False

    # -- folding events ------------------------------------------------------------------------
    def apply(self, event: dict[str, Any]) -> None:
        """Fold one event into the state."""
        self.events_seen += 1
        kind = str(event.get("kind", ""))
        step = event.get("step")
        if isinstance(step, (int, float)) and step >= 0:
            self.step = max(self.step, int(step)) if kind != "resume" else int(step)
        max_steps = event.get("max_steps")
        if isinstance(max_steps, (int, float)) and max_steps > 0:
            self.max_steps = int(max_steps)
        for name in ("lr", "tokens_per_s", "vram_used_mb", "vram_total_mb", "ram_used_mb", "ram_total_mb",
                     "ram_available_mb", "ram_process_mb", "eta_s"):
            value = finite_number(event.get(name))
            if value is not None:
                setattr(self, name, value)
        if "ram_used_mb" in event and "ram_available_mb" not in event and "ram_process_mb" not in event:
            # Events of older runs: their ram_used_mb was the process's memory, not the system's use.
            self.ram_process_mb, self.ram_used_mb = self.ram_used_mb, None
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
        loss = finite_number(event.get("loss"))
        if loss is not None:
            self.loss = loss
            step = int(event.get("step") or self.step)
            # A resumed run repeats steps: keep the newest value for a step, in step order.
            if self.train_points and self.train_points[-1][0] >= step:
                self.train_points = [p for p in self.train_points if p[0] < step]
            self.train_points.append((step, loss))
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
        text = message or "warning"
        self.warnings.append(text)
        self._log(f"⚠ {text}")

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
        if self.vram_total_mb is not None or self.vram_used_mb is not None:
            return "VRAM", self.vram_used_mb, self.vram_total_mb
        if self.ram_total_mb is not None or self.ram_used_mb is not None or self.ram_process_mb is not None:
            return "RAM", self.ram_used_mb, self.ram_total_mb
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
    report: Any = None  # llmcustoms DataReport
    plan: Plan | None = None  # the core's plan (llmcustoms.core.planner.Plan)
    settings: Any = None  # llmcustoms.utils.config.Settings, read once when the app starts (None: a bad .env)
    run: RunHandle | None = None
    chat_run_dir: str | None = None
