"""Free disk space where a path is, or would be created.

A folder the tool is about to write (a model cache, an export, a run's checkpoints) often does not
exist yet, so its free space is read on its nearest existing parent: the filesystem it will land on.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def nearest_existing(path: str | os.PathLike[str]) -> Path:
    """``path`` itself when it exists, else its closest existing parent (at worst the filesystem root)."""
    probe = Path(path)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return probe


def free_bytes(path: str | os.PathLike[str]) -> int | None:
    """Free bytes on the filesystem holding ``path`` (or its nearest existing parent); None if unreadable."""
    try:
        return shutil.disk_usage(nearest_existing(path)).free
    except OSError:
        return None
