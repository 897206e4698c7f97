"""Writing an export without ever leaving half of one, and never overwriting one by accident.

Everything is written into a hidden sibling folder (``.<name>.tmp-<pid>-<rand>``) and renamed into
place at the very end. Every export carries a marker (``.llmcustoms-export.json``: format, run,
time and the files written), put into the staging folder before the rename. An existing target is
refused unless ``force``; with ``force`` only an export this tool wrote is replaced (a folder holding
the marker and nothing else but the files it lists, or a file inside such a folder): anything else,
a folder of the user's own files or of other runs, is refused and left untouched. The old export is
moved aside first and removed only after the new one is in place.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from llmcustoms.errors import InputError
from llmcustoms.runs.rundir import remove_dead_process_folders

#: The file that marks a folder as an export written by this tool.
MARKER = ".llmcustoms-export.json"


def read_marker(folder: Path) -> dict[str, Any] | None:
    """The export marker of ``folder`` (a real folder, not a link), or None when it has none or a damaged one."""
    marker = folder / MARKER
    if folder.is_symlink() or not folder.is_dir() or marker.is_symlink() or not marker.is_file():
        return None
    try:
        data = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("tool") == "llmcustoms" else None


def _unlisted(folder: Path, manifest: dict[str, Any]) -> list[str]:
    """Files or links inside ``folder`` that the export did not write (the user's, put there later)."""
    listed = manifest.get("files")
    if not isinstance(listed, list):
        return [MARKER]
    known = {str(name) for name in listed} | {MARKER}
    found = []
    for path in sorted(folder.rglob("*")):
        if path.is_dir() and not path.is_symlink():
            continue
        relative = path.relative_to(folder).as_posix()
        if relative not in known:
            found.append(relative)
    return found


def not_an_export(target: Path) -> str | None:
    """Why an existing ``target`` is not an export this tool wrote (so never to be replaced), or None."""
    if target.is_symlink() or not target.is_dir():
        if target.is_symlink() or read_marker(target.parent) is None:
            return f"it is {'a link' if target.is_symlink() else 'a file'}, outside any export folder"
        return None  # a file inside an export folder this tool wrote
    manifest = read_marker(target)
    if manifest is None:
        return f"it holds no {MARKER}"
    extra = _unlisted(target, manifest)
    if extra:
        shown = ", ".join(extra[:3]) + (f" and {len(extra) - 3} more" if len(extra) > 3 else "")
        return f"it also holds files the export did not write: {shown}"
    return None


def refuse_existing(target: Path, force: bool) -> None:
    """InputError when ``target`` exists, unless ``force`` and it is an export this tool wrote.

    Nothing is touched either way; replacing is :meth:`StagedFolder.commit`'s work.
    """
    if not (target.exists() or target.is_symlink()):
        return
    reason = not_an_export(target)
    if reason is None and not force:
        raise InputError(f"{target} already exists; pass --force to replace it (nothing was overwritten).")
    if reason is not None:
        raise InputError(f"{target} already exists and is not an export written by LLMCustoms ({reason}), so "
                         "even --force does not replace it; nothing was touched: choose another --out, or move "
                         "it away yourself.")


def write_marker(folder: Path, manifest: dict[str, Any] | None = None) -> Path:
    """Write the export marker into ``folder``: ``manifest`` plus the tool, the time and the files written."""
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                   if (p.is_file() or p.is_symlink()) and p.name != MARKER)
    data = {"tool": "llmcustoms", **(manifest or {}),
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "files": files}
    path = folder / MARKER
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    return path


def clean_stale_staging(target: Path) -> list[tuple[Path, int]]:
    """Remove temporary folders an earlier export of ``target`` left when its process was killed.

    They are named ``.<target>.tmp-<pid>-<hex>`` by :class:`StagedFolder`; only those whose process is
    gone are removed (an export still running keeps its own). Returns (folder, bytes freed) pairs.
    """


    return remove_dead_process_folders(target.parent, rf"\.{re.escape(target.name)}\.tmp-(\d+)-[0-9a-f]{{6}}")


class StagedFolder:
    """A temporary folder next to ``target`` that becomes ``target`` on :meth:`commit`.

    Use as a context manager: leaving the block without a commit (an error, a failed verification)
    removes the temporary folder, so a broken export never appears under the target's name.
    """

    def __init__(self, target: str | os.PathLike[str], force: bool = False,
                 manifest: dict[str, Any] | None = None) -> None:
        self.target = Path(target)
        refuse_existing(self.target, force)
        self.force = force
        self.manifest = manifest  # written into the marker (format, run id, …) on commit
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
        """Mark the staging folder as an export and rename it to the target (moving an old export aside
        when forced)."""
        write_marker(self.path, self.manifest)
        refuse_existing(self.target, self.force)  # it may have appeared (or changed) while we worked
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
