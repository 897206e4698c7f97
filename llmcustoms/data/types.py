"""Plain data classes passed between the data steps (no heavy imports here)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

Verdict = Literal["ok", "warnings", "blocked"]


@dataclass
class Document:
    """One readable .txt file's text."""

    path: Path
    relpath: str
    text: str
    size_bytes: int
    encoding: str = "utf-8"
    part: int = 0  # the piece's index when a huge file is streamed in pieces (0 otherwise)


@dataclass
class Chunk:
    """A piece of prose small enough for one Q&A request or one offline example."""

    text: str
    source: str  # "relpath:index"


@dataclass
class Example:
    """One chat training example: user/assistant messages and where it came from."""

    messages: list[dict[str, str]]
    source: str
    kind: Literal["explicit", "generated", "offline", "fact", "passage"] = "offline"

    @property
    def prompt(self) -> str:
        """The first user message."""
        return next((m["content"] for m in self.messages if m["role"] == "user"), "")

    @property
    def answer(self) -> str:
        """The last assistant message."""
        return next((m["content"] for m in reversed(self.messages) if m["role"] == "assistant"), "")

    def to_dict(self) -> dict[str, Any]:
        """The JSONL form: ``{"messages": [...], "source": "file:chunk"}`` (plus kind)."""
        return {"messages": self.messages, "source": self.source, "kind": self.kind}


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

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)
