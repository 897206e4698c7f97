"""Runs in their own process: start, follow, stop and resume them — the CLI's and the TUI's API.

    run = start_detached(TrainRequest(data_path="notes/", preset="quality"))   # returns in ~1 s
    for event in follow_run(run): ...            # or tail run.events_path yourself
    run_state(run)["status"]                     # 'running' | 'done' | … | 'interrupted'
    stop_run(run)                                # graceful: a checkpoint and the adapter are saved
    resume_run(run)                              # a killed or stopped run goes on from its last checkpoint

The worker (``python -m llmcustoms.training.worker RUN_DIR``) starts in a new session
(``start_new_session=True``: the terminal's SIGHUP, an SSH disconnect, never reaches it) with its
output in ``RUN_DIR/train.log``. ``start_detached`` and ``resume_run`` return once the worker has
taken the run's lock and written ``status: running`` with its pid into run.json.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from llmcustoms.errors import InputError, TrainingError
from llmcustoms.planning.presets import check_preset
from llmcustoms.runs.follow import RunFollower
from llmcustoms.runs.rundir import RunBusyError, RunDir, pid_is_alive, run_is_live
from llmcustoms.runs.status import run_state as _run_state
from llmcustoms.training.prepare import folder_report
from llmcustoms.training.request import TrainRequest
from llmcustoms.training.trainer import check_resumable
from llmcustoms.utils.validators import check_positive_int

#: How long a starter waits for the worker's first sign of life (imports on a busy machine are slow).
START_TIMEOUT_S = 120.0

RunRef = str | os.PathLike[str] | RunDir


def _open(run_ref: RunRef) -> RunDir:
    return run_ref if isinstance(run_ref, RunDir) else RunDir.open(run_ref)


def _display_name(model: str) -> str:
    """A name for the run's id before the worker has resolved the model (a folder's own name, else as typed)."""
    path = Path(model).expanduser()
    return path.name if path.exists() else model.split("/")[-1]


def _check_request(request: TrainRequest) -> None:
    """The cheap checks, so a bad folder or preset is a sentence here and not a failed run in the background."""

    request.preset = check_preset(request.preset)
    for name in ("max_steps", "save_steps", "eval_steps", "max_seq_len"):
        check_positive_int(name.replace("_", "-"), getattr(request, name))
    folder_report(request).raise_if_blocked()


# -- starting ------------------------------------------------------------------------------------
def create_detached_run(request: TrainRequest) -> RunDir:
    """A new run directory holding ``request``, status ``created``; nothing runs yet."""
    _check_request(request)
    request.data_path = os.path.abspath(request.data_path)
    return RunDir.create(_display_name(request.model), root=request.output_dir, status="created",
                         preset=request.preset, data_path=request.data_path, request=request.to_dict(),
                         detached=True)


def spawn_worker(run: RunDir, resume: bool = False, command: Sequence[str] | None = None) -> subprocess.Popen:
    """Start the worker for ``run`` in a new session, its output appended to ``train.log``.

    ``command`` replaces ``python -m llmcustoms.training.worker`` (test harnesses); RUN_DIR and
    ``--resume`` are appended to it.
    """
    argv = list(command or [sys.executable, "-m", "llmcustoms.training.worker"]) + [str(run.path)]
    if resume:
        argv.append("--resume")
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with open(run.log_path, "ab") as log:
        log.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(argv)}\n".encode())
        log.flush()
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True, close_fds=True, env=env, cwd=os.getcwd())
    # Reap it when it ends, so a long-lived starter (the TUI) keeps no zombie that looks alive.
    threading.Thread(target=process.wait, name=f"llmcustoms-reaper-{process.pid}", daemon=True).start()
    return process


def wait_until_running(run: RunDir, process: subprocess.Popen, timeout_s: float = START_TIMEOUT_S) -> None:
    """Return once ``process`` has written ``status: running`` with its pid; raise if it died first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            data = run.read()
        except (OSError, ValueError):
            data = {}
        if data.get("pid") == process.pid and data.get("status") in ("running", "done", "stopped", "failed"):
            return
        code = process.poll()
        if code is not None:
            reason = _log_tail(run)
            if code == 3:
                raise RunBusyError(reason or f"Run {run.id} is owned by another live process.")
            raise TrainingError(f"The training process for run {run.id} ended at once (exit code {code})"
                                + (f": {reason}" if reason else f"; see {run.log_path}."))
        time.sleep(0.05)
    raise TrainingError(f"The training process for run {run.id} did not start within {timeout_s:.0f} s; "
                        f"see {run.log_path}.")


def _log_tail(run: RunDir) -> str:
    """The last ``error:`` line the worker wrote, for a one-sentence failure."""
    try:
        lines = run.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    errors = [line[len("error: "):] for line in lines if line.startswith("error: ")]
    return errors[-1] if errors else ""


def start_detached(request: TrainRequest) -> RunDir:
    """Start ``request`` in a detached worker; returns the run once run.json says running with its pid."""
    run = create_detached_run(request)
    try:
        wait_until_running(run, spawn_worker(run))
    except Exception as error:
        data = run.read()
        if data.get("status") == "created":
            run.update(status="failed", error=str(error), finished_at=time.time())
        raise
    return run


# -- state, following, stopping, resuming --------------------------------------------------------
def run_state(run_ref: RunRef) -> dict[str, Any]:
    """The run's real status ('interrupted' for a dead worker) and what a display needs; see status.run_state."""
    return _run_state(_open(run_ref))


def follow_run(run_ref: RunRef, poll_s: float = 0.25, should_stop: Callable[[], bool] | None = None,
               liveness_every_s: float = 1.0) -> Iterator[dict[str, Any]]:
    """Every event of the run, then new ones as they come, until the run ends or its process is gone.

    The events a ``runs.follow.RunFollower`` reads, one by one: earlier segments (before a resume) are
    replayed too; only a ``done``/``error`` written while following ends it. ``should_stop()`` (e.g. a
    UI closing) ends it early without touching the run.
    """
    for update in RunFollower(_open(run_ref), poll_s=poll_s, liveness_every_s=liveness_every_s,
                              should_stop=should_stop):
        yield from update.events


def stop_run(run_ref: RunRef, wait_s: float | None = None, force: bool = False) -> dict[str, Any]:
    """Ask a live run to stop gracefully; returns its state (after up to ``wait_s`` seconds of waiting).

    The request is a ``stop`` file the run's watchdog notices within a second, plus SIGTERM for a
    detached worker (its handler sets the same stop flag). The run ends the current step, saves a
    checkpoint and the adapter, and ends as ``stopped``. ``force=True`` sends SIGKILL instead: the
    run becomes ``interrupted`` and can be resumed from its last checkpoint.
    """
    run = _open(run_ref)
    state = run_state(run)
    if not state["live"]:
        raise InputError(f"Run {run.id} is not running (it is {state['status']}): nothing to stop.")
    data = run.read()
    # The run's own process, when it is alive (never a recycled pid: its start time must match).
    live_pid = int(data["pid"]) if pid_is_alive(data.get("pid"), data.get("pid_started_at")) else None
    if force:
        if live_pid is not None:
            os.kill(live_pid, signal.SIGKILL)
    else:
        run.stop_path.write_text(f"{time.time()}\n", encoding="utf-8")
        if live_pid is not None and data.get("detached"):
            os.kill(live_pid, signal.SIGTERM)  # only a detached worker is known to handle it
    deadline = time.monotonic() + (wait_s or 0)
    while wait_s and time.monotonic() < deadline and run_is_live(run):
        time.sleep(0.1)
    return run_state(run)


def resume_run(run_ref: RunRef) -> RunDir:
    """Resume a killed, stopped or failed run in a detached worker; refused while the run is live."""
    run = _open(run_ref)
    state = run_state(run)
    if state["live"]:
        raise RunBusyError(f"Run {run.id} is still running (process {state['pid']}): follow it with "
                           f"`llmcustoms attach {run.id}`; resume is for runs that ended.")
    check_resumable(run)
    wait_until_running(run, spawn_worker(run, resume=True))
    return run
