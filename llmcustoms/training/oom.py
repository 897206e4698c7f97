"""Out-of-memory back-off: what to try next when the GPU runs out of memory during training.

The order keeps the run's meaning as long as it can: first the micro-batch is halved and gradient
accumulation doubled (the same examples per optimizer step, so the same effective batch and
learning-rate schedule); only at a micro-batch of 1 is the sequence length halved (each step then
sees fewer tokens); below ``min_seq_len`` nothing smaller is worth training and the run stops with
one sentence.
"""

from __future__ import annotations

import gc
import sys
from dataclasses import dataclass
from typing import Any

#: Sequences are never shortened below this many tokens (``oom_min_seq_len`` in the config overrides).
MIN_SEQ_LEN = 128


def is_oom(error: BaseException) -> bool:
    """True for a device out-of-memory error (CUDA, or the RuntimeError older builds and MPS raise)."""
    try:
        import torch

        if isinstance(error, torch.cuda.OutOfMemoryError):
            return True
    except ImportError:  # pragma: no cover
        pass
    return isinstance(error, RuntimeError) and "out of memory" in str(error).lower()


def free_device_memory() -> None:
    """Collect garbage and hand cached CUDA blocks back, so the next try (or the next user) starts clean.

    ``torch.cuda.empty_cache`` does nothing in a process that never used CUDA, so this is safe after a
    CPU run too. A process that never imported torch (a run that failed before loading a model) has no
    device memory to give back: torch is not imported just for this.
    """

    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


@dataclass
class Backoff:
    """One step down: the settings before and after, and a sentence saying what changed."""

    before: dict[str, int]
    after: dict[str, int]
    message: str

    def event_fields(self) -> dict[str, Any]:
        """Fields for the ``oom_retry`` event."""
        return {"before": self.before, "after": self.after, **self.after,
                "effective_batch": self.after["per_device_train_batch_size"]
                * self.after["gradient_accumulation_steps"]}


def _settings(config: dict[str, Any]) -> dict[str, int]:
    return {"per_device_train_batch_size": int(config["per_device_train_batch_size"]),
            "gradient_accumulation_steps": int(config["gradient_accumulation_steps"]),
            "max_seq_len": int(config["max_seq_len"])}


def next_backoff(config: dict[str, Any]) -> Backoff | None:
    """The next smaller setting for ``config``, or None when nothing smaller is left."""
    before = _settings(config)
    after = dict(before)
    batch, accumulation = before["per_device_train_batch_size"], before["gradient_accumulation_steps"]
    if batch > 1:
        after["per_device_train_batch_size"] = batch // 2
        # Round up so the effective batch never shrinks (exact whenever the batch is even).
        after["gradient_accumulation_steps"] = -(-batch * accumulation // (batch // 2))
        message = (f"micro-batch {batch} → {batch // 2}, gradient accumulation {accumulation} → "
                   f"{after['gradient_accumulation_steps']} (effective batch kept at {batch * accumulation})")
    else:
        floor = int(config.get("oom_min_seq_len", MIN_SEQ_LEN))
        if before["max_seq_len"] // 2 < floor:
            return None
        after["max_seq_len"] = before["max_seq_len"] // 2
        message = (f"micro-batch is already 1: sequence length {before['max_seq_len']} → {after['max_seq_len']} "
                   "tokens (each step now sees fewer tokens)")
    return Backoff(before, after, message)


def give_up_message(config: dict[str, Any], model_name: str) -> str:
    """The one sentence said when even the smallest setting does not fit."""
    return (f"The GPU ran out of memory training {model_name} even with a micro-batch of 1 and "
            f"{int(config['max_seq_len'])}-token sequences: choose a smaller model (`llmcustoms models`), "
            "4-bit training on a CUDA GPU, or free the GPU of other processes.")
