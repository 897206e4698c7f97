"""SVG snapshots of the five screens at 100×30 (pytest-textual-snapshot).

Everything shown is deterministic: a fixed hardware report, a data folder written here, a model
that is not on disk (so the preview does not depend on the model cache), a finished scripted run
with its knowledge score, and a scripted chat session asked a held-out question. Text cursors do not blink. Update with ``pytest --snapshot-update``.
"""

from __future__ import annotations

from test_tui import make_app, wait_for, write_notes
from test_tui_fakes import SAMPLE_KNOWLEDGE, SAMPLE_PROBES, FakeChatSession, scripted_events, write_run
from textual.widgets import DirectoryTree

from llmcustoms_tui import backend
from llmcustoms_tui.launcher import RunHandle
from llmcustoms_tui.screens.chat import ChatScreen
from llmcustoms_tui.screens.plan import PlanScreen
from llmcustoms_tui.screens.train import TrainScreen

SIZE = (100, 30)


def _busy(app) -> bool:
    # The folder tree keeps a loader worker alive for the screen's life: it never completes.
    return any(not worker.is_finished and not isinstance(worker.node, DirectoryTree) for worker in app.workers)


async def _settle(pilot) -> None:
    """Wait for the screens' workers, then hide the toasts (they time out: not part of a screen)."""
    await wait_for(pilot, lambda: not _busy(pilot.app), what="the workers")
    await pilot.pause()
    pilot.app.clear_notifications()
    await pilot.pause()


def test_hardware_screen(snap_compare):
    assert snap_compare(make_app(), terminal_size=SIZE)


def test_data_screen(snap_compare, tmp_path):
    write_notes(tmp_path / "notes")  # the current folder is tmp_path: the tree and the path are relative
    app = make_app(data="notes", model="tinyllama", qa="offline")

    async def run_before(pilot) -> None:
        await pilot.press("enter")
        await wait_for(pilot, lambda: len(app.screen.query(".sample")) > 0, what="the preview")
        await _settle(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_plan_screen(snap_compare, tmp_path, monkeypatch):
    write_notes(tmp_path / "notes")
    real_make_plan = backend.make_plan

    def downloadable(*args):
        # tinyllama is not on disk: the snapshot must not depend on whether this machine reaches the Hub.
        plan = real_make_plan(*args)
        if hasattr(plan, "available"):
            object.__setattr__(plan, "available", True)
        return plan

    monkeypatch.setattr(backend, "make_plan", downloadable)
    app = make_app(data="notes", model="tinyllama", qa="offline")

    async def run_before(pilot) -> None:
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.state.report is not None)
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, PlanScreen) and app.state.plan is not None)
        await _settle(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_train_screen(snap_compare, tmp_path):
    run_dir = write_run(tmp_path / "runs", scripted_events(30, knowledge=True), knowledge=SAMPLE_KNOWLEDGE,
                        probes=SAMPLE_PROBES)
    app = make_app()

    async def run_before(pilot) -> None:
        app.state.run = RunHandle.attach(run_dir)
        app.goto("train")
        await wait_for(pilot, lambda: isinstance(app.screen, TrainScreen) and app.screen.run_state.finished)
        await _settle(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_chat_screen(snap_compare, tmp_path):
    run_dir = write_run(tmp_path / "runs", scripted_events(30, knowledge=True), knowledge=SAMPLE_KNOWLEDGE,
                        probes=SAMPLE_PROBES)
    app = make_app(chat_factory=FakeChatSession)

    async def run_before(pilot) -> None:
        app.state.chat_run_dir = str(run_dir)
        app.goto("chat")
        await wait_for(pilot, lambda: isinstance(app.screen, ChatScreen) and app.screen.session is not None)
        await pilot.press("ctrl+n", "enter")  # the first held-out question: tuned and base side by side
        await wait_for(pilot, lambda: not app.screen.busy and app.screen.turns)
        await _settle(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
