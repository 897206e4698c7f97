"""Summaries of runs for ``llmcustoms runs`` and the TUI: status, progress, last loss, age."""

from __future__ import annotations

import time
from typing import Any

from llmcustoms.training.events import read_events
from llmcustoms.training.runs import list_runs


def _age(seconds: float) -> str:
    if seconds < 90:
        return f"{int(seconds)}s"
    if seconds < 5400:
        return f"{int(seconds // 60)}m"
    if seconds < 172800:
        return f"{int(seconds // 3600)}h"
    return f"{int(seconds // 86400)}d"


def run_summaries(root: str | None = None) -> list[dict[str, Any]]:
    """One dict per run: id, model, preset, status, step, max_steps, last_loss, age, path."""
    rows = []
    now = time.time()
    for run in list_runs(root):
        data = run.read()
        step = max_steps = 0
        last_loss = None
        for event in read_events(run.events_path):
            if event.get("kind") == "step":
                step = event.get("step", step)
                max_steps = event.get("max_steps", max_steps)
                last_loss = event.get("loss", last_loss)
            elif event.get("kind") == "start":
                max_steps = event.get("max_steps", max_steps)
        rows.append({"id": run.id, "model": data.get("model"), "preset": data.get("preset"),
                     "status": data.get("status", "?"), "step": step, "max_steps": max_steps,
                     "last_loss": last_loss, "age": _age(now - float(data.get("created_at", now))),
                     "path": str(run.path)})
    return rows
