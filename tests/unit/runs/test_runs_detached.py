"""Detached runs with real processes and real signals: SIGKILL and resume, SIGHUP, attach, stop, kill mid-save."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llmcustoms.runs.events import read_events
from llmcustoms.runs.rundir import RunBusyError, RunDir, RunLock, pid_is_alive
from llmcustoms.runs.status import loss_curve
from llmcustoms.training.checkpoints import checkpoint_step, is_complete, latest_complete
from llmcustoms.training.detach import (
    resume_run,
    run_state,
    spawn_worker,
    start_detached,
    wait_until_running,
)
from tests.helpers.runs_support import ROOT, fast_request, make_small_folder, wait_for, worker_harness

CLI = str(Path(sys.executable).parent / "llmcustoms")


def _steps(events: list[dict]) -> list[dict]:
    return [e for e in events if e["kind"] == "step"]


def _finished(run: RunDir) -> bool:
    return run_state(run)["status"] in ("done", "failed", "stopped")


def test_kill_9_between_and_during_checkpoints_then_resume_reaches_the_same_end(tmp_path, tiny_model_dir,
                                                                              monkeypatch):
    """Killed between two checkpoints, then killed again while writing one: resume still ends right."""
    small_folder = make_small_folder(tmp_path)
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # the harness worker imports tests.helpers.runs_support
    run = start_detached(fast_request(small_folder, tiny_model_dir, max_steps=10, save_steps=3))
    data = run.read()
    pid = data["pid"]
    assert data["status"] == "running" and data["heartbeat"] and data["detached"] is True
    assert os.getsid(pid) == pid, "the worker leads a session of its own"

    # 1. SIGKILL between checkpoints.
    wait_for(lambda: any(e["step"] >= 4 for e in _steps(read_events(run.events_path))), what="step 4")
    os.kill(pid, signal.SIGKILL)
    # The kernel drops the run's lock once every thread of the killed process has exited.
    state = wait_for(lambda: (s := run_state(run))["status"] == "interrupted" and s, what="'interrupted'")
    assert state["recorded_status"] == "running" and not state["live"] and not pid_is_alive(pid)
    before = read_events(run.events_path)
    killed_after = max(e["step"] for e in _steps(before))
    checkpoint = latest_complete(run.checkpoints_dir)
    resumed_at = checkpoint_step(checkpoint)
    assert killed_after - resumed_at < 3, "at most the steps since the last checkpoint are lost"

    # 2. Resumed by a worker that is SIGKILLed in the middle of writing its next checkpoint.
    doomed = resumed_at + 3
    worker = spawn_worker(run, resume=True, command=worker_harness(f"KillDuringSave({doomed})"))
    wait_until_running(run, worker)
    assert worker.wait(timeout=180) == -signal.SIGKILL
    half = run.checkpoints_dir / f"checkpoint-{doomed}"
    assert (half / "adapter_model.safetensors").is_file() and not (half / "trainer_state.json").exists()
    assert not is_complete(half) and latest_complete(run.checkpoints_dir) == checkpoint
    wait_for(lambda: run_state(run)["status"] == "interrupted", what="'interrupted'")

    # 3. A plain resume goes on from the last *complete* checkpoint to the same final step.
    resume_run(run)
    wait_for(lambda: _finished(run), timeout=240, every=0.2, what="the resumed run to end")
    data = run.read()
    assert data["status"] == "done" and data["steps"] == 10 and data["resumes"] == 2
    assert (run.adapter_dir / "adapter_model.safetensors").is_file()
    assert all(is_complete(c) for c in run.checkpoints_dir.iterdir()), "no half-written checkpoint is left"

    events = read_events(run.events_path)
    resumes = [i for i, e in enumerate(events) if e["kind"] == "resume"]
    assert [events[i]["step"] for i in resumes] == [resumed_at, resumed_at]
    rewritten = [e["step"] for e in events[resumes[-1]:] if e["kind"] == "checkpoint"]
    assert doomed in rewritten, "the checkpoint the kill interrupted was written again, whole"
    assert [step for step, _ in loss_curve(events)] == list(range(1, 11))
    # Redone steps see the same data, RNG and optimizer state: their losses match the lost ones exactly.
    lost = {e["step"]: e["loss"] for e in _steps(before) if e["step"] > resumed_at}
    for start in resumes:
        redone = {e["step"]: e["loss"] for e in _steps(events[start:])}
        assert lost and all(redone[s] == pytest.approx(loss, rel=1e-4) for s, loss in lost.items())
    assert events[-1]["kind"] == "done" and events[-1]["step"] == 10


def _default_signals() -> None:
    """Give a child SIGHUP's and SIGINT's default actions back. Under `nohup`, or a background job of a
    shell without job control, the test run itself ignores them, children inherit SIG_IGN, and then
    neither a shell nor Python (no KeyboardInterrupt) can act on them: the test would hang, not fail."""
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_sighup_to_the_starter_leaves_the_run_alive_attach_leaves_and_stop_saves(tmp_path, tiny_model_dir):
    small_folder = make_small_folder(tmp_path)
    started = tmp_path / "started.json"
    command = (f"{CLI} train {small_folder} --model {tiny_model_dir} --preset highspeed --cpu --qa offline "
               f"--max-steps 500 --save-steps 100 --detach --json > {started}; sleep 60")
    # The starter plays the terminal's shell: a session leader whose hangup would kill its children.
    starter = subprocess.Popen(["bash", "-c", command], start_new_session=True, preexec_fn=_default_signals)
    try:
        wait_for(lambda: started.exists() and started.read_text().strip().endswith("}"), what="the CLI to return")
        info = json.loads(started.read_text())
        run, pid = RunDir(info["run_dir"]), info["pid"]
        assert info["status"] == "running" and os.getsid(pid) != os.getsid(starter.pid)
        os.killpg(starter.pid, signal.SIGHUP)
        assert starter.wait(timeout=20) == -signal.SIGHUP
    finally:
        if starter.poll() is None:
            os.killpg(starter.pid, signal.SIGKILL)
    hung_up = time.time()
    wait_for(lambda: any(e["t"] > hung_up for e in _steps(read_events(run.events_path))), timeout=180,
             what="a step after the hangup")
    assert pid_is_alive(pid) and run_state(run)["status"] == "running"

    with pytest.raises(RunBusyError, match="still running"):
        resume_run(run)

    attach_err = tmp_path / "attach.err"
    with open(attach_err, "w") as err:
        attach = subprocess.Popen([CLI, "attach", run.id], stdout=subprocess.DEVNULL, stderr=err,
                                  preexec_fn=_default_signals)
    try:
        wait_for(lambda: "loss=" in attach_err.read_text(), timeout=60, what="attach to draw progress")
        attach.send_signal(signal.SIGINT)
        assert attach.wait(timeout=30) == 0
    finally:
        if attach.poll() is None:
            attach.kill()
    assert "it goes on" in attach_err.read_text()
    assert run_state(run)["live"], "leaving attach does not stop the run"

    stopped = subprocess.run([CLI, "stop", run.id], capture_output=True, text=True, timeout=240)
    assert stopped.returncode == 0, stopped.stderr
    assert "stopped" in stopped.stdout
    data = run.read()
    assert data["status"] == "stopped" and 0 < data["steps"] < 500
    assert (run.adapter_dir / "adapter_model.safetensors").is_file()
    assert checkpoint_step(latest_complete(run.checkpoints_dir)) == data["steps"], "stopped runs resume exactly"
    assert read_events(run.events_path)[-1]["status"] == "stopped"


def test_two_processes_never_own_one_run(tmp_path):
    run = RunDir.create("m", root=tmp_path, status="running", request={"data_path": "x"})
    probe = ("import sys; from llmcustoms.runs.rundir import RunDir, RunLock; "
             "RunLock(RunDir(sys.argv[1]), wait_s=0.2).acquire(); print('took it')")
    with RunLock(run):
        assert run_state(run)["live"] and run_state(run)["status"] == "running"
        other = subprocess.run([sys.executable, "-c", probe, str(run.path)], capture_output=True, text=True,
                               timeout=60)
        assert other.returncode != 0 and "is live" in other.stderr
        worker = subprocess.run([sys.executable, "-m", "llmcustoms.training.worker", str(run.path), "--resume"],
                                capture_output=True, text=True, timeout=60)
        assert worker.returncode == 3 and "is live" in worker.stderr
        assert run.read()["status"] == "running", "the refused worker wrote nothing"
    assert run_state(run)["status"] == "interrupted", "nobody holds it any more"
    other = subprocess.run([sys.executable, "-c", probe, str(run.path)], capture_output=True, text=True, timeout=60)
    assert other.returncode == 0 and "took it" in other.stdout
