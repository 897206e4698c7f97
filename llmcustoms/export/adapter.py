"""The adapter export: a checksummed copy of the run's PEFT adapter folder."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any

from llmcustoms.errors import LLMCustomsError
from llmcustoms.export.source import ExportSource


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def export_adapter(source: ExportSource, folder: Path) -> dict[str, Any]:
    """Copy the adapter into ``folder`` and check every file's checksum; returns counts."""
    files = sorted(p for p in source.adapter_dir.rglob("*") if p.is_file())
    total = 0
    for path in files:
        relative = path.relative_to(source.adapter_dir)
        target = folder / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
        if _sha256(path) != _sha256(target):
            raise LLMCustomsError(f"Verification failed: the copy of {relative} differs from the original.")
        total += path.stat().st_size
    return {"files": len(files), "bytes": total}
