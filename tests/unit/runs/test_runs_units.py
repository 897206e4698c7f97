"""The pieces of long-run survival on their own: checkpoints, OOM back-off policy, health rules, run state."""

from __future__ import annotations

import json
import socket
import time

import pytest

from llmcustoms.errors import InputError
from llmcustoms.runs.events import ListSink, make_event
from llmcustoms.runs.health import HealthLimits, HealthMonitor, Pulse
from llmcustoms.runs.rundir import RunDir, RunLock
from llmcustoms.runs.status import loss_curve, run_state, run_summaries
from llmcustoms.training import checkpoints
from llmcustoms.training.detach import follow_run, resume_run, stop_run
from llmcustoms.training.oom import next_backoff


# -- checkpoints ---------------------------------------------------------------------------------
def _checkpoint(root, step: int, complete: bool = True):
    folder = root / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    (folder / "optimizer.pt").write_bytes(b"x" * 10)
    if complete:
        checkpoints.mark_complete(folder)
    return folder


def test_only_complete_checkpoints_count_and_half_written_ones_are_discarded(tmp_path):
    tmp_path = tmp_path / "checkpoints"
    _checkpoint(tmp_path, 2)
    four = _checkpoint(tmp_path, 4)
    _checkpoint(tmp_path, 6, complete=False)  # a kill during its save
    (tmp_path / ".deleting-checkpoint-1").mkdir()  # a kill during a prune
    assert checkpoints.latest_complete(tmp_path) == four
    removed = checkpoints.discard_incomplete(tmp_path)
    assert [p.name for p in removed] == ["checkpoint-6"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-2", "checkpoint-4"]
    assert json.loads((four / checkpoints.MARKER).read_text())["step"] == 4


def test_prune_keeps_the_newest_complete_checkpoints(tmp_path):
    tmp_path = tmp_path / "checkpoints"
    for step in (2, 4, 6, 8):
        _checkpoint(tmp_path, step)
    writing = _checkpoint(tmp_path, 10, complete=False)
    checkpoints.prune(tmp_path, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-10", "checkpoint-6", "checkpoint-8"]
    assert writing.exists(), "a checkpoint being written is not pruned"


# -- OOM back-off policy -------------------------------------------------------------------------
def test_oom_backoff_halves_the_batch_then_the_sequence_then_gives_up():
    config = {"per_device_train_batch_size": 4, "gradient_accumulation_steps": 2, "max_seq_len": 512,
              "oom_min_seq_len": 256}
    seen = []
    while (step := next_backoff(config)) is not None:
        config.update(step.after)
        seen.append((step.after["per_device_train_batch_size"], step.after["gradient_accumulation_steps"],
                     step.after["max_seq_len"], step.event_fields()["effective_batch"]))
    assert seen == [(2, 4, 512, 8), (1, 8, 512, 8), (1, 8, 256, 8)]


def test_oom_backoff_never_shrinks_an_odd_effective_batch():
    step = next_backoff({"per_device_train_batch_size": 3, "gradient_accumulation_steps": 4, "max_seq_len": 256})
    assert step.after["per_device_train_batch_size"] == 1 and step.after["gradient_accumulation_steps"] == 12


# -- health rules --------------------------------------------------------------------------------
def _monitor(**limits) -> tuple[HealthMonitor, ListSink]:
    sink = ListSink()
    return HealthMonitor(sink, HealthLimits.from_config({f"health_{k}": v for k, v in limits.items()}), "r1"), sink


def test_non_finite_loss_or_gradient_means_stop():
    monitor, sink = _monitor()
    assert monitor.loss(1, 2.5, 1e-3, 0.7) is False
    assert monitor.loss(2, float("nan"), 1e-3) is True
    assert monitor.loss(3, 2.0, 1e-3, float("inf")) is True
    assert [e["health"] for e in sink.events] == ["nonfinite_loss", "nonfinite_loss"]
    assert "gradient norm became inf at step 3" in sink.events[1]["message"]


def test_loss_stuck_at_zero_warns_once_per_episode():
    monitor, sink = _monitor(zero_loss_steps=3)
    for step, loss in enumerate([0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0], start=1):
        monitor.loss(step, loss)
    assert [(e["health"], e["step"]) for e in sink.events] == [("zero_loss", 3), ("zero_loss", 8)]


def test_eval_loss_rising_several_times_suggests_stopping():
    monitor, sink = _monitor(eval_rising=3)
    for step, loss in zip(range(10, 80, 10), [2.0, 1.8, 1.9, 2.0, 2.1, 2.2, 1.5], strict=True):
        monitor.evaluation(step, loss)
    [warning] = sink.events
    assert warning["health"] == "eval_rising" and warning["step"] == 50
    assert "1.800 → 1.900 → 2.000 → 2.100" in warning["message"] and "llmcustoms stop r1" in warning["message"]


def test_a_stall_is_measured_against_the_usual_step_time():
    monitor, sink = _monitor(stall_factor=10, stall_min_s=5)
    pulse = Pulse()
    pulse.in_training = True
    monitor.stall(pulse, now=pulse.last_activity + 1000)
    assert sink.events == [], "no usual step time yet (the first step may compile, allocate, download)"
    for step in range(1, 4):
        pulse.stepped(step, 2.0)
    start = pulse.last_activity
    monitor.stall(pulse, now=start + 19)
    assert sink.events == []
    monitor.stall(pulse, now=start + 21)
    monitor.stall(pulse, now=start + 40)
    assert [e["health"] for e in sink.events] == ["stall"], "one warning per stall"
    pulse.stepped(4, 2.0)
    monitor.stall(pulse, now=pulse.last_activity + 30)
    assert len(sink.events) == 2


def test_a_nearly_full_disk_warns_once_until_space_comes_back(tmp_path):
    monitor, sink = _monitor(disk_min_free_mb=500)
    for free_mb in (100, 50, 2000, 10):
        monitor.disk(tmp_path, free_bytes=free_mb * 2**20)
    assert [e["free_mb"] for e in sink.events] == [100, 10]


# -- run state -----------------------------------------------------------------------------------
def _run(tmp_path, **fields) -> RunDir:
    return RunDir.create("m", root=tmp_path / "runs", request={"data_path": "x"}, **fields)


def test_a_running_run_without_its_process_is_interrupted(tmp_path):
    run = _run(tmp_path, status="running", pid=999_999_999, heartbeat=time.time())
    state = run_state(run)
    assert state["status"] == "interrupted" and state["recorded_status"] == "running" and not state["live"]
    with RunLock(run):
        assert run_state(run)["status"] == "running"


def test_a_run_from_another_machine_is_judged_by_its_heartbeat(tmp_path):
    run = _run(tmp_path, status="running", host=socket.gethostname() + "-elsewhere", heartbeat=time.time())
    assert run_state(run)["status"] == "running"
    run.update(heartbeat=time.time() - 3600)
    assert run_state(run)["status"] == "interrupted"


def test_created_and_finished_runs_keep_their_status(tmp_path):
    assert run_state(_run(tmp_path, status="created"))["status"] == "created"
    done = _run(tmp_path, status="done", adapter_path="/a")
    assert run_state(done)["status"] == "done"
    with pytest.raises(InputError, match="already finished"):
        resume_run(done)
    with pytest.raises(InputError, match="not running"):
        stop_run(done)


def test_listing_and_following_a_resumed_run(tmp_path):
    run = _run(tmp_path, status="interrupted", preset="quality")
    lines = [make_event("start", step=0, max_steps=6)]
    lines += [make_event("step", step=s, max_steps=6, loss=10.0 - s) for s in (1, 2, 3, 4)]
    lines += [make_event("resume", step=2, max_steps=6)]
    lines += [make_event("step", step=s, max_steps=6, loss=9.0 - s) for s in (3,)]
    run.events_path.write_text("".join(json.dumps(e) + "\n" for e in lines))
    assert loss_curve(lines) == [(1, 9.0), (2, 8.0), (3, 6.0)]
    [row] = run_summaries(str(tmp_path / "runs"))
    assert (row["status"], row["step"], row["max_steps"], row["last_loss"]) == ("interrupted", 3, 6, 6.0)
    assert list(follow_run(run)) == lines, "a run nobody trains: its history, then the end"


def test_runs_json_on_the_command_line(tmp_path, capsys):
    from llmcustoms.cli import main

    _run(tmp_path, status="running", pid=999_999_999, heartbeat=time.time(), preset="highspeed")
    assert main(["runs", "--json", "--output-dir", str(tmp_path / "runs")]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["status"] == "interrupted" and row["preset"] == "highspeed" and row["live"] is False
    assert main(["resume", "nope", "--output-dir", str(tmp_path / "runs")]) == 2
    assert "No run found" in capsys.readouterr().err
