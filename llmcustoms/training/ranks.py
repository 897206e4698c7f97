"""Which process this is when several train together (torchrun): its rank, and what ranks other than 0 may do.

Read by the training recipe itself (rank 0 alone writes the run's files; all ranks stop at the same
step); the launcher that starts the processes is ``distributed.py``.
"""

from __future__ import annotations

import os
from typing import Any

from transformers import TrainerCallback

from llmcustoms.runs.rundir import RunDir


def world_size() -> int:
    """How many processes train together (1 when not launched by torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


def rank() -> int:
    """This process's rank (0 when not distributed)."""
    return int(os.environ.get("RANK", "0") or 0)


def is_secondary() -> bool:
    """True on ranks other than 0: they train but write nothing of the run's own."""
    return world_size() > 1 and rank() != 0


def bind_local_device() -> None:
    """Each rank on its own GPU (``LOCAL_RANK``); nothing to do on CPU."""
    if world_size() <= 1:
        return
    import torch

    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))


class SecondaryRunDir(RunDir):
    """The run directory as ranks other than 0 see it: readable, never written."""

    def write(self, data: dict[str, Any]) -> None:  # noqa: D102 - rank 0 alone writes run.json
        return None

    def update(self, **fields: Any) -> dict[str, Any]:  # noqa: D102
        data = self.read()
        data.update(fields)
        return data


class StopTogether(TrainerCallback):
    """All ranks stop at the same step: a stop seen by one (a signal, NaN, the stop file) is shared.

    Without it one rank would leave the loop while the others wait forever in the next all-reduce.
    """

    def on_step_end(self, args, state, control, **kwargs):
        import torch
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            device = "cuda" if torch.cuda.is_available() and dist.get_backend() == "nccl" else "cpu"
            flag = torch.tensor([1.0 if control.should_training_stop else 0.0], device=device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            control.should_training_stop = bool(flag.item())
        return control
