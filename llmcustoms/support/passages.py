"""The run's documents cut into passages: paragraphs (long ones in pieces at sentence ends), each with
the file it came from, where in the file it starts (character offset and line) and its number.

The documents are read through the data package (``validate_folder`` + ``iter_documents``), the same way
training read them, so whatever formats training reads, the support search reads too.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from llmcustoms.data.documents import iter_documents
from llmcustoms.data.reader import validate_folder

#: A paragraph longer than this is cut into pieces of about PIECE_CHARS at sentence ends.
MAX_PASSAGE_CHARS = 900
PIECE_CHARS = 500
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n+")
_SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s+|(?<=[。！？])")


@dataclass(frozen=True)
class Passage:
    """One passage of a document: ``file`` (path inside the folder), ``start`` (character offset in the
    file), ``line`` (1-based), ``number`` (1-based among the file's passages) and its ``text``."""

    file: str
    start: int
    line: int
    number: int
    text: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


@dataclass
class FolderPassages:
    """What reading a folder gave: the passages and each file's fingerprint (size, mtime, SHA-1 of its text)."""

    passages: list[Passage]
    files: dict[str, dict[str, Any]]


def _pieces(paragraph: str) -> Iterator[tuple[int, str]]:
    """``(offset, text)`` pieces of a long paragraph, cut after sentences (or hard, for one huge sentence)."""
    if len(paragraph) <= MAX_PASSAGE_CHARS:
        yield 0, paragraph
        return
    start = 0
    cut_points = [m.end() for m in _SENTENCE_END.finditer(paragraph)] + [len(paragraph)]
    for end in cut_points:
        while end - start > MAX_PASSAGE_CHARS:  # a sentence longer than a passage: cut it at a space
            hard = paragraph.rfind(" ", start + PIECE_CHARS // 2, start + MAX_PASSAGE_CHARS)
            hard = hard if hard > start else start + MAX_PASSAGE_CHARS
            yield start, paragraph[start:hard]
            start = hard
        if end - start >= PIECE_CHARS or end == len(paragraph):
            if paragraph[start:end].strip():
                yield start, paragraph[start:end]
            start = end


def split_passages(relpath: str, text: str, offset: int = 0, line: int = 1, number: int = 0) -> list[Passage]:
    """The passages of one file's ``text`` (which starts at character ``offset`` and ``line`` of the file)."""
    out: list[Passage] = []
    position = 0
    for match in [*_PARAGRAPH_BREAK.finditer(text), None]:
        end = match.start() if match is not None else len(text)
        paragraph = text[position:end]
        for inner, piece in _pieces(paragraph):
            stripped = piece.strip()
            if not stripped:
                continue
            at = position + inner + (len(piece) - len(piece.lstrip()))
            number += 1
            out.append(Passage(relpath, offset + at, line + text.count("\n", 0, at), number, stripped))
        if match is not None:
            position = match.end()
    return out


def read_passages(folder: str | os.PathLike[str]) -> FolderPassages:
    """Every passage of the documents in ``folder`` as they are now, and each file's fingerprint."""
    report = validate_folder(folder)
    passages: list[Passage] = []
    files: dict[str, dict[str, Any]] = {}
    where: dict[str, tuple[int, int, int]] = {}  # relpath → (offset, line, passages) after its pieces so far
    hashes: dict[str, Any] = {}
    for document in iter_documents(report):
        if document.relpath.lower().endswith(".jsonl"):  # chat examples, not passages of a document
            continue
        offset, line, number = where.get(document.relpath, (0, 1, 0))
        found = split_passages(document.relpath, document.text, offset, line, number)
        passages.extend(found)
        where[document.relpath] = (offset + len(document.text), line + document.text.count("\n"),
                                   found[-1].number if found else number)
        hashes.setdefault(document.relpath, hashlib.sha1()).update(document.text.encode("utf-8", "surrogatepass"))
    for relpath, digest in hashes.items():
        try:
            stat = (Path(report.root) / relpath).stat()
        except OSError:
            continue
        files[relpath] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha1": digest.hexdigest()}
    return FolderPassages(passages, files)


def folder_listing(folder: str | os.PathLike[str]) -> list[list[Any]]:
    """``[relpath, size, mtime_ns]`` of every visible file under ``folder``, sorted: cheap to compare with
    the listing stored beside the index to tell whether anything changed (no file is read)."""
    root = Path(folder)
    listing: list[list[Any]] = []
    for directory, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in names:
            if name.startswith("."):
                continue
            path = Path(directory) / name
            try:
                stat = path.stat()
            except OSError:
                continue
            listing.append([path.relative_to(root).as_posix(), stat.st_size, stat.st_mtime_ns])
    return sorted(listing)
