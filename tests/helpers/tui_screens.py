"""Shared steps that bring the TUI to one screen, for the snapshot tests at every size and colour depth.

Each ``show_*`` returns the ``run_before`` coroutine ``snap_compare`` runs: the same steps at 100×30, at
80×24 and in 16 colours, so the pictures differ only in what the terminal changes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from textual.widgets import DirectoryTree

from llmcustoms_tui import backend
from llmcustoms_tui.launcher import RunHandle
from llmcustoms_tui.screens.chat import ChatScreen
from llmcustoms_tui.screens.plan import PlanScreen
from llmcustoms_tui.screens.train import TrainScreen
from tests.helpers.tui_pilot import wait_for

RunBefore = Callable[[object], Awaitable[None]]


def busy(app) -> bool:
    """True while a screen's worker runs (the folder tree's loader never completes: it is not counted)."""
    return any(not worker.is_finished and not isinstance(worker.node, DirectoryTree) for worker in app.workers)


async def settle(pilot) -> None:
    """Wait for the screens' workers, then hide the toasts (they time out: not part of a screen)."""
    await wait_for(pilot, lambda: not busy(pilot.app), what="the workers")
    await pilot.pause()
    pilot.app.clear_notifications()
    await pilot.pause()


def show_data_preview(app) -> RunBefore:
    """From the hardware screen to the data screen with its preview of examples."""
    async def run_before(pilot) -> None:
        await pilot.press("enter")
        await wait_for(pilot, lambda: len(app.screen.query(".sample")) > 0, what="the preview")
        await settle(pilot)
    return run_before


def show_plan(app) -> RunBefore:
    """On to the plan screen, once the folder's check has finished."""
    async def run_before(pilot) -> None:
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.state.report is not None)
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, PlanScreen) and app.state.plan is not None)
        await settle(pilot)
    return run_before


def show_finished_run(app, run_dir: Path) -> RunBefore:
    """The dashboard of the finished run in ``run_dir``."""
    async def run_before(pilot) -> None:
        app.state.run = RunHandle.attach(run_dir)
        app.goto("train")
        await wait_for(pilot, lambda: isinstance(app.screen, TrainScreen) and app.screen.run_state.finished)
        await settle(pilot)
    return run_before


def show_chat_answer(app, run_dir: Path) -> RunBefore:
    """The chat screen of ``run_dir`` after asking its first held-out question (tuned and base side by side)."""
    async def run_before(pilot) -> None:
        app.state.chat_run_dir = str(run_dir)
        app.goto("chat")
        await wait_for(pilot, lambda: isinstance(app.screen, ChatScreen) and app.screen.session is not None)
        await pilot.press("ctrl+n", "enter")
        await wait_for(pilot, lambda: not app.screen.busy and app.screen.turns)
        await settle(pilot)
    return run_before


def count_models_as_downloadable(monkeypatch) -> None:
    """Plans treat a model that is not on disk as one that can be downloaded (this machine has no Hub)."""
    real_make_plan = backend.make_plan

    def downloadable(*args):
        plan = real_make_plan(*args)
        if hasattr(plan, "available"):
            object.__setattr__(plan, "available", True)
        return plan

    monkeypatch.setattr(backend, "make_plan", downloadable)
