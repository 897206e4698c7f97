"""Issue 15, the training side: a full disk at a checkpoint (item 6), Ctrl+C and wall-clock checkpoints
(item 15), progress and stop during evaluation (item 11). Real tiny runs; faults injected at the edge."""

from __future__ import annotations

import errno
import json
import os
import runpy
import shutil
import signal
import threading
from dataclasses import replace
from pathlib import Path

import pytest
from transformers import TrainerCallback, TrainerControl

from tests.conftest import ROOT, SAMPLE_DATA


def _request(tmp_path: Path, tiny_model_dir: Path, **overrides):
    from llmcustoms.training.request import TrainRequest

    folder = tmp_path / "notes"
    if not folder.exists():
        shutil.copytree(SAMPLE_DATA, folder)
    fields = dict(data_path=str(folder), model=str(tiny_model_dir), preset="highspeed", device="cpu", qa="offline",
                  max_steps=4, output_dir=str(tmp_path / "runs"))
    fields.update(overrides)
    return TrainRequest(**fields)


def _run_of(tmp_path: Path):
    from llmcustoms.runs.rundir import RunDir

    (path,) = (tmp_path / "runs").iterdir()
    return RunDir(path)


def _checkpoint_steps(run) -> list[int]:
    from llmcustoms.training import checkpoints

    return [checkpoints.checkpoint_step(p) for p in checkpoints.complete_checkpoints(run.checkpoints_dir)]


# -- item 6: the disk fills up while a checkpoint is written ---------------------------------------------
def _disk_full_at(monkeypatch, step: int) -> None:
    """torch.save of checkpoint-<step>'s optimizer writes an empty file and fails as a full disk does."""
    import torch

    real_save = torch.save

    def save(obj, f, *args, **kwargs):
        if isinstance(f, (str, os.PathLike)) and f"checkpoint-{step}" in str(f):
            Path(f).write_bytes(b"")  # what a write that found no room leaves
            raise OSError(errno.ENOSPC, "No space left on device", str(f))
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)


def test_a_full_disk_at_a_checkpoint_fails_the_run_cleanly_and_resume_goes_on(tmp_path, tiny_model_dir, monkeypatch,
                                                                                capsys):
    from llmcustoms.cli import main
    from llmcustoms.runs.events import read_events
    from llmcustoms.training.trainer import resume_training

    _disk_full_at(monkeypatch, 4)
    folder = tmp_path / "notes"
    shutil.copytree(SAMPLE_DATA, folder)
    code = main(["train", str(folder), "--model", str(tiny_model_dir), "--max-steps", "6", "--save-steps", "2",
                 "--qa", "offline", "--cpu", "--output-dir", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert code == 1
    assert "error: The disk is full: the checkpoint at step 4 could not be saved" in err
    assert "Traceback" not in err and "unexpected" not in err
    run = _run_of(tmp_path)
    data = json.loads(run.run_json.read_text())
    assert data["status"] == "failed" and data["error"].startswith("The disk is full")
    assert "about" in data["error"] and "llmcustoms resume" in data["error"]  # how much, and what next
    errors = [e for e in read_events(run.events_path) if e["kind"] == "error"]
    assert errors and errors[-1]["message"] == data["error"]
    # Nothing half written: no checkpoint-4 (complete or not), no empty temp files, no renamed leftovers.
    assert sorted(p.name for p in run.checkpoints_dir.iterdir()) == ["checkpoint-2"]
    assert _checkpoint_steps(run) == [2]
    assert not [p for p in run.path.rglob("*") if p.name.endswith(".tmp") or p.name.startswith(".deleting")]

    monkeypatch.undo()  # room again: the run continues from its last good checkpoint
    resumed = resume_training(run)
    assert resumed.status == "done" and resumed.steps == 6
    assert (run.adapter_dir / "adapter_model.safetensors").is_file()


def test_run_json_written_on_a_full_disk_leaves_no_empty_temp_file(tmp_path, monkeypatch):
    from llmcustoms.runs import rundir as runs

    run = runs.RunDir.create("tiny", root=str(tmp_path / "runs"), status="running")
    before = run.run_json.read_text()

    def no_room(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(runs.os, "fsync", no_room)
    with pytest.raises(OSError):
        run.update(status="failed")
    assert run.run_json.read_text() == before
    assert sorted(p.name for p in run.path.iterdir()) == ["run.json"]


def test_a_torch_write_failure_counts_as_a_full_disk_only_when_the_disk_is_nearly_full(tmp_path, monkeypatch):
    from llmcustoms.training import disk_full

    bare = RuntimeError("PytorchStreamWriter failed writing file data/0: file write failed")
    assert not disk_full.is_disk_full(bare, tmp_path)  # plenty of room here: some other failure
    monkeypatch.setattr(disk_full, "free_bytes", lambda folder: 10 * 2**20)
    assert disk_full.is_disk_full(bare, tmp_path)
    assert disk_full.is_disk_full(RuntimeError("IoError(Os { code: 28, kind: StorageFull })"), tmp_path)


# -- item 15: Ctrl+C keeps a checkpoint, and one is saved every few minutes ----------------------------
class _SigintAt(TrainerCallback):
    """Sends this process SIGINT (a Ctrl+C) at the end of step ``step``."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            os.kill(os.getpid(), signal.SIGINT)


class _KeyboardInterruptAt(TrainerCallback):
    """Raises KeyboardInterrupt at the end of step ``step`` (a hard interrupt: no handler in the way)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise KeyboardInterrupt


def test_ctrl_c_in_fine_tuner_train_saves_a_checkpoint_and_says_how_to_resume(tmp_path, tiny_model_dir,
                                                                              monkeypatch, capsys):
    from llmcustoms import FineTuner
    from llmcustoms.training.interrupts import TrainingInterrupted
    from llmcustoms.training.trainer import resume_training

    monkeypatch.setenv("FORCE_CPU", "true")
    folder = tmp_path / "notes"
    shutil.copytree(SAMPLE_DATA, folder)
    tuner = FineTuner(str(folder), model=str(tiny_model_dir), preset="highspeed", max_steps=6,
                      output_dir=str(tmp_path / "runs"), qa="offline", progress=False)
    plain_request = FineTuner._request
    monkeypatch.setattr(FineTuner, "_request", lambda self: replace(plain_request(self), callbacks=[_SigintAt(2)]))
    with pytest.raises(TrainingInterrupted) as caught:
        tuner.train()  # save_steps is 6 here: before this fix no checkpoint existed until the end
    assert isinstance(caught.value, KeyboardInterrupt)  # scripts catching KeyboardInterrupt still do
    run = _run_of(tmp_path)
    assert f"llmcustoms resume {run.id}" in str(caught.value)
    assert "Stopping after this step" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers put back
    data = run.read()
    assert data["status"] == "stopped" and 2 <= data["steps"] < 6
    assert _checkpoint_steps(run) == [data["steps"]]

    resumed = resume_training(run)
    assert resumed.status == "done" and resumed.steps == 6


def test_a_hard_interrupt_keeps_a_checkpoint_of_the_last_finished_step(tmp_path, tiny_model_dir):
    from llmcustoms.runs.events import read_events
    from llmcustoms.training.interrupts import TrainingInterrupted
    from llmcustoms.training.trainer import resume_training, run_training

    with pytest.raises(TrainingInterrupted) as caught:
        run_training(_request(tmp_path, tiny_model_dir, max_steps=5, callbacks=[_KeyboardInterruptAt(2)]))
    run = _run_of(tmp_path)
    assert run.read()["status"] == "interrupted"
    assert _checkpoint_steps(run) == [2]
    message = str(caught.value)
    assert "checkpoint at step 2" in message and f"llmcustoms resume {run.id}" in message
    assert read_events(run.events_path)[-1] == {**read_events(run.events_path)[-1], "kind": "error",
                                                "message": message}
    resumed = resume_training(run)
    assert resumed.status == "done" and resumed.steps == 5


class _FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


class _HundredSecondSteps(TrainerCallback):
    """Each step takes 100 s on the fake clock (set as the step begins)."""

    def __init__(self, clock: _FakeClock) -> None:
        self.clock = clock

    def on_step_begin(self, args, state, control, **kwargs):
        self.clock.t = 100.0 * (state.global_step + 1)


def test_a_checkpoint_is_saved_every_five_minutes_of_wall_time(tmp_path, tiny_model_dir, monkeypatch):
    from llmcustoms.runs.events import read_events
    from llmcustoms.training import wall_clock
    from llmcustoms.training.trainer import run_training

    assert wall_clock.SAVE_EVERY_S == 300
    clock = _FakeClock()
    monkeypatch.setattr(wall_clock, "monotonic", clock)
    result = run_training(_request(tmp_path, tiny_model_dir, max_steps=7, callbacks=[_HundredSecondSteps(clock)]))
    saved = [e["step"] for e in read_events(result.run_dir.events_path) if e["kind"] == "checkpoint"]
    assert saved == [3, 6, 7]  # save_steps is 7: steps 3 and 6 are the clock's


def test_the_wall_clock_checkpoint_fires_at_its_interval_and_restarts_after_any_save():
    from llmcustoms.training.wall_clock import WallClockCheckpoint

    clock = _FakeClock()
    callback = WallClockCheckpoint(every_s=300, clock=clock)
    callback.on_train_begin(None, None, TrainerControl())
    clock.t = 299.0
    assert not callback.on_step_end(None, None, TrainerControl()).should_save
    clock.t = 300.0
    assert callback.on_step_end(None, None, TrainerControl()).should_save
    clock.t = 310.0
    callback.on_save(None, None, TrainerControl())  # any save (save_steps, a stop) restarts the interval
    clock.t = 600.0
    assert not callback.on_step_end(None, None, TrainerControl()).should_save
    clock.t = 610.0
    assert callback.on_step_end(None, None, TrainerControl()).should_save


def test_basic_example_exits_with_the_resume_sentence_not_a_traceback(monkeypatch, capsys):
    from llmcustoms import FineTuner
    from llmcustoms.training.interrupts import TrainingInterrupted

    sentence = "Training stopped at step 3 of 10: … `llmcustoms resume 20261201-abc` continues it."

    def interrupted(self):
        raise TrainingInterrupted(sentence, "20261201-abc", 3)

    monkeypatch.setattr(FineTuner, "train", interrupted)
    with pytest.raises(SystemExit) as caught:
        runpy.run_path(str(ROOT / "examples" / "basic_example.py"), run_name="__main__")
    assert caught.value.code == 130
    assert sentence in capsys.readouterr().err


# -- item 11: evaluation shows progress, and stop ends it ---------------------------------------------
class _StopFileDuringEvaluation(TrainerCallback):
    """At the first evaluation batch, asks the run to stop as `llmcustoms stop` does (the stop file) and waits
    until the watchdog has seen it; then counts the evaluation batches that still run."""

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop
        self.batches_after_stop = 0
        self.asked = False

    def on_prediction_step(self, args, state, control, **kwargs):
        if self.asked:
            self.batches_after_stop += 1
            return
        self.asked = True
        (Path(args.output_dir).parent / "stop").write_text("")
        assert self.stop.wait(10), "the watchdog never saw the stop file"


def test_stop_during_the_first_evaluation_ends_it_between_batches(tmp_path, tiny_model_dir):
    from llmcustoms.runs.events import read_events
    from llmcustoms.training.trainer import resume_training, run_training

    stop = threading.Event()
    asker = _StopFileDuringEvaluation(stop)
    request = _request(tmp_path, tiny_model_dir, max_steps=4, max_seq_len=64, callbacks=[asker],
                       extra={"per_device_eval_batch_size": 1})
    result = run_training(request, stop=stop)
    events = read_events(result.run_dir.events_path)
    progress = [e for e in events if e["kind"] == "eval_progress"]
    assert progress and progress[0]["batch"] == 1 and progress[0]["batches"] > 3  # a long evaluation
    assert asker.batches_after_stop == 0  # ended at the batch the stop was seen, not after all of them
    assert result.status == "stopped" and result.steps == 0 and result.eval_loss_before is None
    assert not [e for e in events if e["kind"] == "step"]
    # Asked during batch 1, seen before batch 2 ran (the check sits between batches).
    assert any(e.get("message", "").startswith("Stop requested: evaluation ended at batch 2 of ") for e in events)

    resumed = resume_training(result.run_dir)  # nothing lost: it trains from the start
    assert resumed.status == "done" and resumed.steps == 4 and resumed.eval_loss_before is not None


def test_a_full_disk_at_the_final_adapter_save_fails_cleanly_and_resume_saves_it(tmp_path, tiny_model_dir,
                                                                                   monkeypatch):
    import peft.peft_model

    from llmcustoms.errors import DiskSpaceError
    from llmcustoms.training.trainer import resume_training, run_training

    real_save = peft.peft_model.safe_save_file

    def save(tensors, filename, *args, **kwargs):
        if ".adapter.tmp-" in str(filename):  # the final adapter, not a checkpoint's copy
            Path(filename).write_bytes(b"")
            raise OSError(errno.ENOSPC, "No space left on device", str(filename))
        return real_save(tensors, filename, *args, **kwargs)

    monkeypatch.setattr(peft.peft_model, "safe_save_file", save)
    with pytest.raises(DiskSpaceError, match="the adapter could not be saved"):
        run_training(_request(tmp_path, tiny_model_dir, max_steps=2))
    run = _run_of(tmp_path)
    assert run.read()["status"] == "failed" and "llmcustoms resume" in run.read()["error"]
    assert not [p for p in run.path.iterdir() if p.name.startswith(".adapter")] and not run.adapter_dir.exists()
    monkeypatch.undo()
    resumed = resume_training(run)
    assert resumed.status == "done" and resumed.steps == 2
    assert (run.adapter_dir / "adapter_model.safetensors").is_file()
