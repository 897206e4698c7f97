"""A run's support index: its documents' passages under BM25 (the ``bm25s`` library), kept in the run folder.

Built once per run, on first use (``SupportIndex.for_run``), into ``runs/<id>/support/``: the passages
(``passages.jsonl``), the BM25 matrices (``bm25/``) and a manifest with the folder's file listing and each
file's fingerprint. Later loads read those back (a fraction of a second on a 10 MB folder). When the
documents have moved or changed since, the index says so once (``note``) and searches what is there now;
passages from a file that changed since the run trained are marked (``is_changed``).
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmcustoms.runs.rundir import RunDir, atomic_write_json
from llmcustoms.support.passages import FolderPassages, Passage, folder_listing, read_passages
from llmcustoms.support.tokens import tokens
from llmcustoms.utils.logger import get_logger

log = get_logger("llmcustoms.support")

SUPPORT_DIR = "support"
MANIFEST_VERSION = 1
_CACHE: dict[str, SupportIndex] = {}
_CACHE_LOCK = threading.Lock()


@dataclass
class SupportIndex:
    """The passages of one run's documents and their BM25 index (``retriever``, a ``bm25s.BM25``).

    ``available`` is False when there is nothing to search; ``note`` then says why, and otherwise says
    (once per index) whether the documents moved or changed since the run trained.
    """

    passages: list[Passage]
    retriever: Any = None
    data_path: str = ""
    note: str | None = None
    changed_files: set[str] = field(default_factory=set)
    #: The document frequency of each token over the passages (the verdict weighs words by rarity).
    doc_freq: dict[str, int] = field(default_factory=dict)

    @property
    def available(self) -> bool:
        """True when there are passages to search."""
        return bool(self.passages) and self.retriever is not None

    @classmethod
    def for_run(cls, run_dir: str | os.PathLike[str]) -> SupportIndex:
        """The index of run ``run_dir``'s documents: cached in this process, loaded from the run folder, or
        built there (and saved) on first use."""
        key = os.path.realpath(os.fspath(run_dir))
        with _CACHE_LOCK:
            cached = _CACHE.get(key)
            if cached is None:
                cached = _CACHE[key] = _load_or_build(RunDir(key))
            return cached

    def search(self, query: list[str], k: int = 5) -> list[tuple[int, float]]:
        """The ``k`` best passages for the ``query`` tokens: ``(passage index, BM25 score)``, best first."""
        if not self.available or not query:
            return []
        k = min(k, len(self.passages))
        results, scores = self.retriever.retrieve([query], k=k, show_progress=False, n_threads=1)
        return [(int(i), float(s)) for i, s in zip(results[0], scores[0], strict=True) if float(s) > 0]

    def is_changed(self, passage: Passage) -> bool:
        """True when ``passage`` comes from a file that changed since the run trained."""
        return passage.file in self.changed_files

    def context(self, passage: Passage, around: int = 2) -> list[Passage]:
        """``passage`` with up to ``around`` passages of the same file before and after it (in file order)."""
        try:
            at = self.passages.index(passage)
        except ValueError:
            return [passage]
        lo, hi = at, at
        while lo > 0 and at - lo < around and self.passages[lo - 1].file == passage.file:
            lo -= 1
        while hi + 1 < len(self.passages) and hi - at < around and self.passages[hi + 1].file == passage.file:
            hi += 1
        return self.passages[lo:hi + 1]


def clear_cache() -> None:
    """Forget the indexes loaded in this process (the next ``for_run`` reads the run folder again)."""
    with _CACHE_LOCK:
        _CACHE.clear()


def _index(passages: list[Passage], data_path: str, note: str | None, changed: set[str]) -> SupportIndex:
    import bm25s

    corpus = [tokens(p.text) for p in passages]
    doc_freq: dict[str, int] = {}
    for words in corpus:
        for word in set(words):
            doc_freq[word] = doc_freq.get(word, 0) + 1
    retriever = None
    if passages:
        retriever = bm25s.BM25()
        retriever.index(corpus, show_progress=False)
    return SupportIndex(passages, retriever, data_path, note, changed, doc_freq)


def _read_run_data_path(run: RunDir) -> str:
    try:
        return str(run.read().get("data_path") or "")
    except Exception:  # noqa: BLE001 - a damaged run.json: no folder to search, said by the caller
        return ""


def _trained_at(run: RunDir) -> float | None:
    try:
        value = run.read().get("created_at")
    except Exception:  # noqa: BLE001
        return None
    return float(value) if isinstance(value, (int, float)) else None


def _no_passages(data_path: str) -> str:
    if data_path.lower().endswith(".jsonl") or (
            os.path.isdir(data_path) and _only_chat_files(Path(data_path))):
        return ("This run was trained on chat examples (JSONL) only: it has no passages of your documents "
                "to show as support.")
    return f"No passages of text were found in {data_path}: there is nothing to show as support."


def _only_chat_files(folder: Path) -> bool:
    names = [row[0] for row in folder_listing(folder)]
    return bool(names) and all(name.lower().endswith(".jsonl") for name in names)


def _load_or_build(run: RunDir) -> SupportIndex:
    data_path = _read_run_data_path(run)
    folder = run.path / SUPPORT_DIR
    manifest = _read_manifest(folder)
    if not data_path:
        if manifest is None:
            return SupportIndex([], note="This run records no documents folder: there are no passages to show.")
        data_path = str(manifest.get("data_path") or "")
    present = os.path.isdir(data_path)
    if manifest is not None and not present:
        try:
            index = _load(folder, manifest, data_path)
        except (OSError, ValueError, TypeError) as error:  # a damaged index and no folder to build it again from
            return SupportIndex([], data_path=data_path, note=f"Your documents are no longer at {data_path} and "
                                f"the passages kept of them cannot be read ({error}).")
        index.note = (f"Your documents are no longer at {data_path}: the passages shown are as they were when "
                      "this run read them.")
        return index
    if not present:
        return SupportIndex([], data_path=data_path,
                            note=f"Your documents are no longer at {data_path}: there are no passages to show.")
    if _only_chat_files(Path(data_path)):
        return SupportIndex([], data_path=data_path, note=_no_passages(data_path))
    listing = folder_listing(data_path)
    if manifest is not None and manifest.get("listing") == listing:
        try:
            return _load(folder, manifest, data_path)
        except (OSError, ValueError, TypeError) as error:  # damaged: built again below, from the documents
            log.warning("The support index in %s could not be read (%s): building it again", folder, error)
            manifest = None if not isinstance(manifest.get("trained"), dict) else manifest
    try:
        return _build(run, folder, data_path, listing, manifest)
    except Exception as error:  # noqa: BLE001 - support is a help beside the answer: it must never end a chat
        log.warning("The support index of %s could not be built: %s", data_path, error)
        return SupportIndex([], data_path=data_path,
                            note=f"Your documents in {data_path} could not be read for support ({error}).")


def _read_manifest(folder: Path) -> dict[str, Any] | None:
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) and manifest.get("version") == MANIFEST_VERSION else None


def _load(folder: Path, manifest: dict[str, Any], data_path: str) -> SupportIndex:
    import bm25s

    passages = []
    with open(folder / "passages.jsonl", encoding="utf-8") as lines:
        for line in lines:
            passages.append(Passage(**json.loads(line)))
    retriever = bm25s.BM25.load(str(folder / "bm25"), show_progress=False) if passages else None
    doc_freq = json.loads((folder / "doc_freq.json").read_text(encoding="utf-8"))
    return SupportIndex(passages, retriever, data_path, manifest.get("note"), set(manifest.get("changed") or []),
                        doc_freq)


def _changes(trained: dict[str, Any], now: dict[str, Any]) -> tuple[set[str], list[str]]:
    """Files changed or added since training, and files gone."""
    changed = {name for name, info in now.items()
               if name not in trained or trained[name].get("sha1") != info.get("sha1")}
    gone = sorted(set(trained) - set(now))
    return changed, gone


def _change_note(changed: set[str], gone: list[str]) -> str | None:
    if not changed and not gone:
        return None
    parts = []
    if changed:
        names = sorted(changed)
        parts.append(", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
                     + (" changed" if len(names) == 1 else " changed or were added"))
    if gone:
        parts.append(", ".join(gone[:3]) + (f" and {len(gone) - 3} more" if len(gone) > 3 else "")
                     + (" is gone" if len(gone) == 1 else " are gone"))
    return ("Your documents changed since this run trained (" + "; ".join(parts) + "): searching them as they "
            "are now; passages from a changed file are marked (changed).")


def _build(run: RunDir, folder: Path, data_path: str, listing: list[list[Any]],
           manifest: dict[str, Any] | None) -> SupportIndex:
    started = time.monotonic()
    read: FolderPassages = read_passages(data_path)
    if manifest is not None:
        trained = manifest.get("trained") or {}
    else:
        # First build: the files as they are now stand for what trained, except any written after the run
        # started (their mtime says so), which are marked changed from the start.
        since = _trained_at(run)
        trained = {name: info for name, info in read.files.items()
                   if since is None or info["mtime_ns"] / 1e9 <= since}
    changed, gone = _changes(trained, read.files)
    note = _change_note(changed, gone)
    if not read.passages:
        note = _no_passages(data_path)
    index = _index(read.passages, data_path, note, changed)
    try:
        _save(folder, index, {"version": MANIFEST_VERSION, "data_path": data_path, "listing": listing,
                              "files": read.files, "trained": trained, "changed": sorted(changed), "note": note})
    except OSError as error:  # a read-only run folder: the index still works for this session
        log.warning("The support index could not be saved in %s: %s", folder, error)
    log.info("Support index: %d passages from %d files in %.2f s", len(read.passages), len(read.files),
             time.monotonic() - started)
    return index


def _save(folder: Path, index: SupportIndex, manifest: dict[str, Any]) -> None:
    """Write the index beside the run in a new folder, then swap it in (a reader never sees half of one)."""
    staging = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    with open(staging / "passages.jsonl", "w", encoding="utf-8") as out:
        for passage in index.passages:
            out.write(json.dumps(passage.to_dict(), ensure_ascii=False) + "\n")
    (staging / "doc_freq.json").write_text(json.dumps(index.doc_freq, ensure_ascii=False), encoding="utf-8")
    if index.retriever is not None:
        index.retriever.save(str(staging / "bm25"), show_progress=False)
    atomic_write_json(staging / "manifest.json", manifest)  # written last: its presence marks a whole index
    old = folder.with_name(folder.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():
        folder.rename(old)
    staging.rename(folder)
    shutil.rmtree(old, ignore_errors=True)
