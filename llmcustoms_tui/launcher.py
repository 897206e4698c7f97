"""Starting and following training runs.

The dashboard never receives callbacks from the trainer: it tails ``run_dir/events.jsonl``. A
``RunHandle`` only says where that file is, whether the run can still be talking, and how to ask
it to stop. ``DetachedLauncher`` (the default) starts the run in its own process through the core
(``llmcustoms.training.detach``): it survives the TUI closing and the SSH connection dropping.
``ThreadLauncher`` runs ``run_training`` in a thread of this process instead (``--in-process``).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # pragma: no cover
    from textual.app import App

    from llmcustoms.runs.rundir import RunDir
    from llmcustoms.training.request import TrainRequest

#: Worker name and group of the training thread (the app's error handler knows it by this name).
TRAINING_WORKER = "training"
#: Worker name of the thread that starts a detached run.
STARTING_WORKER = "start-run"


class RunHandle:
    """A training run this app started or attached to."""

    def __init__(self, run_dir: str | os.PathLike[str] | None = None, *, in_process: bool = False,
                 label: str = "") -> None:
        self._run_dir = Path(run_dir) if run_dir is not None else None
        #: Set to ask an in-process run to stop gracefully (the trainer still saves an adapter).
        self.stop_event = threading.Event()
        #: Set when an in-process run's thread has ended (normally or not).
        self.ended = threading.Event()
        #: The readable error of an in-process run that failed before or outside its events.
        self.error: str | None = None
        #: True when the run lives in this process and dies with it.
        self.in_process = in_process
        self.label = label
        self.result: Any = None
        #: True while a launcher is still starting the run (no directory yet, but not dead either).
        self.starting = False

    # -- where ---------------------------------------------------------------------------------
    @property
    def run_dir(self) -> Path | None:
        """The run directory, once the trainer has created it."""
        return self._run_dir

    def set_run_dir(self, run_dir: RunDir | str | os.PathLike[str]) -> None:
        """Called by the trainer's ``on_run`` (a RunDir or a path) from the training thread."""
        from llmcustoms.runs.rundir import RunDir  # light (paths and json); here so the app starts without it

        self._run_dir = run_dir.path if isinstance(run_dir, RunDir) else Path(run_dir)

    @property
    def events_path(self) -> Path | None:
        """``events.jsonl`` of the run, once known."""
        if self._run_dir is None:
            return None
        from llmcustoms_tui.backend import events_path

        return events_path(self._run_dir)

    @property
    def run_id(self) -> str:
        """The run's id (its directory name), or the label while it has none."""
        return self._run_dir.name if self._run_dir is not None else (self.label or "new run")

    # -- life ----------------------------------------------------------------------------------
    @property
    def alive(self) -> bool:
        """Whether the run may still be writing events."""
        if self.in_process:
            return not self.ended.is_set()
        if self._run_dir is None:
            return self.starting
        from llmcustoms_tui.backend import run_is_live

        return run_is_live(self._run_dir)

    @property
    def stop_requested(self) -> bool:
        """Whether someone asked the run to stop (this app, or ``llmcustoms stop`` writing the stop file)."""
        if self.stop_event.is_set():
            return True
        if self._run_dir is None:
            return False
        from llmcustoms.runs.rundir import RunDir  # light: no torch

        return RunDir(self._run_dir).stop_path.exists()

    def request_stop(self) -> str:
        """Ask the run to stop gracefully; returns a sentence saying what happens next."""
        if self.in_process:
            self.stop_event.set()
            return "Stopping after the current step; the adapter trained so far is saved."
        if self._run_dir is not None:
            from llmcustoms_tui.backend import request_detached_stop
            from llmcustoms_tui.format import describe_error

            try:
                request_detached_stop(self._run_dir)
            except Exception as error:  # noqa: BLE001 - e.g. it ended meanwhile: say so
                return describe_error(error)
            self.stop_event.set()  # remembered here too: the dashboard says "stopping" at once
            return "Asked the run to stop: it ends the current step and saves the adapter trained so far."
        return "The run is still starting: stop it once its dashboard shows the first step."

    @classmethod
    def attach(cls, run_dir: str | os.PathLike[str]) -> RunHandle:
        """A handle on a run already on disk (started earlier, maybe by another process)."""
        return cls(run_dir, in_process=False)


class Launcher(Protocol):
    """Starts a training run for a request and returns its handle at once."""

    def start(self, app: App[Any], fields: dict[str, Any]) -> RunHandle:  # pragma: no cover - protocol
        """Start a run for the TrainRequest ``fields`` (data_path, model, preset, max_steps, qa…)."""
        ...


class ThreadLauncher:
    """Runs ``llmcustoms.training.trainer.run_training`` in a thread worker owned by the app.

    The worker belongs to the app, not to the dashboard, so leaving the dashboard does not stop
    the run; the app's error handler turns a failure into a readable notification.
    """

    def __init__(self, run_training: Callable[..., Any] | None = None) -> None:
        self._run_training = run_training

    def start(self, app: App[Any], fields: dict[str, Any]) -> RunHandle:
        """Start the run; the handle learns its directory as soon as the trainer creates it."""
        handle = RunHandle(in_process=True, label=f"{fields.get('model', '')} · {fields.get('preset', '')}")

        def train() -> Any:
            try:
                from llmcustoms.utils.logger import quiet_libraries

                # As the CLI and a detached worker do: the libraries' deprecation chatter and progress bars
                # would be written over the screen; the run's events tell the story.
                quiet_libraries()
                # Building the request imports the trainer (torch): in the thread, not the UI.
                request = make_request(**fields)
                run = self._run_training
                if run is None:
                    from llmcustoms.training.trainer import run_training

                    run = run_training
                handle.result = run(request, stop=handle.stop_event, on_run=handle.set_run_dir)
                return handle.result
            except BaseException as error:
                from llmcustoms_tui.format import describe_error

                handle.error = describe_error(error)
                raise
            finally:
                handle.ended.set()

        app.run_worker(train, name=TRAINING_WORKER, group=TRAINING_WORKER, thread=True, exit_on_error=False,
                       description="training run")
        return handle


class DetachedLauncher:
    """Starts the run in a detached worker process (``llmcustoms.training.detach.start_detached``).

    Starting takes about a second (the core checks the request, then waits for the worker to
    take the run's lock), so it happens in a thread worker; the handle learns its directory then.
    """

    def start(self, app: App[Any], fields: dict[str, Any]) -> RunHandle:
        """Start the run; failures to start land in ``handle.error`` and in the app's error handler."""
        handle = RunHandle(in_process=False, label=f"{fields.get('model', '')} · {fields.get('preset', '')}")
        handle.starting = True

        def start() -> Any:
            try:
                from llmcustoms.training.detach import start_detached

                run = start_detached(make_request(**fields))
                handle.set_run_dir(run)
                return run
            except BaseException as error:
                from llmcustoms_tui.format import describe_error

                handle.error = describe_error(error)
                handle.ended.set()
                raise
            finally:
                handle.starting = False

        app.run_worker(start, name=STARTING_WORKER, group=TRAINING_WORKER, thread=True, exit_on_error=False,
                       description="starting a detached run")
        return handle


def make_request(**fields: Any) -> TrainRequest:
    """The core's TrainRequest from the wizard's choices (fields the core does not know are dropped)."""
    import dataclasses

    from llmcustoms.training.request import TrainRequest

    known = {f.name for f in dataclasses.fields(TrainRequest)}
    return TrainRequest(**{k: v for k, v in fields.items() if k in known and v is not None})
