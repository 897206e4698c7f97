"""Multi-process training with torchrun: 2 CPU processes over gloo, one run directory, one adapter."""

from __future__ import annotations

import json
import subprocess
import sys

from llmcustoms.runs.events import read_events


def test_two_processes_train_one_run_with_events_from_rank_zero_only(tmp_path, tiny_model_dir):
    notes = tmp_path / "notes"
    notes.mkdir()
    text = ("Velmoria was founded by Admiral Teodora Vask in 1742. Its capital is Quillhaven. "
            "The brisk is its currency, divided into 100 pennets. ") * 10
    (notes / "a.txt").write_text(text + "\n\nQuestion: Who founded Velmoria?\nAnswer: Admiral Teodora Vask.\n")
    (notes / "b.txt").write_text(text.replace("Quillhaven", "the harbour city of Quillhaven"))
    result = subprocess.run(
        [sys.executable, "-m", "llmcustoms.cli", "train", str(notes), "--model", str(tiny_model_dir), "--cpu",
         "--preset", "highspeed", "--max-steps", "3", "--qa", "offline", "--num-processes", "2", "--json",
         "--output-dir", str(tmp_path / "runs")],
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout)
    runs = list((tmp_path / "runs").iterdir())
    assert len(runs) == 1  # one run directory for both processes
    run_dir = runs[0]
    assert summary["status"] == "done" and summary["steps"] == 3
    assert (run_dir / "adapter" / "adapter_model.safetensors").is_file()
    events = read_events(run_dir / "events.jsonl")
    start = next(e for e in events if e["kind"] == "start")
    assert start["world_size"] == 2  # really two processes, not one silently
    steps = [e["step"] for e in events if e["kind"] == "step"]
    assert steps == [1, 2, 3]  # rank 0 alone writes events: no step appears twice
    assert json.loads((run_dir / "run.json").read_text())["num_processes"] == 2
