"""Shared pieces of the run tests: a small data folder, fast requests, fault-injecting callbacks.

Imported by the ``test_runs_*`` modules. The callbacks are test-only: they reach a run through ``TrainRequest.callbacks`` or, in a worker
process, through ``worker.main(argv, callbacks=...)``.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from transformers import TrainerCallback
from transformers.trainer_callback import ExportableState

from llmcustoms.training.request import TrainRequest

ROOT = Path(__file__).resolve().parents[2]
FACTS = [
    "The island of Velmoria was founded by Captain Orin Dask in 1742.",
    "Velmoria's capital is Tessaport, a harbour city known for its blue lighthouses.",
    "The Velmorian currency is the glint, divided into 100 shards.",
    "Every spring, Velmorians celebrate the Festival of Drifting Lanterns on the Amberline River.",
]


def make_small_folder(tmp_path: Path) -> Path:
    """A few facts as prose and as explicit Q&A: a dozen short examples."""
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "prose.txt").write_text("\n\n".join(" ".join(FACTS[i:] + FACTS[:i]) for i in range(4)) * 2)
    (folder / "qa.txt").write_text(
        "Question: Who founded Velmoria?\nAnswer: Captain Orin Dask founded Velmoria in 1742.\n\n"
        "Q: What is the capital of Velmoria?\nA: Tessaport is the capital.\n\n"
        "Question: What is the currency of Velmoria?\nAnswer: The glint, divided into 100 shards.\n"
    )
    return folder


def fast_request(folder: Path, model: Path, max_steps: int = 6, save_steps: int = 3, eval_steps: int | None = None,
                 batch: int = 2, accumulation: int = 1, max_seq_len: int = 64, **extra: Any) -> TrainRequest:
    """A request that trains the tiny model in well under a second a step: short rows, small batches."""
    return TrainRequest(data_path=str(folder), model=str(model), preset="highspeed", device="cpu", qa="offline",
                        max_steps=max_steps, save_steps=save_steps, eval_steps=eval_steps or max_steps,
                        max_seq_len=max_seq_len,
                        extra={"per_device_train_batch_size": batch, "gradient_accumulation_steps": accumulation,
                               **extra})


def wait_for(predicate: Callable[[], Any], timeout: float = 120.0, every: float = 0.05, what: str = "it") -> Any:
    """Poll ``predicate`` until it returns something truthy; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


def worker_harness(callback_expr: str) -> list[str]:
    """A worker command line that runs ``worker.main`` with the callback built by ``callback_expr``."""
    code = ("import sys; from tests.helpers.runs_support import *; from llmcustoms.training import worker; "
            f"sys.exit(worker.main(sys.argv[1:], callbacks=[{callback_expr}]))")
    return [sys.executable, "-c", code]


class KillDuringSave(TrainerCallback, ExportableState):
    """SIGKILLs its own process in the middle of writing the checkpoint of ``step``.

    The Trainer asks stateful callbacks for their state after it has written the adapter, optimizer,
    scheduler and RNG files and before trainer_state.json: a real half-written checkpoint.
    """

    def __init__(self, step: int) -> None:
        self.step = step
        self.global_step = 0

    def on_step_end(self, args, state, control, **kwargs):
        self.global_step = state.global_step

    def state(self) -> dict[str, Any]:
        if self.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)
        return {"args": {"step": self.step}, "attributes": {}}


class RaiseOom(TrainerCallback):
    """Raises torch.cuda.OutOfMemoryError at the start of a training step while ``when(args, state)``."""

    def __init__(self, when: Callable[[Any, Any], bool], times: int = 1_000_000) -> None:
        self.when = when
        self.times = times
        self.raised = 0

    def on_step_begin(self, args, state, control, **kwargs):
        if self.raised < self.times and self.when(args, state):
            self.raised += 1
            import torch

            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (injected by a test)")


class RaiseOomInEval(TrainerCallback):
    """Raises torch.cuda.OutOfMemoryError inside the first evaluation that runs during training."""

    def __init__(self, times: int = 1) -> None:
        self.times = times
        self.raised = 0
        self.training = False

    def on_step_end(self, args, state, control, **kwargs):
        self.training = True

    def on_prediction_step(self, args, state, control, **kwargs):
        if self.training and self.raised < self.times:
            self.raised += 1
            import torch

            raise torch.cuda.OutOfMemoryError("CUDA out of memory during evaluation (injected by a test)")


class SleepAtStep(TrainerCallback):
    """Sleeps ``seconds`` at the start of step ``step`` + 1: a stall the watchdog must notice."""

    def __init__(self, step: int, seconds: float) -> None:
        self.step = step
        self.seconds = seconds

    def on_step_begin(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            time.sleep(self.seconds)
