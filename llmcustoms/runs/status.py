"""What a run is doing now, for ``llmcustoms runs``, ``attach``, ``resume`` and the TUI.

``run.json`` says what the training process last wrote; a process killed with ``kill -9`` writes
nothing more, so a recorded ``running`` is checked against reality: the run's lock (held by the
live training process, dropped by the kernel when it dies) and, for a run written on another
machine, the heartbeat's age. A dead one is reported as ``interrupted``.
"""

from __future__ import annotations

import socket
import time
from typing import Any

from llmcustoms.errors import LLMCustomsError
from llmcustoms.runs.events import read_events
from llmcustoms.runs.info import RunInfo
from llmcustoms.runs.rundir import RunDir, list_runs, run_is_live

#: A run from another machine whose heartbeat is older than this is taken for dead.
STALE_HEARTBEAT_S = 120.0
#: A run still "created" this long after creation lost its worker before it started.
CREATED_GRACE_S = 120.0


def _age(seconds: float) -> str:
    if seconds < 90:
        return f"{int(seconds)}s"
    if seconds < 5400:
        return f"{int(seconds // 60)}m"
    if seconds < 172800:
        return f"{int(seconds // 3600)}h"
    return f"{int(seconds // 86400)}d"


def run_state(run: RunDir | str, data: dict[str, Any] | None = None) -> dict[str, Any]:
    """The run's status as it really is, with what a display needs.

    Keys: id, path, status ('created'|'running'|'done'|'failed'|'stopped'|'interrupted'),
    recorded_status (what run.json says), live (a process trains it now), pid, heartbeat_age_s,
    error, adapter_path.
    """
    if not isinstance(run, RunDir):
        run = RunDir.open(run)
    data = data if data is not None else run.read()
    info = RunInfo.from_dict(data)
    now = time.time()
    recorded = info.status
    heartbeat = data.get("heartbeat")
    heartbeat_age = round(now - float(heartbeat), 1) if heartbeat else None
    if data.get("host") not in (None, socket.gethostname()):
        # Locks and pids mean nothing across machines: only the heartbeat can tell.
        live = recorded == "running" and heartbeat_age is not None and heartbeat_age < STALE_HEARTBEAT_S
    else:
        live = run_is_live(run, data)
    status = recorded
    if recorded == "running" and not live:
        status = "interrupted"
    elif recorded == "created" and not live and now - (info.created_at or now) > CREATED_GRACE_S:
        status = "interrupted"
    return {"id": run.id, "path": str(run.path), "status": status, "recorded_status": recorded, "live": live,
            "pid": info.pid, "heartbeat_age_s": heartbeat_age, "error": data.get("error"),
            "adapter_path": data.get("adapter_path")}


def unfinished_sentence(run_id: str, status: str, then: str) -> str:
    """The one sentence that refuses to use a run still training (``then``: what to do after, e.g. 'export')."""
    return f"Run {run_id} is still {status}; wait for it to finish (or stop it, which saves an adapter), then {then}."


def progress_from_events(events: list[dict[str, Any]]) -> dict[str, Any]:
    """step, max_steps and the last training loss, honouring ``resume`` events (steps redone)."""
    step = max_steps = 0
    last_loss = None
    for event in events:
        kind = event.get("kind")
        if kind in ("start", "resume", "step"):
            max_steps = event.get("max_steps", max_steps)
        if kind == "step":
            step = event.get("step", step)
            last_loss = event.get("loss", last_loss)
        elif kind == "resume":
            step = event.get("step", step)
    return {"step": step, "max_steps": max_steps, "last_loss": last_loss}


def loss_curve(events: list[dict[str, Any]]) -> list[tuple[int, float]]:
    """(step, loss) of the run as it stands: steps redone after a ``resume`` replace the lost ones."""
    curve: dict[int, float] = {}
    for event in events:
        if event.get("kind") == "resume":
            resumed_at = int(event.get("step", 0))
            curve = {s: loss for s, loss in curve.items() if s <= resumed_at}
        elif event.get("kind") == "step" and event.get("loss") is not None:
            curve[int(event["step"])] = float(event["loss"])
    return sorted(curve.items())


def _folder_age(run: RunDir, now: float) -> str:
    """The age of a run whose run.json can not be read, from its folder's time ('?' when even that fails)."""
    try:
        return _age(now - run.path.stat().st_mtime)
    except OSError:
        return "?"


def run_summaries(root: str | None = None) -> list[dict[str, Any]]:
    """One dict per run: id, model, preset, status, step, max_steps, last_loss, age, path, live, pid."""
    rows = []
    now = time.time()
    for run in list_runs(root):
        try:
            data = run.read()
        except (OSError, ValueError, LLMCustomsError) as error:
            # Shown, not hidden: the user can still chat with or export an intact adapter folder.
            rows.append({"id": run.id, "model": None, "preset": None, "status": "damaged", "step": 0,
                         "max_steps": 0, "last_loss": None, "age": _folder_age(run, now), "path": str(run.path),
                         "live": False,
                         "pid": None, "heartbeat_age_s": None, "error": str(error)})
            continue
        state = run_state(run, data)
        rows.append({"id": run.id, "model": data.get("model"), "preset": data.get("preset"),
                     "status": state["status"], **progress_from_events(read_events(run.events_path)),
                     "age": _age(now - float(data.get("created_at", now))), "path": str(run.path),
                     "live": state["live"], "pid": state["pid"], "heartbeat_age_s": state["heartbeat_age_s"]})
    return rows
