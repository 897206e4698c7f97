"""Training on several processes (GPUs, or CPU processes over gloo) with ``torchrun``.

``llmcustoms train DIR --num-processes N`` creates the run directory, then starts
``torchrun --standalone --nproc_per_node N -m llmcustoms.training.worker RUN_DIR``. Every rank
trains (transformers' Trainer wraps the model in DDP, or FSDP with ``--fsdp``); rank 0 alone owns
the run: it takes the lock, writes run.json, events.jsonl, checkpoints and the one adapter. The other
ranks see the run directory read-only.

Note: ``accelerate launch --cpu --num_processes 2`` silently starts ONE process; torchrun really
starts N, on CPU too (DESIGN.md).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from llmcustoms.errors import InputError, TrainingError
from llmcustoms.models.manager import ModelManager
from llmcustoms.runs.follow import RunFollower
from llmcustoms.runs.rundir import RunDir
from llmcustoms.training.detach import create_detached_run


def torchrun_command(num_processes: int) -> list[str]:
    """The launcher's argv up to (not including) the worker's RUN_DIR."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={num_processes}",
            "-m", "llmcustoms.training.worker"]


def launch(request, num_processes: int, sink: Callable[[dict[str, Any]], None] | None = None,
           fsdp: bool = False) -> RunDir:
    """Train ``request`` on ``num_processes`` processes in the foreground; returns the finished run.

    The model is resolved (downloaded or converted) here, once, so the ranks never race for the cache.
    """

    if num_processes < 2:
        raise InputError("--num-processes needs 2 or more; leave it out to train in one process.")
    if request.model != "auto":
        request.model = ModelManager().resolve(request.model)[1]
    request.extra = {**request.extra, "fsdp": bool(fsdp)}
    run = create_detached_run(request)
    run.update(num_processes=num_processes)
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    with open(run.log_path, "ab") as log:
        log.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} torchrun × {num_processes}\n".encode())
        log.flush()
        process = subprocess.Popen(torchrun_command(num_processes) + [str(run.path)], stdin=subprocess.DEVNULL,
                                   stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        for update in RunFollower(run, poll_s=0.2, should_stop=lambda: process.poll() is not None
                                  and run.read().get("status") not in ("created", "running")):
            for event in update.events:
                if sink is not None:
                    sink(event)
        code = process.wait()
    except KeyboardInterrupt:
        process.terminate()  # torchrun passes it on: every rank stops at the same step and rank 0 saves
        process.wait()
        raise
    status = run.read().get("status")
    if code != 0 or status not in ("done", "stopped"):
        error = run.read().get("error") or f"the training processes ended with exit code {code}; see {run.log_path}"
        raise TrainingError(f"Multi-process training failed: {error}")
    return run
