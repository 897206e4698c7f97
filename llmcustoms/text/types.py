"""The two records the data path and the generators pass each other: a ``Chunk`` of a document's
text, and the chat ``Example`` made from it (no heavy imports here)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal


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
    kind: Literal["explicit", "generated", "offline", "fact", "passage", "replay"] = "offline"

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
