"""Plain data classes passed between the data steps (no heavy imports here).

``Chunk`` and ``Example`` live in ``llmcustoms.text.types`` (the generators use them too) and are
importable from here as before.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from llmcustoms.text.types import Chunk, Example

__all__ = ["Chunk", "Document", "Example", "FileReport", "Verdict"]  # Chunk, Example: re-exported

Verdict = Literal["ok", "warnings", "blocked"]


@dataclass
class Document:
    """One readable file's text (a .txt file's, or what was extracted from a document)."""

    path: Path
    relpath: str
    text: str
    size_bytes: int
    encoding: str = "utf-8"
    part: int = 0  # the piece's index when a huge file is streamed in pieces (0 otherwise)


@dataclass
class FileReport:
    """What validation found about one file."""

    relpath: str
    size_bytes: int
    status: Literal["ok", "warning", "skipped"] = "ok"
    encoding: str | None = None
    chars: int = 0
    problems: list[str] = field(default_factory=list)
    cjk_chars: int = 0  # Chinese, Japanese and Korean characters among ``chars`` (about a token each)
    vanished: bool = False  # it disappeared (or became unreadable) while the folder was being read
    format: str = "txt"  # txt, markdown, pdf, docx, html, epub, or jsonl (chat examples)
    units: int = 0  # pages, sections, chapters or examples, as ``unit`` says (0: not counted, .txt)
    unit: str = ""
    words: int = 0  # words of text extracted (in a .jsonl file: in its examples' turns)
    dropped: list[str] = field(default_factory=list)  # left out on purpose: "12 repeated header lines"
    notes: list[str] = field(default_factory=list)  # said of the file, not a problem: "layouts: 3 openai"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)
