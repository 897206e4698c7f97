"""Checkpoints a kill can not corrupt: a completion marker written last, the newest complete one wins.

transformers' Trainer writes ``checkpoints/checkpoint-<step>/`` (adapter, optimizer, scheduler, RNG
states, trainer_state.json with the data position). A process killed halfway leaves a folder that
looks like a checkpoint but is not one, and transformers' own ``get_last_checkpoint`` would pick
it. So after the Trainer has written every file, ``mark_complete`` flushes them to disk and writes
``llmcustoms-complete.json`` through a temporary name and a rename; only folders holding that
marker are ever resumed from, and older complete ones are pruned to ``KEEP``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path

MARKER = "llmcustoms-complete.json"
KEEP = 2
_NAME = re.compile(r"^checkpoint-(\d+)$")


def checkpoint_step(folder: Path) -> int | None:
    """The step of a ``checkpoint-<step>`` folder, or None for any other name."""
    match = _NAME.match(folder.name)
    return int(match.group(1)) if match else None


def _fsync_tree(folder: Path) -> None:
    for file in folder.rglob("*"):
        if file.is_file():
            with open(file, "rb") as handle:
                os.fsync(handle.fileno())
    directory = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def mark_complete(folder: Path) -> None:
    """Declare ``folder`` a complete checkpoint: its files on disk first, then the marker."""
    _fsync_tree(folder)
    tmp = folder / f".{MARKER}.tmp"
    tmp.write_text(json.dumps({"step": checkpoint_step(folder), "t": time.time()}), encoding="utf-8")
    os.replace(tmp, folder / MARKER)


def is_complete(folder: Path) -> bool:
    """True when ``folder`` is a checkpoint whose writing finished."""
    return checkpoint_step(folder) is not None and (folder / MARKER).is_file()


def _checkpoints(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and checkpoint_step(p) is not None]
    return sorted(found, key=lambda p: checkpoint_step(p) or 0)


def complete_checkpoints(root: Path) -> list[Path]:
    """Every complete checkpoint under ``root``, oldest first."""
    return [p for p in _checkpoints(root) if is_complete(p)]


def latest_complete(root: Path) -> Path | None:
    """The newest complete checkpoint under ``root``, or None."""
    found = complete_checkpoints(root)
    return found[-1] if found else None


def discard_incomplete(root: Path) -> list[Path]:
    """Delete the checkpoints a kill left half-written (and any newer than the newest complete one).

    A checkpoint newer than the one training resumes from would otherwise be overwritten in place
    or counted by pruning; it holds steps that are about to be trained again anyway.
    """
    from llmcustoms.training.ranks import is_secondary

    if is_secondary():
        return []  # rank 0 alone tidies the run's checkpoints
    latest = latest_complete(root)
    latest_step = (checkpoint_step(latest) or 0) if latest is not None else -1
    removed = []
    for folder in _checkpoints(root):
        if not is_complete(folder) or (checkpoint_step(folder) or 0) > latest_step:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    for leftover in root.glob(".deleting-checkpoint-*") if root.is_dir() else []:
        shutil.rmtree(leftover, ignore_errors=True)  # a prune that a kill interrupted
    return removed


def remove_partial(folder: Path) -> None:
    """Delete a checkpoint whose save failed (a full disk): renamed first, so a kill mid-way leaves no look-alike."""
    if not folder.exists():
        return
    trash = folder.with_name(f".deleting-{folder.name}")
    try:
        os.replace(folder, trash)
    except OSError:
        trash = folder
    shutil.rmtree(trash, ignore_errors=True)


def prune(root: Path, keep: int = KEEP) -> list[Path]:
    """Delete all but the ``keep`` newest complete checkpoints; incomplete ones are left to their writer."""
    complete = complete_checkpoints(root)
    doomed = complete[:-keep] if keep > 0 else complete
    for folder in doomed:
        # Renamed first so a kill in the middle of rmtree leaves nothing that looks like a checkpoint.
        trash = folder.with_name(f".deleting-{folder.name}")
        os.replace(folder, trash)
        shutil.rmtree(trash, ignore_errors=True)
    return doomed
