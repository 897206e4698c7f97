"""Issue 29: two `llmcustoms train --detach` started at the same moment into one --output-dir (a folder that
does not exist yet) each get their own run, both finish, and neither's files are touched by the other."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

from llmcustoms.runs.events import read_events
from llmcustoms.runs.rundir import RunDir, list_runs, pid_is_alive
from llmcustoms.training.detach import run_state
from tests.helpers.runs_support import make_small_folder, wait_for

CLI = str(Path(sys.executable).parent / "llmcustoms")


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_two_detached_runs_into_one_output_dir_at_once(tmp_path, tiny_model_dir):
    data = make_small_folder(tmp_path)
    data_before = _digest(data)
    runs = tmp_path / "shared" / "runs"  # made by whichever run comes first; the other must not trip on it
    argv = [CLI, "train", str(data), "--model", str(tiny_model_dir), "--preset", "highspeed", "--cpu", "--qa", "offline",
            "--max-steps", "4", "--save-steps", "2", "--max-seq-len", "64", "--detach", "--json",
            "--output-dir", str(runs)]
    starters = [subprocess.Popen([*argv, "--seed", str(seed)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True) for seed in (1, 2)]
    started = []
    for starter in starters:
        out, err = starter.communicate(timeout=300)
        assert starter.returncode == 0, err
        started.append(json.loads(out))
    paths = [Path(info["run_dir"]) for info in started]
    assert paths[0] != paths[1] and all(p.parent == runs for p in paths)
    assert started[0]["pid"] != started[1]["pid"]
    assert sorted(r.path for r in list_runs(runs)) == sorted(paths), "two runs, no third, nothing shared"

    finished = {}
    for path in paths:
        run = RunDir(path)
        # Finished, and its worker gone (it writes its last lines after the status says done).
        wait_for(lambda run=run: run_state(run)["status"] in ("done", "failed", "stopped")
                 and not pid_is_alive(run.read().get("pid")), timeout=300, what=f"{run.id} to finish")
        assert run.read()["status"] == "done", (run.log_path.read_text() if run.log_path.exists() else "")
        finished[path] = _digest(path)

    for path in paths:
        run = RunDir(path)
        data_json = run.read()
        assert data_json["id"] == run.id and data_json["steps"] == 4
        assert data_json["adapter_path"] == str(run.adapter_dir)
        assert (run.adapter_dir / "adapter_model.safetensors").is_file()
        events = read_events(run.events_path)
        steps = [e["step"] for e in events if e["kind"] == "step"]
        assert steps == [1, 2, 3, 4], "one run's steps, once each: no other run wrote here"
        assert sum(e["kind"] == "done" for e in events) == 1
        assert data_json["config"]["seed"] == (1 if path == paths[0] else 2), "each run keeps its own request"
    # Neither run changed the other's files after they were read, nor the data folder.
    for path, digest in finished.items():
        assert _digest(path) == digest
    assert _digest(data) == data_before
