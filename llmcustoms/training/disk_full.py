"""A disk that fills up while a checkpoint is written: recognised, said in one sentence, nothing half left.

The libraries that write a checkpoint report a full disk in different ways: an ``OSError`` with
``ENOSPC`` (Python's own writes), a safetensors error whose text carries "No space left on device", or
torch's zip writer's bare "file write failed". ``is_disk_full`` recognises all three (the last one only
when the disk really has little room left), and ``checkpoint_disk_error`` is the sentence for the user.
"""

from __future__ import annotations

import errno
from pathlib import Path

from llmcustoms.errors import DiskSpaceError
from llmcustoms.utils.disk import free_bytes  # read through this module's name: tests replace it

_FULL_ERRNOS = frozenset({errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC), errno.EFBIG})
_FULL_TEXTS = ("no space left on device", "storagefull", "disk quota exceeded", "not enough space")
#: Below this many free bytes a bare write failure is taken for a full disk.
LOW_FREE_BYTES = 64 * 2**20


def _chain(error: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def folder_bytes(folder: Path) -> int:
    """The bytes of every file under ``folder`` (0 when it does not exist)."""
    if not Path(folder).is_dir():
        return 0
    return sum(f.stat().st_size for f in Path(folder).rglob("*") if f.is_file())


def is_disk_full(error: BaseException, folder: Path, needed: int | None = None) -> bool:
    """True when ``error`` (or what caused it) means the disk holding ``folder`` ran out of room."""
    for link in _chain(error):
        if isinstance(link, OSError) and link.errno in _FULL_ERRNOS:
            return True
        text = str(link).lower()
        if any(marker in text for marker in _FULL_TEXTS):
            return True
        if "write failed" in text:  # torch's zip writer says no more than this
            free = free_bytes(folder)
            return free is not None and free < max(LOW_FREE_BYTES, needed or 0)
    return False


def _mb(size: int) -> str:
    return f"{size / 2**20:,.0f} MB" if size >= 2**20 else f"{max(size, 1) / 2**10:,.0f} KB"


def checkpoint_disk_error(folder: Path, step: int, needed: int | None, run_id: str | None = None) -> DiskSpaceError:
    """The error for a checkpoint that did not fit: where, how much it needs (when known), what to do."""
    free = free_bytes(folder)
    room = []
    if needed:
        room.append(f"it needs about {_mb(needed)}")
    if free is not None:
        room.append(f"{_mb(free)} free")
    detail = f" ({'; '.join(room)})" if room else ""
    then = f", then `llmcustoms resume {run_id}` continues from the last checkpoint" if run_id else ""
    return DiskSpaceError(f"The disk is full: the checkpoint at step {step} could not be saved in "
                          f"{Path(folder).parent}{detail}, so the half-written one was removed; free some "
                          f"space{then}.")
