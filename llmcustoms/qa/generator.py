"""The slot where a generator of Q&A pairs plugs into the data step.

A generator turns chunks of prose into chat examples. The offline generator lives in
``llmcustoms.qa.offline``; the Groq / OpenAI-compatible one in ``llmcustoms.qa.groq``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

from llmcustoms.text.types import Chunk, Example

#: progress(done_chunks, total_chunks)
ProgressCallback = Callable[[int, int], None]


@runtime_checkable
class QAGenerator(Protocol):
    """Anything that turns prose chunks into examples."""

    #: A short name shown to the user ("offline", "groq:llama-3.3-70b-versatile").
    name: str

    def generate(self, chunks: list[Chunk], progress: ProgressCallback | None = None) -> list[Example]:
        """Examples for ``chunks``; may return fewer (or none) for chunks it cannot use."""
        ...
