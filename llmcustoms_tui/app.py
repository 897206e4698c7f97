"""``llmcustoms-tui``: the wizard app — hardware → data → plan → train → chat.

The app holds the shared choices (``WizardState``), knows the screen order, owns the training
worker (so leaving the dashboard does not stop a run), and is the one place where a worker's
failure becomes a readable message. Everything heavy is imported by the worker that needs it:
``import llmcustoms_tui.app`` loads no torch, transformers, peft or datasets.
"""

from __future__ import annotations

import argparse
import sys
import threading
from collections.abc import Callable
from functools import partial
from typing import Any, ClassVar

from textual import on, work
from textual.app import App
from textual.binding import Binding, BindingType
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.widgets import Input
from textual.worker import Worker, WorkerState

from llmcustoms_tui import backend
from llmcustoms_tui.format import describe_error, tui_hint
from llmcustoms_tui.launcher import (
    STARTING_WORKER,
    TRAINING_WORKER,
    DetachedLauncher,
    Launcher,
    RunHandle,
    ThreadLauncher,
)
from llmcustoms_tui.messages import LiveRunsFound
from llmcustoms_tui.screens.base import WizardScreen
from llmcustoms_tui.screens.confirm import ConfirmScreen
from llmcustoms_tui.state import WizardState
from llmcustoms_tui.widgets.stepbar import STEPS

#: What a failed worker was doing, for the notification's title.
WORKER_TITLES = {
    "detect-hardware": "Hardware probe failed",
    "validate-data": "Data check failed",
    "build-preview": "Example preview failed",
    "make-plan": "Planning failed",
    "send-plan": "Working out what would be sent failed",
    "follow-run": "Following the run failed",
    TRAINING_WORKER: "Training failed",
    STARTING_WORKER: "Starting the run failed",
    "load-chat": "Loading the model failed",
    "answer": "Answering failed",
    "find-live-runs": "Looking for running trainings failed",
}

STEP_HELP = {
    "hardware": "GPUs, VRAM, CPU, RAM, disk and the torch/CUDA build",
    "data": "Choose and check the folder of documents",
    "plan": "Model, preset, memory estimate and time",
    "train": "The live training dashboard",
    "chat": "Chat with the trained model",
}


#: The theme for terminals with 8 or 16 colours: the terminal's own ANSI colours (accent green, warning
#: yellow, error red), so only errors are red.
FEW_COLOURS_THEME = "ansi-dark"


def uses_few_colours(color_system: str | None) -> bool:
    """Whether a terminal with this Rich colour system (``standard``: 8/16 colours) needs the ANSI theme."""
    return color_system in ("standard", "windows")


class StepCommands(Provider):
    """Command palette entries for the five screens."""

    def _entries(self) -> list[tuple[str, str, Callable[[], None]]]:
        app: LLMCustomsApp = self.app  # type: ignore[assignment]
        return [(f"Go to {title}", STEP_HELP[step], partial(app.goto, step)) for step, title in STEPS]

    async def discover(self) -> Hits:
        for text, help_text, callback in self._entries():
            yield DiscoveryHit(text, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for text, help_text, callback in self._entries():
            score = matcher.match(text)
            if score > 0:
                yield Hit(score, matcher.highlight(text), callback, help=help_text)


class LLMCustomsApp(App[None]):
    """The LLMCustoms wizard."""

    TITLE = "LLMCustoms"
    SUB_TITLE = "fine-tune a small chat model on your text"
    CSS_PATH = "app.tcss"
    COMMANDS = App.COMMANDS | {StepCommands}
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-normal"), (120, "-wide")]
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit", id="quit"),
        Binding("ctrl+q", "quit", "Quit", show=False, priority=True, id="quit-now"),
    ]

    def __init__(
        self,
        data: str | None = None,
        model: str | None = None,
        preset: str | None = None,
        *,
        max_steps: int | None = None,
        qa: str = "auto",
        hardware: dict[str, Any] | None = None,
        hardware_probe: Callable[[], dict[str, Any]] | None = None,
        launcher: Launcher | None = None,
        chat_factory: Callable[[str], backend.ChatSessionLike] | None = None,
        check_live_runs: bool = True,
        cursor_blink: bool = True,
        few_colours: bool | None = None,
    ) -> None:
        """Options are the command line's; the keyword-only ones let tests and scripts inject parts.

        Args:
            hardware: a fixed hardware report (skips probing; snapshots use it).
            hardware_probe: called in a worker instead of the core's HardwareDetector.
            launcher: starts training runs (default: a detached process that outlives the app).
            chat_factory: ``run_dir -> loaded ChatSession`` (default: the core's ChatSession).
            check_live_runs: offer to re-open a run still going on from an earlier session.
            cursor_blink: False freezes text cursors (deterministic screenshots).
            few_colours: draw with the terminal's own 8/16 ANSI colours (None: when the terminal has no
                more, e.g. ``TERM=xterm``).
        """
        super().__init__()
        if few_colours is None:
            few_colours = uses_few_colours(self.console.color_system)
        if few_colours:
            # The default theme's orange accent and warning both become bright red in 16 colours, so
            # every heading and key would look like an error; this theme names the terminal's colours.
            self.theme = FEW_COLOURS_THEME
        settings = backend.load_settings()  # read once, here; the screens hand them to the core
        default_model, default_preset = backend.default_model_and_preset(settings)  # the CLI's defaults
        self.state = WizardState(data_path=data, model=model or default_model, preset=preset or default_preset,
                                 max_steps=max_steps, qa=qa, hardware=hardware, settings=settings)
        self._hardware_probe = hardware_probe
        self.launcher: Launcher = launcher or DetachedLauncher()
        self._chat_factory = chat_factory
        self._check_live_runs = check_live_runs
        self._cursor_blink = cursor_blink

    # -- screens -------------------------------------------------------------------------------
    def get_default_screen(self) -> WizardScreen:
        from llmcustoms_tui.screens.hardware import HardwareScreen

        return HardwareScreen()

    def on_mount(self) -> None:
        if self._check_live_runs:
            self.find_live_runs()

    def goto(self, step: str) -> None:
        """Show the screen of ``step``: back down the stack if it is open, else open it on top."""
        for index, screen in enumerate(self.screen_stack):
            if isinstance(screen, WizardScreen) and screen.STEP == step:
                while len(self.screen_stack) > index + 1:
                    self.pop_screen()
                return
        new_screen = self._make_screen(step)
        if new_screen is not None:
            self.push_screen(new_screen)

    def _make_screen(self, step: str) -> WizardScreen | None:
        """A new screen for ``step``, or None (with a notification) when its step is not reachable yet."""
        if step == "hardware":
            return self.get_default_screen()
        if step == "data":
            from llmcustoms_tui.screens.data import DataScreen

            return DataScreen()
        if step == "plan":
            report = self.state.report
            if report is None or not report.ok:
                self.notify("Choose a data folder that passes the check first.", severity="warning")
                return None if any(isinstance(s, WizardScreen) and s.STEP == "data" for s in self.screen_stack) else \
                    self._make_screen("data")
            from llmcustoms_tui.screens.plan import PlanScreen

            return PlanScreen()
        if step == "train":
            if self.state.run is None:
                self.notify("No run yet: start one from the plan (n).", severity="warning")
                return None
            from llmcustoms_tui.screens.train import TrainScreen

            return TrainScreen(self.state.run)
        if step == "chat":
            run_dir = self._chat_run_dir()
            if run_dir is None:
                self.notify("No trained run yet: train one first.", severity="warning")
                return None
            from llmcustoms_tui.screens.chat import ChatScreen

            return ChatScreen(run_dir)
        raise ValueError(f"unknown step {step!r}")

    def _chat_run_dir(self) -> str | None:
        run = self.state.run
        if run is not None and backend.has_adapter(run.run_dir):
            return str(run.run_dir)
        return self.state.chat_run_dir or backend.latest_finished_run()

    # -- what screens call ---------------------------------------------------------------------
    def probe_hardware(self) -> dict[str, Any]:
        """The hardware report (blocking: call from a worker)."""
        return (self._hardware_probe or backend.detect_hardware)()

    def open_chat(self, run_dir: str) -> backend.ChatSessionLike:
        """A loaded chat session on ``run_dir`` (blocking: call from a worker)."""
        if self._chat_factory is not None:
            return self._chat_factory(run_dir)
        return backend.open_chat_session(run_dir)

    def freeze_cursor(self, widget: Input) -> None:
        """Stop a text cursor blinking when the app was asked to (screenshots, snapshots)."""
        if not self._cursor_blink:
            widget.cursor_blink = False

    def start_run(self, send_consent: bool = False) -> RunHandle | None:
        """Start training with the wizard's choices and show the dashboard.

        ``send_consent``: the user confirmed that the text may go to the Q&A server (the plan screen asks).
        """
        run = self.state.run
        if run is not None and run.alive:
            self.notify("A run is already going on: here is its dashboard.", severity="warning")
            self.goto("train")
            return run
        model = self.state.model
        if model in ("", "auto") and self.state.plan is not None:
            # Train what the plan showed, not a second "auto" decision that could differ.
            model = self.state.plan.model
        fields = {"data_path": self.state.data_path, "model": model, "preset": self.state.preset,
                  "max_steps": self.state.max_steps, "qa": self.state.qa, "send_consent": send_consent}
        self.state.run = self.launcher.start(self, fields)
        self.state.chat_run_dir = None
        self.goto("train")
        return self.state.run

    def ask_from_thread(self, title: str, body: str, *, yes: str = "Yes", no: str = "No") -> bool:
        """Ask the user a yes/no question from a worker thread and wait for the answer."""
        answered = threading.Event()
        answer = [False]

        def done(result: bool | None) -> None:
            answer[0] = bool(result)
            answered.set()

        self.call_from_thread(self.push_screen, ConfirmScreen(title, body, yes=yes, no=no), done)
        while not answered.wait(0.2):
            if not self.is_running:
                return False
        return answer[0]

    # -- runs from an earlier session ----------------------------------------------------------
    @work(thread=True, exclusive=True, name="find-live-runs", group="runs", exit_on_error=False)
    def find_live_runs(self) -> None:
        """Look for runs still going on (started by an earlier session or the CLI)."""
        found = backend.find_live_runs()
        if found:
            self.post_message(LiveRunsFound(found, [backend.describe_run(path) for path in found]))

    @on(LiveRunsFound)
    def _live_runs_found(self, message: LiveRunsFound) -> None:
        run_dir = message.run_dirs[0]
        what = message.descriptions[0] if message.descriptions else run_dir
        more = f"\n({len(message.run_dirs) - 1} more running: `llmcustoms runs` lists them.)" \
            if len(message.run_dirs) > 1 else ""
        self.push_screen(
            ConfirmScreen("A training run is still going on", f"{what}{more}\n\nOpen its dashboard?",
                          yes="Open", no="Not now"),
            partial(self._attach_confirmed, run_dir))

    def _attach_confirmed(self, run_dir: str, attach: bool | None) -> None:
        if attach:
            self.state.run = RunHandle.attach(run_dir)
            self.goto("train")

    # -- the one place worker failures turn into messages -------------------------------------
    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """Workers owned by the app itself (training, the live-run check)."""
        self.handle_worker_state(event.worker, event.state)

    def handle_worker_state(self, worker: Worker[Any], state: WorkerState) -> None:
        """Every worker's state change ends here: failures become a readable notification and a
        message on the screen that owns the worker; the end of training may close the app."""
        if state == WorkerState.ERROR:
            # The core's advice names CLI options; here the same choice is a key.
            text = tui_hint(describe_error(worker.error), on_plan_screen=isinstance(self.screen, WizardScreen) and self.screen.STEP == "plan")
            node = worker.node
            if isinstance(node, WizardScreen) and node.is_attached:
                node.show_worker_error(worker.name, text)
            self.notify(text, title=WORKER_TITLES.get(worker.name, "Something failed"), severity="error",
                        timeout=12)

    # -- quitting ------------------------------------------------------------------------------
    async def action_quit(self) -> None:
        """q / ctrl+q: quit, asking first when that would stop a run or leave its dashboard."""
        if isinstance(self.screen, ConfirmScreen):
            return
        run = self.state.run
        from llmcustoms_tui.screens.train import TrainScreen

        if run is not None and run.alive and (run.in_process or isinstance(self.screen, TrainScreen)):
            if run.in_process:
                body = ("Training runs inside this app: quitting stops it after the current step and "
                        "saves the adapter trained so far.")
            else:
                body = "The run goes on in its own process; re-open its dashboard when you come back."
            self.push_screen(ConfirmScreen("Quit while training?", body, yes="Quit", no="Stay",
                                           danger=run.in_process), self._quit_confirmed)
            return
        self.exit()

    def _quit_confirmed(self, quit_: bool | None) -> None:
        if not quit_:
            return
        run = self.state.run
        if run is not None and run.in_process and run.alive:
            self.notify(run.request_stop() + " LLMCustoms closes when it is saved.", title="Quitting", timeout=60)
            # Whatever launcher runs it, the handle says when it has ended: then close.
            self.set_interval(0.2, partial(self._exit_when_ended, run), name="exit-when-run-ended")
            return
        self.exit()

    def _exit_when_ended(self, run: RunHandle) -> None:
        if not run.alive:
            self.exit()


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``llmcustoms-tui``."""
    parser = argparse.ArgumentParser(
        prog="llmcustoms-tui",
        description="A keyboard-driven wizard: hardware → data folder → plan → training → chat.",
    )
    parser.add_argument("--data", metavar="DIR", help="the folder of documents to train on (.txt, .md, .pdf, .docx, .html, .epub and chat .jsonl)")
    parser.add_argument("--model", metavar="NAME",
                        help="a model name (see `llmcustoms models`), a Hub id or a local folder "
                             "(default: DEFAULT_MODEL, else auto)")
    parser.add_argument("--preset", metavar="NAME",
                        help="highspeed, quality or bestaccuracy (default: DEFAULT_PRESET, else quality)")
    parser.add_argument("--qa", choices=("auto", "offline", "groq"), default="auto",
                        help="how Q&A pairs are made (default: auto)")
    parser.add_argument("--max-steps", type=int, metavar="N", help="stop training after N steps (quick tries)")
    parser.add_argument("--in-process", action="store_true",
                        help="train inside this app instead of a detached process (the run ends with the app)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``llmcustoms-tui``."""
    args = build_parser().parse_args(argv)
    preset = None
    if args.preset:
        try:
            preset = backend.check_preset(args.preset)
        except Exception as error:  # noqa: BLE001 - the core's sentence, then exit 2
            print(f"llmcustoms-tui: {describe_error(error)}", file=sys.stderr)
            return 2
    if args.max_steps is not None and args.max_steps < 1:
        print("llmcustoms-tui: --max-steps must be 1 or more.", file=sys.stderr)
        return 2
    app = LLMCustomsApp(data=args.data, model=args.model, preset=preset, qa=args.qa, max_steps=args.max_steps,
                        launcher=ThreadLauncher() if args.in_process else None)
    app.run()
    return app.return_code or 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
