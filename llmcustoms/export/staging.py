"""Writing an export without ever leaving half of one, and never overwriting one by accident.

Everything is written into a hidden sibling folder (``.<name>.tmp-<pid>-<rand>``) and renamed into
place at the very end. An existing target is refused unless ``force``; with ``force`` the old
export is moved aside first and removed only after the new one is in place.
"""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path
from types import TracebackType

from llmcustoms.errors import InputError


def refuse_existing(target: Path, force: bool) -> None:
    """InputError when ``target`` exists and ``force`` is not set (nothing is touched)."""
    if (target.exists() or target.is_symlink()) and not force:
        raise InputError(f"{target} already exists; pass --force to replace it (nothing was overwritten).")


class StagedFolder:
    """A temporary folder next to ``target`` that becomes ``target`` on :meth:`commit`.

    Use as a context manager: leaving the block without a commit (an error, a failed verification)
    removes the temporary folder, so a broken export never appears under the target's name.
    """

    def __init__(self, target: str | os.PathLike[str], force: bool = False) -> None:
        self.target = Path(target)
        refuse_existing(self.target, force)
        self.force = force
        self.target.parent.mkdir(parents=True, exist_ok=True)
        self.path = self.target.parent / f".{self.target.name}.tmp-{os.getpid()}-{secrets.token_hex(3)}"
        self.committed = False

    def __enter__(self) -> StagedFolder:
        self.path.mkdir()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if not self.committed:
            shutil.rmtree(self.path, ignore_errors=True)

    def final(self, staged: Path) -> Path:
        """Where a path inside the staging folder will live once committed."""
        return self.target / Path(staged).relative_to(self.path)

    def commit(self) -> Path:
        """Rename the staging folder to the target (moving an old export aside when forced)."""
        refuse_existing(self.target, self.force)  # it may have appeared while we worked
        old: Path | None = None
        if self.target.exists() or self.target.is_symlink():
            old = self.target.parent / f".{self.target.name}.old-{os.getpid()}-{secrets.token_hex(3)}"
            os.replace(self.target, old)
        try:
            os.replace(self.path, self.target)
        except OSError:
            if old is not None:
                os.replace(old, self.target)
            raise
        self.committed = True
        if old is not None:
            if old.is_dir() and not old.is_symlink():
                shutil.rmtree(old, ignore_errors=True)
            else:
                old.unlink(missing_ok=True)
        return self.target
