"""Step 4: the live training dashboard.

It follows the run's ``events.jsonl`` (the core's ``RunFollower``, polled from a worker) and
folds the events into a ``RunState``; it never receives callbacks from the trainer. So it shows a
run started in this app, a run started by another process, and a finished run the same way, and
leaving the screen (or the app, for a detached run) does not touch the run.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Static
from textual.worker import get_current_worker

from llmcustoms_tui import backend
from llmcustoms_tui.format import fmt_loss, knowledge_scored, tui_hint
from llmcustoms_tui.launcher import RunHandle
from llmcustoms_tui.messages import RunSnapshot
from llmcustoms_tui.screens.base import WizardScreen
from llmcustoms_tui.screens.confirm import ConfirmScreen
from llmcustoms_tui.state import RunState
from llmcustoms_tui.widgets.gauge import MemoryGauge
from llmcustoms_tui.widgets.knowledge import KnowledgeLine
from llmcustoms_tui.widgets.log_tail import LogTail
from llmcustoms_tui.widgets.loss_chart import LossChart
from llmcustoms_tui.widgets.progress import RunProgress

#: Seconds between two reads of events.jsonl.
POLL_S = 0.25
#: Seconds between two looks at run.json for a run in another process.
STATUS_POLL_S = 2.0
#: run.json statuses after which a run writes nothing more.
ENDED_STATUSES = frozenset({"done", "failed", "stopped", "interrupted"})

STATUS_WORDS = {
    "waiting": "preparing (reading data, loading the model)…",
    "running": "training",
    "stopping": "stopping: saving the adapter…",
    "done": "done",
    "stopped": "stopped (adapter saved)",
    "failed": "failed",
    "interrupted": "interrupted (its process is gone; `llmcustoms resume` continues it)",
}


def _shown_path(path: Path) -> str:
    """``path`` relative to the current folder when inside it (shorter to read), else as it is."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except (OSError, ValueError):
        return str(path)


class TrainScreen(WizardScreen):
    """Progress, loss, speed and memory of one run."""

    STEP = "train"
    # Two bindings for Esc and for n: the footer says what the key does now (check_action shows one).
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "leave", "Leave (run goes on)", id="leave"),
        Binding("escape", "back", "Back", id="back"),
        Binding("s", "stop", "Stop & save", id="stop"),
        Binding("n", "chat", "Next: chat", id="next"),
        Binding("n", "chat_later", "chat opens when the run ends", id="next-later"),
    ]

    def __init__(self, handle: RunHandle) -> None:
        super().__init__()
        self.handle = handle
        self.run_state = RunState()
        self._announced_end = False

    def compose_body(self) -> ComposeResult:
        with Vertical(id="train-body", classes="body"):
            yield Static(id="train-title")
            yield RunProgress(id="train-progress")
            with Horizontal(id="train-middle"):
                chart = LossChart(id="train-chart")
                chart.border_title = "loss  █ train  ● eval"
                yield chart
                stats = Static(id="train-stats")
                stats.border_title = "now"
                yield stats
            yield MemoryGauge(label=self._memory_label(), label_width=6, id="train-memory")
            yield KnowledgeLine(id="train-knowledge")
            yield Static(id="train-result")
            yield Static(id="error-panel", classes="error-panel")
            log = LogTail("No events yet.", id="train-log")
            log.border_title = "log"
            yield log

    def _memory_label(self) -> str:
        hardware = self.wizard.hardware or {}
        if hardware.get("device") == "cuda" or hardware.get("cuda_available"):
            return "VRAM"
        return "RAM" if hardware else "Memory"

    def on_mount(self) -> None:
        self.query_one("#error-panel").display = False
        self.query_one("#train-result").display = False
        self.query_one("#train-knowledge").display = False
        self.show_state(self.run_state)
        self.follow_run()

    # -- following the event file --------------------------------------------------------------
    @work(thread=True, exclusive=True, name="follow-run", group="follow", exit_on_error=False)
    def follow_run(self) -> None:
        """Follow the run with the core's ``RunFollower``, posting the folded state after each change."""
        worker = get_current_worker()
        handle = self.handle
        state = RunState()
        key = str(id(handle))
        follower = None
        posted = False
        stop_seen = False  # a stop asked elsewhere (``llmcustoms stop``) is shown as soon as it is seen

        def read_more() -> bool:
            """Fold what the follower read since last time; True when something changed."""
            nonlocal follower
            if follower is None:
                if handle.run_dir is None:
                    return False
                # A detached run ends when its process is gone; a run in this process when its thread ends.
                follower = backend.run_follower(handle.run_dir, watch_process=not handle.in_process,
                                                liveness_every_s=STATUS_POLL_S)
            update = follower.poll()
            for event in update.events:
                state.apply(event)
            if update.finished and not state.finished:  # its process is gone without a last event
                message = STATUS_WORDS["interrupted"] if update.status == "interrupted" else str(update.error or "")
                state.mark_ended(update.status, message)
                return True
            return bool(update.events)

        while not worker.is_cancelled:
            changed = read_more()
            if not stop_seen and not state.finished and handle.stop_requested:
                stop_seen = changed = True
            if not state.finished:
                if handle.run_dir is None and handle.error:
                    state.mark_ended("failed", handle.error)  # it never started
                    changed = True
                elif handle.in_process and handle.ended.is_set():
                    read_more()  # the last lines written before the thread ended
                    if handle.error:
                        state.mark_ended("failed", handle.error)
                    else:
                        state.mark_ended("done" if state.status == "running" else state.status or "done")
                    changed = True
            if state.finished and changed and handle.run_dir is not None and state.status == "done":
                # The done event does not say whether the user stopped the run; run.json does.
                status = backend.run_status(handle.run_dir)
                if status in ENDED_STATUSES and status != "interrupted":
                    state.status = status
            if state.finished and changed and handle.run_dir is not None:
                # run.json has the whole score, and the sentence when the text had too few facts to test.
                stored, _ = backend.run_knowledge(handle.run_dir)
                if stored is not None and (state.knowledge is None or knowledge_scored(stored)
                                           or not knowledge_scored(state.knowledge)):
                    state.knowledge = stored
            if changed or not posted:
                self.post_message(RunSnapshot(key, state.snapshot()))
                posted = True
            if state.finished:
                return
            time.sleep(POLL_S)

    @on(RunSnapshot)
    def _snapshot(self, message: RunSnapshot) -> None:
        self.run_state = message.state
        self.show_state(message.state)
        if message.state.finished and not self._announced_end:
            self._announced_end = True
            self._run_ended(message.state)
        self.refresh_bindings()

    def _run_ended(self, state: RunState) -> None:
        run_dir = self.handle.run_dir
        if backend.has_adapter(run_dir):
            self.wizard.chat_run_dir = str(run_dir)
        if state.status == "failed":
            self.notify(tui_hint(state.message or "The run failed."), title="Training failed", severity="error",
                        timeout=12)
        # A finished run is said on the screen itself (the title and the result lines, with the adapter's
        # folder): a toast would only cover the lines it repeats.

    def shown_status(self, state: RunState) -> str:
        """The status to show: ``stopping`` from the moment Stop was asked until the run has ended."""
        if not state.finished and state.status in ("waiting", "running") and self.handle.stop_requested:
            return "stopping"
        return state.status

    # -- drawing -------------------------------------------------------------------------------
    def show_state(self, state: RunState) -> None:
        """Draw everything from one RunState."""
        title = Text()
        title.append(f"Run {self.handle.run_id}", "bold")
        status = self.shown_status(state)
        title.append(f"  ·  {STATUS_WORDS.get(status, status)}")
        self.query_one("#train-title", Static).update(title)
        self.query_one(RunProgress).update_progress(state.step, state.max_steps, state.eta_s, state.finished)
        self.query_one(LossChart).set_data(state.train_points, state.eval_points, state.max_steps)

        stats = Table.grid(padding=(0, 1))
        stats.add_column(style="bold", no_wrap=True)
        stats.add_column(no_wrap=True)
        stats.add_row("loss", fmt_loss(state.loss))
        stats.add_row("eval loss", fmt_loss(state.eval_loss))
        dev = state.dev_score
        narrow = self.has_class("-narrow")
        if dev is not None:
            latest, best = dev
            value = f"{latest * 100:.0f} %"
            if best > latest and not narrow:
                value += f" (best {best * 100:.0f})"
            stats.add_row("dev facts", value)
        if dev is None or not narrow:  # a narrow panel has five rows: the dev questions matter more
            stats.add_row("lr", f"{state.lr:.2e}" if state.lr is not None else "—")
        stats.add_row("tokens/s", f"{state.tokens_per_s:,.0f}" if state.tokens_per_s is not None else "—")
        stats.add_row("warnings", str(len(state.warnings)))
        self.query_one("#train-stats", Static).update(stats)

        memory = self.query_one("#train-memory", MemoryGauge)
        label, used, total = state.memory
        if used is None and total is None:
            label = self._memory_label()  # nothing measured yet: name what the run will use
        memory.label = label
        if label == "RAM":
            memory.set_memory(used, total, available_mb=state.ram_available_mb, process_mb=state.ram_process_mb)
        else:
            memory.set_memory(used, total)

        result = self.query_one("#train-result", Static)
        lines = self._result_lines(state)
        if lines is not None:
            result.update(lines)
            result.display = True
        knowledge = self.query_one("#train-knowledge", KnowledgeLine)
        if state.finished and state.knowledge is not None and state.status != "failed":
            knowledge.set_knowledge(state.knowledge)
            knowledge.display = True
        self.query_one("#train-log", LogTail).set_lines(state.log)
        if state.status == "failed":
            panel = self.query_one("#error-panel", Static)
            panel.update(Text(f"✖ {tui_hint(state.message or 'The run failed.')}"))
            panel.display = True

    def _result_lines(self, state: RunState) -> Text | None:
        """The lines under the gauges once the run has ended: eval loss before/after, and where the adapter is."""
        if not state.finished:
            return None
        text = Text()
        if state.eval_loss_before is not None or state.eval_loss_after is not None:
            text.append("Eval loss ", style="bold")
            text.append(f"before {fmt_loss(state.eval_loss_before)} → after {fmt_loss(state.eval_loss_after)}")
            before, after = state.eval_loss_before, state.eval_loss_after
            if before and after is not None:
                change = (after - before) / before * 100
                text.append(f"  ({change:+.1f} %)", "bold")
        run_dir = self.handle.run_dir
        if state.status != "failed" and run_dir is not None and backend.has_adapter(run_dir):
            if text:
                text.append("\n")
            text.append("Adapter ", style="bold")
            text.append(f"{_shown_path(backend.adapter_dir(run_dir))}  ·  n: chat with it")
        return text or None

    # -- keys ----------------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        ended = self.run_state.finished
        if action == "stop":
            # Hidden once asked: a second press would only ask again while the run saves.
            return False if ended or self.handle.stop_requested else True
        if action in ("chat", "back"):
            return ended
        if action in ("chat_later", "leave"):
            return not ended
        return super().check_action(action, parameters)

    def action_leave(self) -> None:
        """Esc while training: leave the dashboard; the run goes on (re-open it from the command palette)."""
        self.notify("The run goes on. Re-open its dashboard from the command palette (ctrl+p → Train).")
        self.app.pop_screen()

    def action_back(self) -> None:
        """Esc once the run has ended: the previous step."""
        self.app.pop_screen()

    def action_chat_later(self) -> None:
        """n while training: say when the chat opens."""
        self.notify("The chat opens when the run ends: n then chats with the trained model.")

    def action_stop(self) -> None:
        """s: stop gracefully (asks first); the adapter trained so far is saved."""
        if self.run_state.finished:
            return
        self.app.push_screen(
            ConfirmScreen("Stop training?", "The run stops after the current step and saves the adapter "
                          "trained so far. It can not be continued from here.", yes="Stop", no="Keep training",
                          danger=True),
            self._stop_confirmed)

    def _stop_confirmed(self, stop: bool | None) -> None:
        if stop:
            self.notify(self.handle.request_stop(), title="Stopping")
            # "stopping…" from now on: the run may need minutes to end its step and save.
            self.show_state(self.run_state)
            self.refresh_bindings()

    def action_chat(self) -> None:
        """n: chat with the trained model."""
        if not self.run_state.finished:
            self.notify("The run is still going; chat opens when it is done.", severity="warning")
            return
        self.llm_app.goto("chat")
