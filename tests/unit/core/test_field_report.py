"""Issue 15 field-report items: each a user-caused failure that must be one sentence (and leave things intact)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from llmcustoms.cli import main
from tests.conftest import SAMPLE_DATA


def _cli(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([sys.executable, "-m", "llmcustoms.cli", *args], capture_output=True, text=True,
                          timeout=300, cwd=cwd, env={**os.environ, **(env or {})})


@pytest.mark.parametrize("steps", ["0", "-1", "999999999999"])
def test_max_steps_out_of_range_is_refused_before_anything_starts(steps, tmp_path):
    result = _cli("train", str(SAMPLE_DATA), "--model", "smollm2-135m", "--max-steps", steps,
                  "--output-dir", str(tmp_path / "runs"))
    assert result.returncode == 2, result.stderr
    assert "--max-steps must be" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_max_steps_from_the_environment_caps_train(tiny_model_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MAX_STEPS", "2")
    folder = tmp_path / "notes"
    shutil.copytree(SAMPLE_DATA, folder)
    assert main(["train", str(folder), "--model", str(tiny_model_dir), "--qa", "offline", "--cpu", "--json",
                 "--output-dir", str(tmp_path / "runs")]) == 0
    assert json.loads(capsys.readouterr().out)["steps"] == 2


def test_a_dotenv_that_is_not_utf8_is_one_sentence(tmp_path):
    (tmp_path / ".env").write_bytes(b"GROQ_MODEL=ab\xff\xfecd\n")
    result = _cli("models", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "not UTF-8" in result.stderr and ".env" in result.stderr and "Traceback" not in result.stderr


def test_chat_with_an_empty_prompt_says_so_before_loading(tmp_path):
    result = _cli("chat", "smollm2-135m", "--prompt", "  ")
    assert result.returncode == 2 and "prompt is empty" in result.stderr
    assert "Loading the model" not in result.stderr


def test_chat_max_new_tokens_zero_is_refused():
    result = _cli("chat", "smollm2-135m", "--prompt", "hi", "--max-new-tokens", "0")
    assert result.returncode == 2 and "--max-new-tokens must be at least 1" in result.stderr


def test_prepare_out_naming_a_folder_is_one_sentence(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    result = _cli("prepare", str(SAMPLE_DATA), "--qa", "offline", "--out", str(folder))
    assert result.returncode == 2 and "is a folder" in result.stderr and "unexpected" not in result.stderr


def test_runs_into_a_closed_pipe_exits_quietly(tmp_path, tiny_model_dir):
    from llmcustoms.runs.rundir import RunDir

    for _ in range(3):
        RunDir.create("tiny", root=str(tmp_path / "runs"), status="done")
    script = (f"{sys.executable} -m llmcustoms.cli runs --output-dir {tmp_path / 'runs'} | head -c 1")
    result = subprocess.run(["bash", "-o", "pipefail", "-c", script], capture_output=True, text=True, timeout=120)
    assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr and "unexpected" not in \
        result.stderr


def _finished_run(tmp_path: Path, tiny_model_dir: Path, capsys) -> Path:
    folder = tmp_path / "notes"
    shutil.copytree(SAMPLE_DATA, folder)
    assert main(["train", str(folder), "--model", str(tiny_model_dir), "--max-steps", "1", "--qa", "offline",
                 "--cpu", "--json", "--output-dir", str(tmp_path / "runs")]) == 0
    return Path(json.loads(capsys.readouterr().out)["run_dir"])


def test_a_damaged_run_json_is_shown_and_its_intact_adapter_still_chats_and_exports(tiny_model_dir, tmp_path,
                                                                                    capsys):
    run_dir = _finished_run(tmp_path, tiny_model_dir, capsys)
    (run_dir / "run.json").write_text('{"status": "do')  # cut short
    assert main(["runs", "--json", "--output-dir", str(tmp_path / "runs")]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["status"] == "damaged" and "run.json" in rows[0]["error"]
    assert main(["chat", str(run_dir), "--prompt", "Who founded Velmoria?", "--max-new-tokens", "3"]) == 0
    assert "tuned> " in capsys.readouterr().out
    assert main(["export", str(run_dir), "--format", "adapter", "--out", str(tmp_path / "exported")]) == 0
    assert (tmp_path / "exported" / "adapter_config.json").is_file()


def test_export_uses_the_run_folder_it_is_given_not_the_recorded_path(tiny_model_dir, tmp_path, capsys):
    run_dir = _finished_run(tmp_path, tiny_model_dir, capsys)
    moved = tmp_path / "moved" / run_dir.name
    moved.parent.mkdir()
    shutil.move(str(run_dir), moved)  # run.json still records the old adapter path
    assert main(["export", str(moved), "--format", "adapter", "--out", str(tmp_path / "exported")]) == 0
    original = (moved / "adapter" / "adapter_model.safetensors").read_bytes()
    assert (tmp_path / "exported" / "adapter_model.safetensors").read_bytes() == original


def test_export_of_a_killed_run_says_interrupted_not_still_running(tiny_model_dir, tmp_path, capsys):
    run_dir = _finished_run(tmp_path, tiny_model_dir, capsys)
    data = json.loads((run_dir / "run.json").read_text())
    data.update(status="running", pid=999_999, pid_started_at=1.0)  # as a kill -9 leaves it
    (run_dir / "run.json").write_text(json.dumps(data))
    assert main(["export", str(run_dir), "--format", "adapter", "--out", str(tmp_path / "exported")]) == 2
    err = capsys.readouterr().err
    assert "interrupted" in err and "llmcustoms resume" in err and "still running" not in err


def test_the_held_out_loss_set_is_capped(tmp_path, tiny_model_dir):
    """A large folder holds out a few hundred examples for the loss, not thousands."""
    from llmcustoms.models.loading import load_tokenizer
    from llmcustoms.training import prepare
    from llmcustoms.training.prepare import prepare_data
    from llmcustoms.training.request import TrainRequest

    folder = tmp_path / "big"
    folder.mkdir()
    for n in range(60):
        (folder / f"note{n}.txt").write_text(
            f"Harbour note {n}\n\n" + " ".join(f"The tower number {n}-{k} was built in {1700 + k} by Mira Holt{k}."
                                               for k in range(12)))
    messages: list[str] = []
    old = prepare.MAX_EVAL_EXAMPLES
    prepare.MAX_EVAL_EXAMPLES = 50
    try:
        data = prepare_data(TrainRequest(data_path=str(folder), qa="offline"), load_tokenizer(str(tiny_model_dir)),
                            256, messages.append)
    finally:
        prepare.MAX_EVAL_EXAMPLES = old
    assert data.eval_examples == 50 and data.train_examples > 500
    assert any("Held-out loss on 50 examples" in m for m in messages)


def test_an_events_file_deleted_mid_run_is_written_again(tmp_path):
    from llmcustoms.runs.events import JsonlEventSink, make_event, read_events

    path = tmp_path / "run" / "events.jsonl"
    sink = JsonlEventSink(path)
    sink(make_event("step", step=1))
    path.unlink()  # a user (or a clean-up script) removes it while the run goes on
    sink(make_event("step", step=2))
    sink(make_event("done", step=2))
    sink.close()
    assert [e["step"] for e in read_events(path)] == [2, 2]


def test_export_removes_what_a_killed_export_left_and_says_so(tiny_model_dir, tmp_path, capsys):
    run_dir = _finished_run(tmp_path, tiny_model_dir, capsys)
    target = tmp_path / "exported"
    dead = tmp_path / ".exported.tmp-999999-abcdef"  # a kill -9 left it (no such process)
    dead.mkdir()
    (dead / "model.safetensors").write_bytes(b"\0" * 2**20)
    mine = tmp_path / f".exported.tmp-{__import__('os').getpid()}-abcdef"  # a live export's: kept
    mine.mkdir()
    assert main(["export", str(run_dir), "--format", "adapter", "--out", str(target)]) == 0
    assert not dead.exists() and mine.exists()
    assert "unfinished export left by a process that was killed" in capsys.readouterr().err


def test_resume_after_a_kill_during_the_final_save_never_passes_max_steps(tmp_path, tiny_model_dir):
    from llmcustoms.runs.events import read_events
    from llmcustoms.training.request import TrainRequest
    from llmcustoms.training.trainer import resume_training, run_training

    folder = tmp_path / "notes"
    shutil.copytree(SAMPLE_DATA, folder)
    result = run_training(TrainRequest(data_path=str(folder), model=str(tiny_model_dir), preset="highspeed",
                                       device="cpu", qa="offline", max_steps=4, save_steps=4,
                                       output_dir=str(tmp_path / "runs")))
    run = result.run_dir
    # As a kill -9 in the middle of writing the adapter leaves it: every step trained and checkpointed,
    # run.json still "running", no adapter, a half-written staging folder of the dead process.
    shutil.rmtree(run.adapter_dir)
    (run.path / ".adapter.tmp-999999").mkdir()
    run.update(status="running", pid=999_999, pid_started_at=1.0, adapter_path=None)
    events_before = len(read_events(run.events_path))
    resumed = resume_training(run)
    assert resumed.status == "done" and resumed.steps == 4
    assert (run.adapter_dir / "adapter_model.safetensors").is_file()
    assert not (run.path / ".adapter.tmp-999999").exists()
    later = read_events(run.events_path)[events_before:]
    assert all(e.get("step", 0) <= 4 for e in later)
    assert not [e for e in later if e["kind"] == "step"]  # nothing trained again
