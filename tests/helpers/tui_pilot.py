"""Driving the real app with Pilot: what the terminal shows, waiting for it, the app with fixed
hardware and no cursor blink, a small valid notes folder, and the walk from the data check to a
started run."""

from __future__ import annotations

import io
import time
from pathlib import Path

from rich.console import Console

from llmcustoms_tui.app import LLMCustomsApp
from llmcustoms_tui.screens.train import TrainScreen
from tests.helpers.tui_fakes import FIXED_HARDWARE


def shown(app: LLMCustomsApp) -> str:
    """The text on the terminal right now (the same render Textual's screenshots use)."""
    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), force_terminal=True, record=True,
                      legacy_windows=False, color_system=None)
    console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens))
    return console.export_text()


async def wait_for(pilot, predicate, timeout: float = 20.0, what: str = "the condition") -> None:
    """Let the app run until ``predicate()`` holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await pilot.pause(0.05)
    raise AssertionError(f"timed out waiting for {what}; the screen shows:\n{shown(pilot.app)}")


def contents(app: LLMCustomsApp, selector: str) -> list[str]:
    """The text of every Static matching ``selector`` on the current screen, scrolled into view or not."""
    return [str(widget.content) for widget in app.screen.query(selector)]


def make_app(**options) -> LLMCustomsApp:
    options.setdefault("hardware", FIXED_HARDWARE)
    options.setdefault("check_live_runs", False)
    options.setdefault("cursor_blink", False)
    options.setdefault("few_colours", False)  # the same colours whatever TERM the tests run under
    return LLMCustomsApp(**options)


def write_notes(folder: Path) -> Path:
    """A small, valid data folder."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "harbour.txt").write_text(
        "Question: What powers the Tide Engine?\nAnswer: The rising and falling tide of Quillhaven harbour.\n\n"
        + "The Tide Engine is a clockwork pump built under the harbour of Quillhaven. " * 12, encoding="utf-8")
    (folder / "festival.txt").write_text(
        "The Lantern Festival is held every autumn in Velmoria. Families float paper lanterns on the river "
        "and bakers sell honey bread in the market square. " * 10, encoding="utf-8")
    return folder


async def start_scripted_run(pilot, app: LLMCustomsApp) -> TrainScreen:
    """Data → plan → start, with the app's (scripted) launcher; returns the dashboard."""
    await pilot.press("enter")
    await wait_for(pilot, lambda: app.state.report is not None, what="the data check")
    await pilot.press("n")
    await wait_for(pilot, lambda: app.state.plan is not None, what="the plan")
    await pilot.press("n")
    await wait_for(pilot, lambda: isinstance(app.screen, TrainScreen), what="the dashboard")
    return app.screen


async def open_chat(pilot, app: LLMCustomsApp, run_dir: Path | str, what: str = "the chat"):
    """The chat screen on ``run_dir``, once its session has loaded (the screen is returned)."""
    from llmcustoms_tui.screens.chat import ChatScreen

    app.state.chat_run_dir = str(run_dir)
    app.goto("chat")
    await wait_for(pilot, lambda: isinstance(app.screen, ChatScreen) and app.screen.session is not None, what=what)
    return app.screen
