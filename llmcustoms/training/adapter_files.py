"""The LoRA adapter's files and in-memory copies: saved atomically, snapshotted, restored, loaded from a checkpoint."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from llmcustoms.errors import DiskSpaceError, TrainingError
from llmcustoms.runs.rundir import RunDir, remove_dead_process_folders
from llmcustoms.training.disk_full import is_disk_full


def save_adapter(model: Any, tokenizer: Any, run: RunDir) -> str:
    """The adapter written to a temporary folder and renamed, so a kill never leaves half of one."""
    staging = run.path / f".adapter.tmp-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    _remove_stale_adapter_folders(run)
    try:
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
    except Exception as error:
        shutil.rmtree(staging, ignore_errors=True)  # nothing half written stays behind

        if is_disk_full(error, run.path):
            raise DiskSpaceError(f"The disk is full: the adapter could not be saved in {run.path}, so the "
                                 f"half-written one was removed; free some space, then `llmcustoms resume "
                                 f"{run.id}` saves it from the last checkpoint.") from error
        raise
    old = run.path / f".adapter.old-{os.getpid()}"
    if run.adapter_dir.exists():
        os.replace(run.adapter_dir, old)  # out of the way by a rename: never a moment with half an adapter
    os.replace(staging, run.adapter_dir)
    shutil.rmtree(old, ignore_errors=True)
    return str(run.adapter_dir)


def _remove_stale_adapter_folders(run: RunDir) -> None:
    """``.adapter.tmp-<pid>`` / ``.adapter.old-<pid>`` folders of processes that are gone (a kill during a save)."""

    remove_dead_process_folders(run.path, r"\.adapter\.(?:tmp|old)-(\d+)")


def adapter_snapshot(model: Any) -> dict[str, Any]:
    """A CPU copy of ``model``'s LoRA weights (to start over from after an out-of-memory)."""
    from peft import get_peft_model_state_dict

    return {k: v.detach().to("cpu", copy=True) for k, v in get_peft_model_state_dict(model).items()}


def load_checkpoint_adapter(model: Any, checkpoint: Path) -> None:
    """The LoRA weights a Trainer checkpoint holds, put into ``model``."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    weights = checkpoint / "adapter_model.safetensors"
    if not weights.is_file():
        raise TrainingError(f"The checkpoint {checkpoint} holds no adapter weights; start a new run.")
    set_peft_model_state_dict(model, load_file(str(weights)))


def restore_adapter(model: Any, snapshot: dict[str, Any]) -> None:
    """``model``'s LoRA weights set back to ``snapshot``."""
    from peft import set_peft_model_state_dict

    set_peft_model_state_dict(model, snapshot)
