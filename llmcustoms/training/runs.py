"""A run directory: ``<runs>/<id>/`` with run.json, events.jsonl, checkpoints/ and adapter/.

A new run always gets a new directory (created exclusively), so nothing trained is overwritten.
``run.json`` is rewritten atomically (temp file + rename) so a reader never sees half of it.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import time
from pathlib import Path
from typing import Any

from llmcustoms.errors import RunNotFoundError
from llmcustoms.paths import runs_dir

RUN_STATUSES = ("created", "running", "done", "failed", "stopped", "interrupted")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()[:32] or "model"


def atomic_write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as JSON to ``path`` through a temporary file and a rename."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, ensure_ascii=False, default=str)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


class RunDir:
    """One training run on disk. Create with ``RunDir.create``; open with ``RunDir.open``."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    # -- locations -------------------------------------------------------------------------------
    @property
    def id(self) -> str:
        """The run's id: its directory name."""
        return self.path.name

    @property
    def run_json(self) -> Path:
        """``run.json``: the run's status and metadata."""
        return self.path / "run.json"

    @property
    def events_path(self) -> Path:
        """``events.jsonl``: the event stream."""
        return self.path / "events.jsonl"

    @property
    def adapter_dir(self) -> Path:
        """``adapter/``: the final PEFT adapter."""
        return self.path / "adapter"

    @property
    def checkpoints_dir(self) -> Path:
        """``checkpoints/``: intermediate checkpoints."""
        return self.path / "checkpoints"

    @property
    def log_path(self) -> Path:
        """``train.log``: stdout/stderr of a detached worker."""
        return self.path / "train.log"

    # -- life cycle ------------------------------------------------------------------------------
    @classmethod
    def create(cls, model_name: str, root: str | os.PathLike[str] | None = None, **fields: Any) -> RunDir:
        """A new, empty run directory under ``root`` (default: the runs folder) with a first run.json."""
        base = Path(root) if root is not None else runs_dir()
        base.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        for _ in range(100):
            run_id = f"{stamp}-{_slug(model_name)}-{secrets.token_hex(2)}"
            try:
                (base / run_id).mkdir()
            except FileExistsError:
                continue
            run = cls(base / run_id)
            run.write({"id": run_id, "status": "created", "model": model_name, "created_at": time.time(),
                       "pid": os.getpid(), **fields})
            return run
        raise RuntimeError("could not create a unique run directory")  # pragma: no cover

    @classmethod
    def open(cls, ref: str | os.PathLike[str], root: str | os.PathLike[str] | None = None) -> RunDir:
        """The run at path ``ref``, or with id (or unique id prefix) ``ref`` in the runs folder."""
        candidate = Path(ref).expanduser()
        if (candidate / "run.json").is_file():
            return cls(candidate.resolve())
        base = Path(root) if root is not None else runs_dir()
        if (base / str(ref) / "run.json").is_file():
            return cls(base / str(ref))
        matches = sorted(p for p in base.glob(f"{ref}*") if (p / "run.json").is_file()) if base.is_dir() else []
        if len(matches) == 1:
            return cls(matches[0])
        if len(matches) > 1:
            raise RunNotFoundError(f"{ref!r} matches {len(matches)} runs; give more of the id.")
        raise RunNotFoundError(f"No run found at {ref!r} (looked for run.json there and in {base}).")

    def read(self) -> dict[str, Any]:
        """The content of run.json."""
        try:
            return json.loads(self.run_json.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise RunNotFoundError(f"{self.path} holds no run.json.") from None

    def write(self, data: dict[str, Any]) -> None:
        """Replace run.json with ``data``."""
        atomic_write_json(self.run_json, data)

    def update(self, **fields: Any) -> dict[str, Any]:
        """Merge ``fields`` into run.json and return the result."""
        data = self.read() if self.run_json.exists() else {}
        data.update(fields)
        self.write(data)
        return data

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"


def list_runs(root: str | os.PathLike[str] | None = None) -> list[RunDir]:
    """Every run under ``root`` (default: the runs folder), oldest first."""
    base = Path(root) if root is not None else runs_dir()
    if not base.is_dir():
        return []
    return [RunDir(p) for p in sorted(base.iterdir()) if (p / "run.json").is_file()]
