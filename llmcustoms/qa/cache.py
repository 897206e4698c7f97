"""An on-disk cache of generated Q&A pairs, one JSON file per chunk.

The key is a sha256 of everything that decides the server's answer (server, model, prompt
version, pairs asked for, chunk text), so a rerun or a resumed run sends nothing for chunks
already done, and a change of model or prompt never serves stale pairs. Files are written to a
temporary name and renamed, so an interrupted run never leaves a half-written entry. The API key
is not part of the key and never written: it does not change the answer.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from llmcustoms.paths import qa_cache_dir

#: Bumped when the file layout changes; older files are ignored (regenerated), never misread.
CACHE_FORMAT = 1


def cache_key(server: str, model: str, prompt_version: str, pairs_per_chunk: int, text: str) -> str:
    """The hex sha256 naming one chunk's entry."""
    # JSON of a list keeps the fields apart: ("ab", "c") and ("a", "bc") never collide.
    payload = json.dumps([server, model, prompt_version, int(pairs_per_chunk), text], ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class QACache:
    """Generated pairs on disk under ``root`` (default ``llmcustoms.paths.qa_cache_dir()``)."""

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.root = Path(root) if root is not None else qa_cache_dir()

    def path(self, key: str) -> Path:
        """Where the entry for ``key`` lives (two-letter fan-out keeps folders small)."""
        return self.root / key[:2] / f"{key}.json"

    def __contains__(self, key: str) -> bool:
        return self.get(key) is not None

    def get(self, key: str) -> list[dict[str, str]] | None:
        """The cached pairs for ``key``, or None when absent or unreadable (then it is regenerated)."""
        try:
            data = json.loads(self.path(key).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or data.get("format") != CACHE_FORMAT:
            return None
        pairs = data.get("pairs")
        if not isinstance(pairs, list):
            return None
        return [p for p in pairs if isinstance(p, dict) and isinstance(p.get("question"), str)
                and isinstance(p.get("answer"), str)]

    def put(self, key: str, pairs: list[dict[str, str]], meta: dict[str, Any] | None = None) -> Path:
        """Store ``pairs`` (possibly empty) for ``key``, atomically; returns the file's path."""
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        entry = {"format": CACHE_FORMAT, "key": key, "created": time.time(), **(meta or {}),
                 "pairs": [{"question": p["question"], "answer": p["answer"]} for p in pairs]}
        fd, tmp = tempfile.mkstemp(prefix=f".{key[:8]}-", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(entry, handle, ensure_ascii=False, indent=1)
            os.replace(tmp, target)  # atomic on POSIX and Windows: readers see old or new, never half
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target
