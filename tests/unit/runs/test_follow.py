"""RunFollower: one run followed from its first event to its end, as typed updates.

Real run folders, events written by the real sink (``JsonlEventSink``), liveness from the real lock
(held by this process or by a child process that is killed).
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from llmcustoms.runs.events import JsonlEventSink, make_event, read_events
from llmcustoms.runs.follow import GONE, FollowUpdate, Memory, RunFold, RunFollower
from llmcustoms.runs.rundir import RunDir, RunLock
from llmcustoms.runs.status import loss_curve
from llmcustoms.training.detach import follow_run


def _run(tmp_path, **fields) -> RunDir:
    return RunDir.create("m", root=tmp_path / "runs", request={"data_path": "x"}, **fields)


def _write(run: RunDir, *events: dict) -> None:
    sink = JsonlEventSink(run.events_path)
    for event in events:
        sink(event)
    sink.close()


def _step(step: int, loss: float, max_steps: int = 8, **fields) -> dict:
    return make_event("step", step=step, max_steps=max_steps, loss=loss, **fields)


def _follow(follower: RunFollower, timeout: float = 30.0) -> list[FollowUpdate]:
    """Every update of ``follower`` until it ends by itself; fails instead of hanging."""
    updates: list[FollowUpdate] = []
    thread = threading.Thread(target=lambda: updates.extend(follower), daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"the follower did not end within {timeout} s: {updates[-1:]}"
    return updates


# -- replay, resume-aware ----------------------------------------------------------------------------
def test_a_finished_resumed_run_is_replayed_whole_with_one_curve(tmp_path):
    run = _run(tmp_path, status="done")
    _write(run, make_event("start", step=0, max_steps=8),
           *[_step(s, 10.0 - s) for s in (1, 2, 3, 4)],
           make_event("warning", step=4, message="loss is stuck"),
           make_event("error", step=4, message="killed by the OOM killer"),  # the first segment's end
           make_event("resume", step=2, max_steps=8, message="Resumed at step 2"),
           *[_step(s, 5.0 - s / 10, vram_used_mb=900.0 + s, vram_total_mb=16000.0) for s in range(3, 9)],
           make_event("done", step=8, max_steps=8, status="done", message="Done."))

    updates = _follow(RunFollower(run, poll_s=0.01))

    [update] = updates
    assert update.replayed and update.finished and update.following_ended
    assert update.end_kind == "done", "the end is the last segment's, not the first segment's error"
    assert update.status == "done"
    assert [e["kind"] for e in update.events] == [e["kind"] for e in read_events(run.events_path)]
    # Steps 3 and 4 were trained twice: the curve keeps the second time only, in step order.
    assert update.loss_curve == ((1, 9.0), (2, 8.0), (3, 4.7), (4, 4.6), (5, 4.5), (6, 4.4), (7, 4.3), (8, 4.2))
    assert list(update.loss_curve) == loss_curve(read_events(run.events_path)), "the same curve as `runs`"
    assert (update.step, update.max_steps, update.loss) == (8, 8, 4.2)
    assert update.warnings == ("loss is stuck",)
    assert update.memory.label == "VRAM" and update.memory.vram_used_mb == 908.0
    assert update.steps_per_s is None, "history makes no rate"


def test_a_resume_drops_the_lost_steps_before_the_first_new_one(tmp_path):
    run = _run(tmp_path, status="interrupted")
    _write(run, make_event("start", step=0, max_steps=8), *[_step(s, 10.0 - s) for s in (1, 2, 3, 4)],
           make_event("resume", step=2, max_steps=8))  # killed again before its first step

    [update] = _follow(RunFollower(run, poll_s=0.01))

    assert update.loss_curve == ((1, 9.0), (2, 8.0)), "steps 3 and 4 were lost with the checkpoint"
    assert update.step == 2, "the run is back at step 2, not at 4"
    assert update.finished and update.end_kind == GONE and update.status == "interrupted"


def test_a_step_that_goes_back_live_replaces_the_points_from_there(tmp_path):
    run = _run(tmp_path, status="running")
    with RunLock(run):
        follower = RunFollower(run, liveness_every_s=60)
        follower.poll()
        _write(run, *[_step(s, 5.0 - s / 10) for s in (1, 2, 3, 4)],
               make_event("oom_retry", step=4, message="batch 4 → 2"),
               *[_step(s, 4.0 - s / 10) for s in (3, 4, 5)])  # on again from the checkpoint at step 2
        update = follower.poll()
    assert update.loss_curve == ((1, 4.9), (2, 4.8), (3, 3.7), (4, 3.6), (5, 3.5))
    assert not update.finished


# -- live: the rate, the ETA, the end --------------------------------------------------------------
def test_rate_and_eta_come_from_live_steps_only(tmp_path):
    run = _run(tmp_path, status="running")
    an_hour_ago = time.time() - 3600
    # History: 40 steps, one a minute (a rate over them would say 1/60 step/s).
    _write(run, make_event("start", step=0, max_steps=100),
           *[{**_step(s, 3.0, max_steps=100), "t": an_hour_ago + 60 * s} for s in range(1, 41)])
    with RunLock(run):
        follower = RunFollower(run, liveness_every_s=60)
        history = follower.poll()
        assert history.replayed and len(history.events) == 41 and history.step == 40
        assert history.steps_per_s is None and history.eta_s is None, "a replay makes no rate"

        now = time.time()
        _write(run, {**_step(41, 2.9, max_steps=100), "t": now})
        one = follower.poll()
        assert not one.replayed and [e["step"] for e in one.events] == [41]
        assert one.steps_per_s is None, "one live step is no rate yet"

        _write(run, {**_step(42, 2.8, max_steps=100), "t": now + 0.5},
               {**_step(44, 2.7, max_steps=100), "t": now + 1.5})
        live = follower.poll()
        assert live.steps_per_s == pytest.approx(2.0), "3 steps in 1.5 s"
        assert live.eta_s == pytest.approx((100 - 44) / 2.0)

        # A resume is a new process: its rate starts again from its own steps.
        _write(run, {**make_event("resume", step=40, max_steps=100), "t": now + 10},
               {**_step(41, 2.9, max_steps=100), "t": now + 20},
               {**_step(42, 2.9, max_steps=100), "t": now + 30})
        resumed = follower.poll()
        assert resumed.step == 42 and resumed.steps_per_s == pytest.approx(0.1)
        assert resumed.eta_s == pytest.approx(58 / 0.1)

        run.update(status="done", adapter_path=str(run.adapter_dir))
        _write(run, make_event("done", step=100, max_steps=100, status="done", message="Done."),
               make_event("info", message="never read: the run ended before it"))
        end = follower.poll()
    assert end.finished and end.end_kind == "done" and end.following_ended
    assert [e["kind"] for e in end.events] == ["done"]
    assert end.status == "done" and end.adapter_path == str(run.adapter_dir)
    assert end.eta_s == 0.0


_HOLDER = ("import sys, time; from llmcustoms.runs.rundir import RunDir, RunLock; "
           "RunLock(RunDir(sys.argv[1])).acquire(); print('locked', flush=True); time.sleep(120)")


def test_the_follow_ends_when_the_runs_process_is_gone(tmp_path):
    run = _run(tmp_path, status="running")
    _write(run, make_event("start", step=0, max_steps=8), _step(1, 3.0))
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(run.path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        run.update(pid=holder.pid)
        follower = RunFollower(run, poll_s=0.02, liveness_every_s=0.05)
        first = follower.poll()
        assert first.replayed and not first.finished and first.status == "running", "a live run goes on"
        _write(run, _step(2, 2.5))
        holder.kill()  # kill -9: no last event
        holder.wait()
        _write(run, _step(3, 2.4))  # written just before it died: still read
        updates = _follow(follower, timeout=30)
    finally:
        holder.kill()
        holder.wait()
    last = updates[-1]
    assert last.finished and last.following_ended
    assert last.end_kind == GONE and last.status == "interrupted"
    assert [e["step"] for u in updates for e in u.events] == [2, 3]
    assert last.loss_curve == ((1, 3.0), (2, 2.5), (3, 2.4))


def test_should_stop_ends_the_follow_early_and_leaves_the_run_alone(tmp_path):
    run = _run(tmp_path, status="running")
    _write(run, make_event("start", step=0, max_steps=8), _step(1, 3.0))
    asked = []

    def should_stop() -> bool:
        asked.append(time.monotonic())
        return len(asked) >= 3

    with RunLock(run):
        updates = _follow(RunFollower(run, poll_s=0.01, liveness_every_s=0.01, should_stop=should_stop))
        assert RunDir(run.path).read()["status"] == "running"
    assert updates[0].replayed and [e["step"] for e in updates[0].events if e["kind"] == "step"] == [1]
    last = updates[-1]
    assert last.following_ended and not last.finished and last.end_kind is None
    assert len(asked) == 3, "it asks after each read and stops at the first yes"
    assert not run.stop_path.exists(), "leaving is not stopping"


def test_a_created_run_is_waited_for_until_it_runs(tmp_path):
    """A run whose worker has not started yet (status ``created``, no lock) is not taken for dead."""
    run = _run(tmp_path, status="created")
    follower = RunFollower(run, liveness_every_s=0.0)
    assert not follower.poll().finished
    assert not follower.poll().finished
    run.update(status="failed", error="it could not start")
    end = follower.poll()
    assert end.finished and end.status == "failed" and end.error == "it could not start"


def test_follow_run_yields_the_followers_events(tmp_path):
    run = _run(tmp_path, status="stopped")
    events = [make_event("start", step=0, max_steps=8), _step(1, 3.0), make_event("stop", step=1),
              make_event("done", step=1, max_steps=8, status="stopped")]
    _write(run, *events)
    assert list(follow_run(run, poll_s=0.01)) == read_events(run.events_path)


def test_a_caller_that_knows_the_runs_life_can_turn_the_process_check_off(tmp_path):
    """The TUI follows a run in its own thread with ``liveness_every_s=None``: only an end event ends it."""
    run = _run(tmp_path, status="created")  # no lock held: a process check would end it (after the grace)
    run.update(created_at=time.time() - 3600)
    follower = RunFollower(run, liveness_every_s=None)
    first = follower.poll()
    assert first.status == "interrupted", "the status is still read at the start"
    assert not first.finished, "but the process is not judged"
    _write(run, make_event("start", step=0, max_steps=2), make_event("error", step=0, message="no memory"))
    end = follower.poll()
    assert end.finished and end.end_kind == "error"
    assert RunFollower(run, liveness_every_s=1.0).poll().finished, "with the check on, the same run has ended"


def test_the_fold_keeps_memory_as_a_memory_the_latest_value_of_each_field():
    fold = RunFold()
    assert fold.memory == Memory() and fold.memory.label == "Memory"
    fold.apply({"kind": "step", "step": 1, "vram_used_mb": 900.0, "vram_total_mb": 16000.0})
    fold.apply({"kind": "step", "step": 2, "vram_used_mb": 950.0, "loss": 1.0})  # no total: the last one stays
    fold.apply({"kind": "step", "step": 3, "vram_used_mb": "nan"})  # not a finite number: ignored
    assert isinstance(fold.memory, Memory)
    assert (fold.memory.vram_used_mb, fold.memory.vram_total_mb, fold.memory.label) == (950.0, 16000.0, "VRAM")
    assert fold.memory_now() == fold.memory


def test_an_older_runs_ram_used_is_read_as_the_process_share():
    fold = RunFold()
    fold.apply({"kind": "step", "step": 1, "ram_used_mb": 1200.0, "ram_total_mb": 8000.0})
    assert (fold.memory.ram_process_mb, fold.memory.ram_used_mb, fold.memory.label) == (1200.0, None, "RAM")
    fold.apply({"kind": "step", "step": 2, "ram_used_mb": 5000.0, "ram_available_mb": 3000.0,
                "ram_process_mb": 1300.0})
    assert (fold.memory.ram_used_mb, fold.memory.ram_process_mb) == (5000.0, 1300.0)
