"""Small input checks that turn bad values into one sentence."""

from __future__ import annotations

from pathlib import Path

from llmcustoms.errors import DiskSpaceError, InputError
from llmcustoms.utils.disk import free_bytes, nearest_existing


def check_positive_int(name: str, value: int | None) -> int | None:
    """``value`` when it is None or a whole number above 0."""
    if value is None:
        return None
    if not isinstance(value, int) or value <= 0:
        raise InputError(f"{name} must be a whole number above 0, not {value!r}.")
    return value


def check_disk_space(path: str | Path, needed_bytes: int, what: str) -> None:
    """DiskSpaceError when the filesystem holding ``path`` has less than ``needed_bytes`` free."""
    probe = nearest_existing(path)
    free = free_bytes(probe)
    # Unreadable free space (an odd filesystem) is no reason to refuse: the write itself will tell.
    if free is not None and free < needed_bytes:
        raise DiskSpaceError(
            f"Not enough disk space for {what}: {needed_bytes / 1e9:.2f} GB needed, "
            f"{free / 1e9:.2f} GB free in {probe}."
        )
